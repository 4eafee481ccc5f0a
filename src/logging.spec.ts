import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import pino from 'pino';
import { NestStartupQuietLogger, requestLogLevel, routeConsoleTo } from './logging';

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

function recorder() {
  const calls: [string, ...unknown[]][] = [];
  const at = (level: string) => (...args: unknown[]) => void calls.push([level, ...args]);
  return { calls, inner: { log: at('log'), error: at('error'), warn: at('warn'), debug: at('debug'), verbose: at('verbose'), fatal: at('fatal') } };
}

describe('NestStartupQuietLogger', () => {
  it("moves Nest's module and route lines to debug, context kept", () => {
    const { calls, inner } = recorder();
    const logger = new NestStartupQuietLogger(inner);
    for (const context of ['InstanceLoader', 'RoutesResolver', 'RouterExplorer', 'NestFactory', 'NestApplication']) logger.log(`line of ${context}`, context);
    assert.deepEqual(calls.map((c) => c[0]), ['debug', 'debug', 'debug', 'debug', 'debug']);
    assert.deepEqual(calls[0], ['debug', 'line of InstanceLoader', 'InstanceLoader']);
  });

  it("keeps Bulwark's own lines and every warning and error at their level", () => {
    const { calls, inner } = recorder();
    const logger = new NestStartupQuietLogger(inner);
    logger.log('draining', 'ShutdownService');
    logger.log({ a: 1 }, 'no context given');
    logger.warn('careful', 'InstanceLoader');
    logger.error('failed', 'stack', 'NestApplication');
    logger.fatal('dead', 'Bootstrap');
    assert.deepEqual(calls.map((c) => c[0]), ['log', 'log', 'warn', 'error', 'fatal']);
  });

  it("moves Nest's report of a failed listen to debug (main reports it naming PORT and HOST), not other errors", () => {
    const { calls, inner } = recorder();
    const logger = new NestStartupQuietLogger(inner);
    logger.error('Error: listen EADDRINUSE: address already in use 127.0.0.1:8000', 'NestApplication');
    logger.error('Error: listen EADDRINUSE: address already in use 127.0.0.1:8000', 'SomethingElse');
    assert.deepEqual(calls.map((c) => c[0]), ['debug', 'error']);
  });
});

describe('requestLogLevel', () => {
  it('logs refusals at debug and failures at warn', () => {
    assert.equal(requestLogLevel(503, false, 'debug'), 'debug');
    assert.equal(requestLogLevel(503, false, 'info'), 'silent');
    assert.equal(requestLogLevel(500, false, 'info'), 'warn');
    assert.equal(requestLogLevel(200, false, 'info'), 'info');
  });
});
