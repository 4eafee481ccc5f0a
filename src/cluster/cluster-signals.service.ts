import { Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import type Redis from 'ioredis';
import { Clock } from '../common/clock';
import { Listeners } from '../common/listeners';
import { RedisService } from '../redis/redis.service';

/**
 * What a channel's messages stand for, read from Redis itself: pub/sub drops whatever is published while
 * the subscriber reconnects, so every channel that carries something that must land has a poll that
 * finds it anyway (the cancel keys of the jobs running here, the open breakers, waiting work, permit counts).
 */
export interface SignalPoll {
  /** At least this long between two runs (the shared timer runs it on its first tick after that). */
  everyMs: number;
  /** Reads the truth and acts on it; a rejection means "try again on the next tick". */
  run(): unknown;
}

/** A message handler; one that throws is logged and never keeps the others from their message. */
export type SignalHandler = (message: string) => unknown;

interface PollEntry extends SignalPoll {
  lastRunAt: number;
  /** Must run on the next tick whatever its interval: never run yet, the subscriber reconnected, or it failed. */
  owed: boolean;
  running: boolean;
}

interface Channel {
  handlers: Listeners<[string]>;
  polls: Set<PollEntry>;
}

/** The shared timer never sleeps longer than this (a failed poll is retried within it). */
const MAX_TICK_MS = 1000;
/** Nor wakes more often than this. */
const MIN_TICK_MS = 50;

/**
 * The one subscriber connection of this process, and the one poll timer behind every channel. A channel's
 * handlers are isolated from each other (see {@link Listeners}); after every (re)connect the channels are
 * subscribed again and, once the subscription is confirmed, every poll runs at once, so a message lost
 * meanwhile still lands. Polls also run on one shared timer, each at its own interval, never two runs of
 * one poll at a time, and only while the state connection is up (a poll that cannot reach Redis waits for
 * the next tick rather than adding errors to an outage).
 */
@Injectable()
export class ClusterSignals implements OnApplicationShutdown {
  private readonly logger = new Logger(ClusterSignals.name);
  private readonly channels = new Map<string, Channel>();
  private subscriber?: Redis;
  private timer?: NodeJS.Timeout;
  private tickMs = MAX_TICK_MS;
  private stopped = false;

  constructor(
    private readonly redis: RedisService,
    private readonly clock: Clock,
  ) {}

  /**
   * Calls `handler` with every message on `channel` (from any instance, this one included) and runs
   * `poll`, if given, behind it. Returns the function that removes both again.
   */
  subscribe(channel: string, handler: SignalHandler, poll?: SignalPoll): () => void {
    let entry = this.channels.get(channel);
    if (!entry) {
      entry = { handlers: new Listeners<[string]>(`message on ${channel}`, this.logger), polls: new Set() };
      this.channels.set(channel, entry);
      this.listen(channel);
    }
    const removeHandler = entry.handlers.add(handler);
    const pollEntry = poll ? this.addPoll(entry, poll) : undefined;
    const registered = entry;
    return () => {
      removeHandler();
      if (pollEntry) registered.polls.delete(pollEntry);
      if (registered.handlers.size > 0 || this.channels.get(channel) !== registered) return;
      this.channels.delete(channel);
      if (this.subscriber?.status === 'ready') void this.subscriber.unsubscribe(channel).catch(() => undefined);
    };
  }

  /** Publishes `message` on `channel`, best effort (whoever must not miss it has a poll): false when Redis did not take it. */
  async publish(channel: string, message: string): Promise<boolean> {
    try {
      await this.redis.client.publish(channel, message);
      return true;
    } catch {
      return false;
    }
  }

  /** Runs every poll that is due (the shared timer calls this; tests may too). */
  tick(): void {
    if (this.stopped || this.redis.client.status !== 'ready') return;
    const now = this.clock.now();
    for (const channel of this.channels.values()) {
      for (const poll of channel.polls) {
        if (poll.owed || now - poll.lastRunAt >= poll.everyMs) void this.runPoll(poll, now);
      }
    }
  }

  onApplicationShutdown(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  private addPoll(channel: Channel, poll: SignalPoll): PollEntry {
    const entry: PollEntry = { everyMs: poll.everyMs, run: () => poll.run(), lastRunAt: -Infinity, owed: true, running: false };
    channel.polls.add(entry);
    const tickMs = Math.min(MAX_TICK_MS, Math.max(MIN_TICK_MS, poll.everyMs));
    if (!this.timer || tickMs < this.tickMs) {
      this.tickMs = Math.min(this.tickMs, tickMs);
      clearInterval(this.timer);
      this.timer = setInterval(() => this.tick(), this.tickMs);
      this.timer.unref();
    }
    return entry;
  }

  private async runPoll(poll: PollEntry, now: number): Promise<void> {
    if (poll.running) {
      // A reconnect happened while it ran: the run under way may have read too early.
      poll.owed = true;
      return;
    }
    poll.running = true;
    poll.owed = false;
    poll.lastRunAt = now;
    try {
      await poll.run();
    } catch (error) {
      poll.owed = true;
      this.logger.debug(`poll failed, retried on the next tick: ${(error as Error).message}`);
    } finally {
      poll.running = false;
    }
  }

  /** Subscribes `channel` on the one connection, opening it on first use. */
  private listen(channel: string): void {
    if (!this.subscriber) {
      this.subscriber = this.connect();
      return; // Its 'ready' subscribes every channel known by then.
    }
    if (this.subscriber.status === 'ready') {
      void this.subscriber.subscribe(channel).catch((error: Error) => this.logger.debug(`subscribe ${channel} failed: ${error.message}`));
    }
  }

  private connect(): Redis {
    // Resubscribing is done here rather than by ioredis, so that the polls run once it is confirmed.
    const subscriber = this.redis.create('cluster-signals', { enableOfflineQueue: true, maxRetriesPerRequest: null, autoResubscribe: false });
    subscriber.on('message', (channel: string, message: string) => this.channels.get(channel)?.handlers.emit(message));
    subscriber.on('ready', () => void this.resubscribe(subscriber));
    return subscriber;
  }

  private async resubscribe(subscriber: Redis): Promise<void> {
    const names = [...this.channels.keys()];
    if (names.length > 0) {
      try {
        await subscriber.subscribe(...names);
      } catch (error) {
        // The connection dropped again: its next 'ready' tries again.
        this.logger.debug(`resubscribe failed: ${(error as Error).message}`);
        return;
      }
    }
    // Whatever was published while the subscriber was away is found by the polls.
    for (const channel of this.channels.values()) for (const poll of channel.polls) poll.owed = true;
    this.tick();
  }
}
