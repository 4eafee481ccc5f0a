import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type Redis from 'ioredis';
import { startRedis, TestRedis } from '../../test/support/redis-server';
import { waitFor } from '../../test/support/wait';
import type { Runtime } from '../runtime';
import { RedisService } from './redis.service';

/**
 * Makes ioredis give `connection` up the way it does when a Sentinel failover cancels a connect attempt
 * in flight: the connector's next attempt rejects, and ioredis sets the status to `end` without retrying.
 */
async function abandonByIoredis(connection: Redis): Promise<void> {
  const connector = (connection as unknown as { connector: { connect: (...args: unknown[]) => Promise<unknown> } }).connector;
  const connect = connector.connect.bind(connector);
  connector.connect = () => {
    connector.connect = connect;
    return Promise.reject(new Error('Connection is closed.'));
  };
  const ended = new Promise<void>((resolve) => connection.once('end', () => resolve()));
  connection.disconnect(true);
  await ended;
}

describe('RedisService on a real redis-server', () => {
  let server: TestRedis;
  let service: RedisService;

  before(async () => {
    server = await startRedis();
    const runtime = { redis: { kind: 'url', url: server.url } } as Runtime;
    service = new RedisService(runtime);
    await service.onModuleInit();
  });

  after(async () => {
    await service?.onApplicationShutdown();
    await server?.stop();
  });

  it('starts again a connection that ioredis gave up on, and readiness follows it back', async () => {
    const connection = service.create('abandoned');
    await waitFor('the connection to be ready', () => connection.status === 'ready');

    await abandonByIoredis(connection);
    assert.equal(service.ready, false, 'a connection down holds readiness back');

    await waitFor('the connection to be ready again', () => connection.status === 'ready', 5000);
    assert.equal(await connection.ping(), 'PONG');
    await waitFor('readiness to return', () => service.ready, 5000);
  });

  it('leaves a released connection closed', async () => {
    const connection = service.create('released');
    await waitFor('the connection to be ready', () => connection.status === 'ready');

    service.release(connection);
    await waitFor('the connection to end', () => connection.status === 'end');
    const probe = service.create('probe');
    await waitFor('a later connection to be ready', () => probe.status === 'ready');
    assert.equal(connection.status, 'end');
  });
});
