import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NestStartupQuietLogger, requestLogLevel } from './logging';

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
