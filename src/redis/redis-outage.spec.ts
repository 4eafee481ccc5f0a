import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RedisOutageLog } from './redis-outage';

function recorder() {
  const lines: { level: string; fields: Record<string, unknown> }[] = [];
  let now = 1000;
  const log = new RedisOutageLog(
    { warn: (fields) => lines.push({ level: 'warn', fields }), info: (fields) => lines.push({ level: 'info', fields }) },
    () => now,
  );
  return { log, lines, advance: (ms: number) => (now += ms) };
}

describe('RedisOutageLog', () => {
  it('writes one line when the connections drop and one when the last is back', () => {
    const { log, lines, advance } = recorder();
    for (const name of ['state', 'bullmq', 'worker']) log.lost(name, 'ECONNRESET');
    for (let i = 0; i < 20; i++) log.lost(i % 2 ? 'state' : 'worker', 'ECONNREFUSED');
    advance(4000);
    log.back('state');
    log.back('bullmq');
    assert.equal(log.outage, true, 'the worker connection is still down');
    log.back('worker');
    assert.equal(log.outage, false);
    assert.deepEqual(lines.map((l) => [l.level, l.fields.event]), [
      ['warn', 'redis_connection_lost'],
      ['info', 'redis_connection_back'],
    ]);
    assert.equal(lines[0].fields.reason, 'ECONNRESET');
    assert.equal(lines[1].fields.downMs, 4000);
    assert.equal(lines[1].fields.failedAttempts, 23);
  });

  it('says nothing for a connection that becomes ready without having dropped', () => {
    const { log, lines } = recorder();
    log.back('state');
    assert.equal(lines.length, 0);
  });

  it('reports a second outage again', () => {
    const { log, lines } = recorder();
    log.lost('state', 'ECONNREFUSED');
    log.back('state');
    log.lost('state', 'ECONNREFUSED');
    log.back('state');
    assert.equal(lines.length, 4);
  });
});
