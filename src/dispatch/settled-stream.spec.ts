import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CancelledError, RequestTimeoutError, UpstreamError } from '../common/errors';
import { settleWhenEnded } from './settled-stream';

function recorder() {
  const settled: unknown[] = [];
  return { settled, settle: (error?: unknown) => settled.push(error ?? 'ok') };
}

async function* events(items: string[], failWith?: Error): AsyncGenerator<string> {
  yield* items;
  if (failWith) throw failWith;
}

describe('settleWhenEnded', () => {
  it('settles once with success when the stream completes', async () => {
    const { settled, settle } = recorder();
    const seen: string[] = [];
    for await (const data of settleWhenEnded(events(['a', 'b']), new AbortController().signal, settle)) seen.push(data);
    assert.deepEqual(seen, ['a', 'b']);
    assert.deepEqual(settled, ['ok']);
  });

  it('settles with the error when the stream breaks, and rethrows it', async () => {
    const { settled, settle } = recorder();
    const broken = new UpstreamError('closed before [DONE]');
    await assert.rejects(async () => {
      for await (const _ of settleWhenEnded(events(['a'], broken), new AbortController().signal, settle));
    }, broken);
    assert.deepEqual(settled, [broken]);
  });

  it('settles as a cancellation when the reader stops early, and closes the upstream stream', async () => {
    const { settled, settle } = recorder();
    let closed = false;
    const source = (async function* () {
      try {
        yield 'a';
        yield 'b';
      } finally {
        closed = true;
      }
    })();
    for await (const _ of settleWhenEnded(source, new AbortController().signal, settle)) break;
    assert.equal(settled.length, 1);
    assert.ok(settled[0] instanceof CancelledError);
    assert.equal(closed, true);
  });

  it('settles with the abort reason when nobody reads, and a late reader gets the error, not a clean end', async () => {
    const { settled, settle } = recorder();
    const controller = new AbortController();
    const stream = settleWhenEnded(events(['a']), controller.signal, settle);
    const deadline = new RequestTimeoutError(1000);
    controller.abort(deadline);
    assert.deepEqual(settled, [deadline]);
    await assert.rejects(stream[Symbol.asyncIterator]().next(), deadline);
    assert.equal(settled.length, 1, 'settled once');
  });
});
