import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import Redis, { RedisOptions } from 'ioredis';
import { settleWithin } from '../common/deadline';
import { RUNTIME, Runtime } from '../runtime';
import { RedisOutageLog } from './redis-outage';
import { targetOptions } from './redis-target';

/** Errors that only say the link to Redis is down: the outage line covers them. */
const CONNECTION_ERRORS = /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN|Connection is closed|Stream isn't writeable|All sentinels are unreachable|Failed to refresh slots|MaxRetriesPerRequest|READONLY|LOADING|MASTERDOWN/;

/** Pause before a connection that ioredis gave up on starts over. */
const RESTART_DELAY_MS = 250;

/** Anything that reports failures through 'error' events: BullMQ's Queue and Worker, ioredis clients. */
export interface ErrorEmitter {
  on(event: 'error', listener: (error: Error) => void): unknown;
}

/**
 * The one factory of Redis connections, for a single server (REDIS_URL or the embedded child) or a
 * primary found through Sentinel. `client` fails fast while Redis is away (no offline queue), so the
 * hot path never waits on a dead Redis; BullMQ gets its own connections with the options it needs.
 * Every connection's reconnect noise becomes one log line per outage transition.
 */
@Injectable()
export class RedisService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(RedisService.name);
  private readonly connections: Redis[] = [];
  private readonly outage = new RedisOutageLog({
    warn: (fields, message) => this.logger.warn(fields, message),
    info: (fields, message) => this.logger.log(fields, message),
  });
  private closing = false;
  /** Connections their owner closed before shutdown (see {@link release}): these stay closed. */
  private readonly released = new WeakSet<Redis>();
  /** Error messages other than connection errors already logged, so a repeating one is logged once. */
  private readonly reported = new Set<string>();
  /** Commands of Bulwark's own state (breakers, rate limits, delivery). */
  readonly client: Redis;

  constructor(@Inject(RUNTIME) private readonly runtime: Runtime) {
    // Auto-pipelining: the commands of concurrent requests issued in one tick leave in one write (one syscall).
    this.client = this.create('state', { enableOfflineQueue: false, maxRetriesPerRequest: 1, enableAutoPipelining: true });
  }

  /**
   * Waits (briefly) for the first connection so start-up reads of shared state succeed. A Redis that is
   * away at start does not stop Bulwark: it serves health and refuses work until Redis answers.
   */
  async onModuleInit(): Promise<void> {
    if (this.ready) return;
    const connected = await settleWithin(new Promise<boolean>((resolve) => this.client.once('ready', () => resolve(true))), 5000, false);
    if (!connected) this.logger.warn('Redis is not reachable yet: new work is refused until it answers');
  }

  /** A new connection; the caller owns its subscriptions but not its closing (done on shutdown). */
  create(name: string, options: RedisOptions = {}): Redis {
    const target = targetOptions(this.runtime.redis);
    const settings: RedisOptions = {
      connectionName: `bulwark:${name}`,
      connectTimeout: 5000,
      retryStrategy: (attempt) => Math.min(100 * 2 ** Math.min(attempt, 5), 2000),
      ...target.options,
      ...options,
    };
    const connection = target.url ? new Redis(target.url, settings) : new Redis(settings);
    // The listener also keeps ioredis from printing every failed attempt to the console.
    connection.on('error', (error: Error) => {
      if (!this.closing) this.outage.lost(name, errorCode(error));
    });
    connection.on('close', () => {
      if (!this.closing) this.outage.lost(name, 'connection closed');
    });
    connection.on('ready', () => this.outage.back(name));
    connection.on('end', () => this.restartIfAbandoned(connection));
    this.connections.push(connection);
    return connection;
  }

  /** Closes a connection from {@link create} before shutdown, for good: it is not started again. */
  release(connection: Redis): void {
    this.released.add(connection);
    connection.disconnect();
  }

  /**
   * ioredis gives a connection up for good (status `end`) when its connect attempt is cancelled under
   * it: through Sentinel, the announcement of a new primary cancels an attempt that is still asking the
   * Sentinels where the primary is, and that connection would stay closed, holding readiness at 503. A
   * connection that nobody closed starts over, after a short pause, for as long as Bulwark runs.
   */
  private restartIfAbandoned(connection: Redis): void {
    if (this.closing || this.released.has(connection)) return;
    setTimeout(() => {
      if (this.closing || this.released.has(connection) || connection.status !== 'end') return;
      connection.connect().catch(() => undefined); // a failed attempt ends it again, which comes back here
    }, RESTART_DELAY_MS).unref();
  }

  /** A connection for BullMQ (blocking commands need maxRetriesPerRequest: null). */
  bullConnection(name: string): Redis {
    return this.create(name, { maxRetriesPerRequest: null, enableOfflineQueue: true });
  }

  /**
   * Listens to the 'error' events of a BullMQ Queue or Worker (without a listener, BullMQ prints each
   * one to the console as a stack trace). Connection errors are the outage line's business; any other
   * error is logged once per distinct message.
   */
  reportErrors(emitter: ErrorEmitter, name: string): void {
    emitter.on('error', (error: Error) => {
      if (this.closing || CONNECTION_ERRORS.test(`${errorCode(error)} ${error.message}`)) return;
      const key = `${name}: ${error.message}`;
      if (this.reported.has(key)) return;
      if (this.reported.size < 100) this.reported.add(key);
      this.logger.warn({ source: name, error: error.message }, `${name} error: ${error.message}`);
    });
  }

  /**
   * Whether Redis can take work: the state connection is ready and no other connection (BullMQ's,
   * the subscribers) is still reconnecting, as after a failover, when they reach the new primary one by one.
   */
  get ready(): boolean {
    return this.client.status === 'ready' && !this.outage.outage;
  }

  /** PING with a deadline; false when Redis does not answer in time. */
  async ping(timeoutMs = 1000): Promise<boolean> {
    if (!this.ready) return false;
    return (await settleWithin(this.client.ping(), timeoutMs, 'timeout')) === 'PONG';
  }

  async onApplicationShutdown(): Promise<void> {
    this.closing = true;
    await Promise.allSettled(this.connections.map((c) => c.quit().catch(() => c.disconnect())));
  }
}

function errorCode(error: Error): string {
  return (error as NodeJS.ErrnoException).code ?? error.name;
}
