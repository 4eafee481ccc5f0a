import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Listeners } from './listeners';

/** A logger that keeps what it is given. */
function recordingLogger() {
  const lines: { fields: { event: string; err: { type?: string; message: string } }; message: string }[] = [];
  return {
    lines,
    error: (fields: unknown, message: unknown) => void lines.push({ fields: fields as (typeof lines)[number]['fields'], message: String(message) }),
  };
}

describe('Listeners', () => {
  it('calls every listener in the order added, with the emitted arguments', () => {
    const list = new Listeners<[string, number]>('test event', recordingLogger());
    const calls: string[] = [];
    list.add((a, b) => void calls.push(`first ${a} ${b}`));
    list.add((a, b) => void calls.push(`second ${a} ${b}`));
    list.emit('x', 1);
    assert.deepEqual(calls, ['first x 1', 'second x 1']);
  });

  it('runs the others when one throws, never throws itself, and logs the failure once with its error', () => {
    const logger = recordingLogger();
    const list = new Listeners<[number]>('upstream outcome', logger);
    const seen: number[] = [];
    list.add(() => {
      throw new TypeError('boom');
    });
    list.add((n) => void seen.push(n));
    assert.doesNotThrow(() => list.emit(7));
    assert.doesNotThrow(() => list.emit(8));
    assert.deepEqual(seen, [7, 8]);
    assert.equal(logger.lines.length, 2, 'one line per failure');
    assert.equal(logger.lines[0].fields.event, 'upstream outcome');
    assert.equal(logger.lines[0].fields.err.type, 'TypeError');
    assert.equal(logger.lines[0].fields.err.message, 'boom');
    assert.match(logger.lines[0].message, /upstream outcome.*boom/);
  });

  it('logs the rejection of an async listener instead of leaving it unhandled', async () => {
    const logger = recordingLogger();
    const list = new Listeners<[]>('drain', logger);
    let other = 0;
    list.add(async () => {
      await Promise.resolve();
      throw new Error('async boom');
    });
    list.add(() => void other++);
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      list.emit();
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    assert.equal(other, 1);
    assert.deepEqual(unhandled, []);
    assert.equal(logger.lines.length, 1);
    assert.equal(logger.lines[0].fields.err.message, 'async boom');
  });

  it('reports a thrown non-Error by its text', () => {
    const logger = recordingLogger();
    const list = new Listeners<[]>('thing', logger);
    list.add(() => {
      throw 'plain string';
    });
    list.emit();
    assert.equal(logger.lines[0].fields.err.message, 'plain string');
  });

  it('survives a logger that throws', () => {
    const list = new Listeners<[]>('thing', {
      error: () => {
        throw new Error('logger down');
      },
    });
    let ran = false;
    list.add(() => {
      throw new Error('listener');
    });
    list.add(() => void (ran = true));
    assert.doesNotThrow(() => list.emit());
    assert.equal(ran, true);
  });

  it('removes a listener with the function add returned; the same function added twice runs twice', () => {
    const list = new Listeners<[]>('thing', recordingLogger());
    let count = 0;
    const listener = () => void count++;
    const remove = list.add(listener);
    list.add(listener);
    list.emit();
    assert.equal(count, 2);
    remove();
    list.emit();
    assert.equal(count, 3);
    assert.equal(list.size, 1);
  });
});
