import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import Redis, { RedisOptions } from 'ioredis';
import { RUNTIME, Runtime } from '../runtime';

/**
 * The one factory of Redis connections. `client` fails fast while Redis is away (no offline queue),
 * so the hot path never waits on a dead Redis; BullMQ gets its own connections with the options it needs.
 */
@Injectable()
export class RedisService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(RedisService.name);
  private readonly connections: Redis[] = [];
  /** Commands of Bulwark's own state (breakers, rate limits, delivery). */
  readonly client: Redis;

  constructor(@Inject(RUNTIME) private readonly runtime: Runtime) {
    this.client = this.create('state', { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
  }

  /**
   * Waits (briefly) for the first connection so start-up reads of shared state succeed. A Redis that is
   * away at start does not stop Bulwark: it serves health and refuses work until Redis answers.
   */
  async onModuleInit(): Promise<void> {
    if (this.ready) return;
    const connected = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 5000);
      this.client.once('ready', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    if (!connected) this.logger.warn('Redis is not reachable yet: new work is refused until it answers');
  }

  /** A new connection; the caller owns its subscriptions but not its closing (done on shutdown). */
  create(name: string, options: RedisOptions = {}): Redis {
    const connection = new Redis(this.runtime.redisUrl, {
      connectionName: `bulwark:${name}`,
      connectTimeout: 5000,
      retryStrategy: (attempt) => Math.min(100 * 2 ** Math.min(attempt, 5), 2000),
      ...options,
    });
    let lastState = '';
    connection.on('error', (error: Error) => {
      // ioredis reconnects by itself; log each kind of failure once per outage, not every attempt.
      const code = (error as NodeJS.ErrnoException).code ?? error.name;
      if (code !== lastState) this.logger.warn(`redis connection ${name}: ${code}`);
      lastState = code;
    });
    connection.on('ready', () => {
      if (lastState) this.logger.log(`redis connection ${name} is back`);
      lastState = '';
    });
    this.connections.push(connection);
    return connection;
  }

  /** Options for BullMQ's connections (blocking commands need maxRetriesPerRequest: null). */
  bullConnection(name: string): Redis {
    return this.create(name, { maxRetriesPerRequest: null, enableOfflineQueue: true });
  }

  get ready(): boolean {
    return this.client.status === 'ready';
  }

  /** PING with a deadline; false when Redis does not answer in time. */
  async ping(timeoutMs = 1000): Promise<boolean> {
    if (!this.ready) return false;
    let timer: NodeJS.Timeout | undefined;
    try {
      const answer = await Promise.race([
        this.client.ping(),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('timeout')), timeoutMs))),
      ]);
      return answer === 'PONG';
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.allSettled(this.connections.map((c) => c.quit().catch(() => c.disconnect())));
  }
}
