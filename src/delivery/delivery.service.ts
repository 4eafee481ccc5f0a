import { Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type Redis from 'ioredis';
import { CancellationService } from '../cancellation/cancellation.service';
import { ClusterIdentity } from '../cluster/cluster-identity';
import { toErrorResponse } from '../common/error-response';
import { RemoteError, UpstreamError } from '../common/errors';
import { RedisService } from '../redis/redis.service';
import type { ServedAnswer } from '../upstream/upstream.types';
import { AsyncChannel } from './async-channel';
import { StreamBatcher } from './stream-batcher';

/** An answer as the waiting HTTP handler receives it, wherever the job ran. */
export type DeliveredAnswer =
  | { kind: 'json'; status: number; body: unknown; upstream: string; model: string; hedged?: boolean }
  | { kind: 'stream'; events: AsyncIterable<string>; upstream: string; model: string; hedged?: boolean };

/** The handler's side of one queued sync job. */
export interface PendingDelivery {
  answer: Promise<DeliveredAnswer>;
  /** Set once a worker (here or elsewhere) has picked the job. */
  startedAt(): number | undefined;
  /** Whether the whole answer arrived (a JSON answer, or a stream through its end). */
  complete(): boolean;
  dispose(): void;
}

interface Waiter {
  startedAt?: number;
  complete: boolean;
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
const INBOX_TTL_SECONDS = 3600;
/** Most chunks a handler buffers for a stream relayed from another instance before it gives up on it. */
const RELAY_BUFFER_CHUNKS = 2000;

/**
 * Carries answers from the worker that ran a queued job to the HTTP handler that waits for it: in memory
 * when both are in this process, else through the handler instance's Redis Stream inbox (one blocking
 * reader per instance, not per request; stream chunks batched per round trip; the reader trims only what
 * it has read).
 */
@Injectable()
export class DeliveryService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(DeliveryService.name);
  private readonly waiters = new Map<string, Waiter>();
  private reader?: Redis;
  private stopped = false;
  private readerLoop?: Promise<void>;

  constructor(
    private readonly redis: RedisService,
    private readonly identity: ClusterIdentity,
    private readonly cancellation: CancellationService,
  ) {}

  get instanceId(): string {
    return this.identity.id;
  }

  private get inbox(): string {
    return INBOX_PREFIX + this.identity.id;
  }

  onApplicationBootstrap(): void {
    this.reader = this.redis.bullConnection('delivery-inbox');
    this.readerLoop = this.readInbox();
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    if (this.reader) this.redis.release(this.reader);
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
    const waiter: Waiter = {
      complete: false,
      markStarted: (at) => (waiter.startedAt ??= at),
      resolve,
      reject,
    };
    this.waiters.set(jobId, waiter);
    return {
      answer,
      startedAt: () => waiter.startedAt,
      complete: () => waiter.complete,
      dispose: () => {
        this.waiters.delete(jobId);
        waiter.closeStream?.();
        waiter.consumed?.();
        waiter.channel?.fail(new Error('handler gone'));
      },
    };
  }

  // ---- worker side --------------------------------------------------------------------------

  async started(origin: string, jobId: string, at: number): Promise<void> {
    if (origin === this.identity.id) {
      this.waiters.get(jobId)?.markStarted(at);
      return;
    }
    await this.send(origin, jobId, 'started', String(at));
  }

  /**
   * Hands a served answer to its handler and resolves when it is delivered: for a stream, once the
   * last chunk was handed over, so the job (and its slot) lasts as long as the upstream call.
   */
  async deliver(origin: string, jobId: string, answer: ServedAnswer): Promise<void> {
    const waiter = origin === this.identity.id ? this.waiters.get(jobId) : undefined;
    if (waiter) return this.deliverLocal(waiter, answer);
    if (origin === this.identity.id) {
      // The handler is gone (client left): close an unread stream so its upstream call and permit end.
      if (answer.kind === 'stream') await answer.rest[Symbol.asyncIterator]().return?.();
      return;
    }
    if (answer.kind === 'json') {
      await this.send(origin, jobId, 'json', JSON.stringify({ status: answer.status, body: answer.body, upstream: answer.upstream, model: answer.model, hedged: answer.hedged }));
      return;
    }
    await this.send(origin, jobId, 'stream', JSON.stringify({ upstream: answer.upstream, model: answer.model, hedged: answer.hedged }));
    const batcher = new StreamBatcher((chunks) => this.send(origin, jobId, 'chunks', JSON.stringify(chunks)));
    try {
      for (const data of answer.first) await batcher.push(data);
      for await (const data of answer.rest) await batcher.push(data);
      await batcher.flush();
      await this.send(origin, jobId, 'end', '');
    } catch (error) {
      await batcher.flush().catch(() => undefined);
      await this.send(origin, jobId, 'stream_error', JSON.stringify(toErrorResponse(error)));
      throw error;
    }
  }

  async fail(origin: string, jobId: string, error: unknown): Promise<void> {
    if (origin === this.identity.id) {
      this.waiters.get(jobId)?.reject(error);
      return;
    }
    await this.send(origin, jobId, 'error', JSON.stringify(toErrorResponse(error)));
  }

  private deliverLocal(waiter: Waiter, answer: ServedAnswer): Promise<void> {
    if (answer.kind === 'json') {
      waiter.complete = true;
      waiter.resolve({ kind: 'json', status: answer.status, body: answer.body, upstream: answer.upstream, model: answer.model, hedged: answer.hedged });
      return Promise.resolve();
    }
    return new Promise<void>((consumed) => {
      waiter.consumed = consumed;
      waiter.closeStream = () => void answer.rest[Symbol.asyncIterator]().return?.()?.catch(() => undefined);
      const events = (async function* () {
        try {
          yield* answer.first;
          yield* answer.rest;
          waiter.complete = true;
        } finally {
          consumed();
        }
      })();
      waiter.resolve({ kind: 'stream', events, upstream: answer.upstream, model: answer.model, hedged: answer.hedged });
    });
  }

  // ---- the inbox ----------------------------------------------------------------------------

  private async send(origin: string, jobId: string, type: string, payload: string): Promise<void> {
    const key = INBOX_PREFIX + origin;
    await this.redis.client.multi().xadd(key, '*', 'j', jobId, 't', type, 'p', payload).expire(key, INBOX_TTL_SECONDS).exec();
  }

  private async readInbox(): Promise<void> {
    // The inbox is new with this process (its id is), so reading from the start misses nothing.
    let lastId = '0-0';
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
        // Only what was read is trimmed: a live stream's unread chunks are never cut.
        void this.reader!.xtrim(this.inbox, 'MINID', lastId).catch(() => undefined);
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
        waiter.complete = true;
        waiter.resolve({ kind: 'json', ...answer });
        break;
      }
      case 'stream': {
        const head = JSON.parse(payload) as { upstream: string; model: string };
        waiter.channel = new AsyncChannel<string>();
        waiter.resolve({ kind: 'stream', events: waiter.channel, ...head });
        break;
      }
      case 'chunks': {
        const channel = waiter.channel;
        if (!channel) break;
        for (const data of JSON.parse(payload) as string[]) channel.push(data);
        if (channel.buffered > RELAY_BUFFER_CHUNKS) {
          // The client reads slower than the upstream writes: end its stream rather than buffer without bound.
          channel.fail(new UpstreamError('The client read the stream too slowly; it was ended to keep the gateway\'s memory bounded'));
          void this.cancellation.cancel(jobId).catch(() => undefined);
        }
        break;
      }
      case 'end':
        waiter.complete = true;
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
