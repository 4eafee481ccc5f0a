import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import pino from 'pino';
import { routeConsoleTo } from './logging';

describe('routeConsoleTo', () => {
  it("turns a library's console output, an error's stack included, into one JSON line per call", () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString().split('\n').filter((l) => l !== ''));
        done();
      },
    });
    const saved = { log: console.log, info: console.info, debug: console.debug, warn: console.warn, error: console.error };
    try {
      routeConsoleTo(pino({ level: 'info' }, sink));
      console.error(new Error('connect ECONNREFUSED 127.0.0.1:6379'));
      console.warn('IMPORTANT! Eviction policy is %s. It should be "noeviction"', 'allkeys-lru');
    } finally {
      Object.assign(console, saved);
    }
    assert.equal(lines.length, 2);
    const [error, warning] = lines.map((l) => JSON.parse(l));
    assert.equal(error.level, 50);
    assert.equal(error.source, 'console');
    assert.match(error.msg, /^Error: connect ECONNREFUSED[\s\S]*\n\s+at /, 'the stack is inside the one line');
    assert.equal(warning.level, 40);
    assert.equal(warning.msg, 'IMPORTANT! Eviction policy is allkeys-lru. It should be "noeviction"');
  });
});
