import { Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
import { toErrorResponse } from '../common/error-response';
import { CancelledError, RemoteError } from '../common/errors';
import { RedisService } from '../redis/redis.service';
import type { ServedAnswer } from '../upstream/upstream.types';
import { AsyncChannel } from './async-channel';

/** An answer as the waiting HTTP handler receives it, wherever the job ran. */
export type DeliveredAnswer =
  | { kind: 'json'; status: number; body: unknown; upstream: string; model: string }
  | { kind: 'stream'; events: AsyncIterable<string>; upstream: string; model: string };

/** The handler's side of one sync job. */
export interface PendingDelivery {
  answer: Promise<DeliveredAnswer>;
  /** Set once a worker (here or elsewhere) has picked the job. */
  startedAt(): number | undefined;
  /** Resolves when a worker picks the job. */
  started: Promise<void>;
  dispose(): void;
}

interface Waiter {
  startedAt?: number;
  markStarted(at: number): void;
  resolve(answer: DeliveredAnswer): void;
  reject(error: unknown): void;
  channel?: AsyncChannel<string>;
  /** Local stream: resolves when the handler has finished reading it. */
  consumed?: () => void;
  /** Local stream: closes the upstream stream when the handler leaves without reading it. */
  closeStream?: () => void;
}

const INBOX_PREFIX = 'bulwark:inbox:';
const CANCEL_CHANNEL = 'bulwark:jobs:cancel';
const INBOX_MAX_LENGTH = 100_000;
const INBOX_TTL_SECONDS = 3600;

/**
 * Carries answers from the worker that ran a job to the HTTP handler that waits for it: in memory
 * when both are in this process, else through the handler instance's Redis Stream inbox (one blocking
 * reader per instance, not per request). Also carries cancellations to whichever instance runs a job.
 */
@Injectable()
export class DeliveryService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(DeliveryService.name);
  readonly instanceId = randomUUID();
  private readonly waiters = new Map<string, Waiter>();
  private readonly running = new Map<string, AbortController>();
  private reader?: Redis;
  private subscriber?: Redis;
  private stopped = false;
  private readerLoop?: Promise<void>;

  constructor(private readonly redis: RedisService) {}

  private get inbox(): string {
    return INBOX_PREFIX + this.instanceId;
  }

  async onApplicationBootstrap(): Promise<void> {
    this.reader = this.redis.bullConnection('delivery-inbox');
    this.subscriber = this.redis.create('jobs-cancel', { enableOfflineQueue: true, maxRetriesPerRequest: null });
    this.subscriber.on('message', (_channel: string, jobId: string) => this.running.get(jobId)?.abort(new CancelledError('job_cancel')));
    await this.subscriber.subscribe(CANCEL_CHANNEL).catch((error: Error) => this.logger.warn(`cancel subscribe failed: ${error.message}`));
    this.readerLoop = this.readInbox();
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    this.reader?.disconnect();
    await this.readerLoop?.catch(() => undefined);
    for (const waiter of this.waiters.values()) waiter.reject(new Error('shutting down'));
  }

  // ---- handler side -------------------------------------------------------------------------

  /** Registers interest in a job's answer; call before the job is added so nothing is missed. */
  expect(jobId: string): PendingDelivery {
    let resolve!: (answer: DeliveredAnswer) => void;
    let reject!: (error: unknown) => void;
    const answer = new Promise<DeliveredAnswer>((res, rej) => ((resolve = res), (reject = rej)));
    answer.catch(() => undefined);
    let markStarted!: () => void;
    const started = new Promise<void>((res) => (markStarted = res));
    const waiter: Waiter = {
      markStarted: (at) => {
        waiter.startedAt ??= at;
        markStarted();
      },
      resolve,
      reject,
    };
    this.waiters.set(jobId, waiter);
    return {
      answer,
      started,
      startedAt: () => waiter.startedAt,
      dispose: () => {
        this.waiters.delete(jobId);
        waiter.closeStream?.();
        waiter.consumed?.();
        waiter.channel?.fail(new Error('handler gone'));
      },
    };
  }

  // ---- worker side --------------------------------------------------------------------------

  /** Whether the handler of a job waits in this very process. */
  isLocal(origin: string, jobId: string): boolean {
    return origin === this.instanceId && this.waiters.has(jobId);
  }

  async started(origin: string, jobId: string, at: number): Promise<void> {
    if (origin === this.instanceId) {
      this.waiters.get(jobId)?.markStarted(at);
      return;
    }
    await this.send(origin, jobId, 'started', String(at));
  }

  /**
   * Hands a served answer to its handler and resolves when it is delivered: for a stream, once the
   * last chunk was handed over, so the job (and its concurrency slot) lasts as long as the upstream call.
   */
  async deliver(origin: string, jobId: string, answer: ServedAnswer): Promise<void> {
    const waiter = origin === this.instanceId ? this.waiters.get(jobId) : undefined;
    if (waiter) return this.deliverLocal(waiter, answer);
    if (origin === this.instanceId) {
      // The handler is gone (client left): close an unread stream so its upstream call and permit end.
      if (answer.kind === 'stream') await answer.rest[Symbol.asyncIterator]().return?.();
      return;
    }
    if (answer.kind === 'json') {
      await this.send(origin, jobId, 'json', JSON.stringify({ status: answer.status, body: answer.body, upstream: answer.upstream, model: answer.model }));
      return;
    }
    await this.send(origin, jobId, 'stream', JSON.stringify({ upstream: answer.upstream, model: answer.model }));
    try {
      for (const data of answer.first) await this.send(origin, jobId, 'chunk', data);
      for await (const data of answer.rest) await this.send(origin, jobId, 'chunk', data);
      await this.send(origin, jobId, 'end', '');
    } catch (error) {
      await this.send(origin, jobId, 'stream_error', JSON.stringify(toErrorResponse(error)));
      throw error;
    }
  }

  async fail(origin: string, jobId: string, error: unknown): Promise<void> {
    if (origin === this.instanceId) {
      this.waiters.get(jobId)?.reject(error);
      return;
    }
    await this.send(origin, jobId, 'error', JSON.stringify(toErrorResponse(error)));
  }

  private deliverLocal(waiter: Waiter, answer: ServedAnswer): Promise<void> {
    if (answer.kind === 'json') {
      waiter.resolve({ kind: 'json', status: answer.status, body: answer.body, upstream: answer.upstream, model: answer.model });
      return Promise.resolve();
    }
    return new Promise<void>((consumed) => {
      waiter.consumed = consumed;
      waiter.closeStream = () => void answer.rest[Symbol.asyncIterator]().return?.()?.catch(() => undefined);
      const events = (async function* () {
        try {
          yield* answer.first;
          yield* answer.rest;
        } finally {
          consumed();
        }
      })();
      waiter.resolve({ kind: 'stream', events, upstream: answer.upstream, model: answer.model });
    });
  }

  // ---- cancellation -------------------------------------------------------------------------

  /** A worker here runs `jobId` under `controller`; a cancel from any instance aborts it. */
  track(jobId: string, controller: AbortController): () => void {
    this.running.set(jobId, controller);
    return () => this.running.delete(jobId);
  }

  /** Aborts a running job wherever it runs. */
  async cancel(jobId: string): Promise<void> {
    this.running.get(jobId)?.abort(new CancelledError('job_cancel'));
    await this.redis.client.publish(CANCEL_CHANNEL, jobId).catch(() => undefined);
  }

  // ---- the inbox ----------------------------------------------------------------------------

  private async send(origin: string, jobId: string, type: string, payload: string): Promise<void> {
    const key = INBOX_PREFIX + origin;
    await this.redis.client
      .multi()
      .xadd(key, 'MAXLEN', '~', String(INBOX_MAX_LENGTH), '*', 'j', jobId, 't', type, 'p', payload)
      .expire(key, INBOX_TTL_SECONDS)
      .exec();
  }

  private async readInbox(): Promise<void> {
    let lastId = '$';
    while (!this.stopped) {
      try {
        const result = (await this.reader!.xread('COUNT', 1000, 'BLOCK', 1000, 'STREAMS', this.inbox, lastId)) as [string, [string, string[]][]][] | null;
        if (!result) continue;
        for (const [, entries] of result) {
          for (const [id, fields] of entries) {
            lastId = id;
            this.onInboxMessage(fields[1], fields[3], fields[5]);
          }
        }
      } catch (error) {
        if (this.stopped) return;
        this.logger.warn(`inbox read failed: ${(error as Error).message}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  private onInboxMessage(jobId: string, type: string, payload: string): void {
    const waiter = this.waiters.get(jobId);
    if (!waiter) return;
    switch (type) {
      case 'started':
        waiter.markStarted(Number(payload));
        break;
      case 'json': {
        const answer = JSON.parse(payload) as { status: number; body: unknown; upstream: string; model: string };
        waiter.resolve({ kind: 'json', ...answer });
        break;
      }
      case 'stream': {
        const head = JSON.parse(payload) as { upstream: string; model: string };
        waiter.channel = new AsyncChannel<string>();
        waiter.resolve({ kind: 'stream', events: waiter.channel, ...head });
        break;
      }
      case 'chunk':
        waiter.channel?.push(payload);
        break;
      case 'end':
        waiter.channel?.end();
        break;
      case 'stream_error':
        waiter.channel?.fail(new RemoteError(JSON.parse(payload)));
        break;
      case 'error':
        waiter.reject(new RemoteError(JSON.parse(payload)));
        break;
    }
  }
}
