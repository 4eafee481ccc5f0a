import { Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import type Redis from 'ioredis';
import { RedisService } from '../redis/redis.service';
import { ResponseStore } from './response-store';

/** Longest XREAD block: a log first watched while the loop blocks on others joins within this. */
const BLOCK_MS = 250;
/** A log nobody waited on for this long leaves the XREAD. */
const IDLE_MS = 5000;
/** Pause after a failed XREAD (Redis away) before the next. */
const RETRY_MS = 500;

interface Watched {
  /** The stream id after which the loop reads this log. */
  cursor: string;
  waiters: Set<() => void>;
  lastWanted: number;
}

/**
 * Wakes the readers of background-response event logs when their log grows: one blocking XREAD per
 * instance over every log being read here (never a connection or a timer per reader). Only a wake-up:
 * readers read the events themselves and re-check on their own deadline, so a missed wake-up costs
 * latency, never an event.
 */
@Injectable()
export class ResponseEventTail implements OnApplicationShutdown {
  private readonly logger = new Logger(ResponseEventTail.name);
  private readonly watched = new Map<string, Watched>();
  private connection?: Redis;
  private running = false;
  private stopped = false;

  constructor(private readonly redis: RedisService) {}

  onApplicationShutdown(): void {
    this.stopped = true;
    for (const w of this.watched.values()) for (const wake of w.waiters) wake();
    this.watched.clear();
  }

  /** Resolves once response `id` may have events after sequence number `after`, after `ms` at most, or when `signal` aborts. */
  wait(id: string, after: number, ms: number, signal: AbortSignal): Promise<void> {
    if (this.stopped || signal.aborted) return Promise.resolve();
    const key = ResponseStore.eventsKey(id);
    let watched = this.watched.get(key);
    if (!watched) {
      watched = { cursor: `0-${after + 1}`, waiters: new Set(), lastWanted: Date.now() };
      this.watched.set(key, watched);
    } else if (sequenceOf(watched.cursor) > after) {
      // The loop has seen more of this log than this reader: there is something to read now.
      return Promise.resolve();
    }
    const entry = watched;
    entry.lastWanted = Date.now();
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        entry.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      entry.waiters.add(done);
      this.run();
    });
  }

  private run(): void {
    if (this.running || this.stopped) return;
    this.running = true;
    this.connection ??= this.redis.bullConnection('response-tail');
    void this.loop().finally(() => (this.running = false));
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const now = Date.now();
      for (const [key, w] of this.watched) if (w.waiters.size === 0 && now - w.lastWanted > IDLE_MS) this.watched.delete(key);
      if (this.watched.size === 0) return;
      const keys = [...this.watched.keys()];
      let result: [string, [string, string[]][]][] | null;
      try {
        result = (await this.connection!.xread('COUNT', 1000, 'BLOCK', BLOCK_MS, 'STREAMS', ...keys, ...keys.map((k) => this.watched.get(k)!.cursor))) as typeof result;
      } catch (error) {
        if (this.stopped) return;
        this.logger.debug(`response event tail: ${(error as Error).message}`);
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS).unref());
        continue;
      }
      for (const [key, entries] of result ?? []) {
        const w = this.watched.get(key);
        if (!w || entries.length === 0) continue;
        w.cursor = entries[entries.length - 1][0];
        for (const wake of [...w.waiters]) wake();
      }
    }
  }
}

/** The sequence number of a log entry id (`0-(sequence_number + 1)`). */
function sequenceOf(entryId: string): number {
  return Number(entryId.slice(entryId.indexOf('-') + 1)) - 1;
}
