import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { ClusterLeases } from '../cluster/cluster-leases.service';
import { ClusterSignals } from '../cluster/cluster-signals.service';
import { LeaseGroup } from '../cluster/lease-group';
import { Clock } from '../common/clock';
import { upstreamConfig } from '../config/sections';
import { RedisService } from '../redis/redis.service';
import { ACQUIRE_LEASE, RELEASE_LEASE } from './upstream-lease-scripts';
import { UpstreamRegistry } from './upstream-registry';
import type { UpstreamDefinition } from './upstream.types';

/** A lease lapses this long after its last renewal: a crashed instance's counts are gone within it. */
const LEASE_TTL_MS = 5000;
/**
 * Cross-instance in-flight counts are read this often (plus local deltas in between); it is also the poll
 * behind the release channel: a waiter whose upstream has room after a read is woken, message or not.
 */
const REFRESH_MS = 150;
/** Polled upstream queues older than this are ignored. */
const POLLED_STALE_MS = 30_000;
/** A lease set with no renewal for this long is dropped by Redis itself. */
const KEY_TTL_MS = LEASE_TTL_MS * 4;
const RELEASED_CHANNEL = 'bulwark:upstream-permit-released';
/** The lease set of an upstream: members are attempts in flight, scores their expiry (epoch ms). */
export const leaseKey = (upstream: string) => `bulwark:upstream-leases:${upstream}`;

/** The right to send one attempt to an upstream; release it exactly once when the attempt ends. */
export interface UpstreamPermit {
  release(): void;
}

const NO_PERMIT_NEEDED: UpstreamPermit = Object.freeze({ release: () => undefined });

interface Counts {
  /** In flight on every instance at the last refresh. */
  refreshed: number;
  acquired: number;
  released: number;
  acquiredAtRefresh: number;
  releasedAtRefresh: number;
  /** Leases this instance holds now (the local bound when Redis is away). */
  held: number;
  /** Requests waiting here for a permit of this upstream. */
  waiting: number;
  polledQueue?: { waiting: number; observedAt: number };
}

interface Waiter {
  upstreams: ReadonlySet<string>;
  wake(): void;
}

/**
 * In-flight attempts per upstream across every instance, as lease sets in Redis: the bulkhead of an
 * upstream's `maxConcurrency` (a permit is taken atomically, never beyond the cap) and the load that
 * load-aware routing reads. Only upstreams that need it are tracked: those with a cap, and (with
 * `ROUTING=least-loaded` or `prefix-aware`) those sharing a model with another upstream; a model served by one uncapped
 * upstream costs nothing. Uncapped leases are written without waiting for Redis; the router reads a
 * snapshot refreshed every 150 ms plus this instance's own changes since.
 */
@Injectable()
export class UpstreamLeases implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(UpstreamLeases.name);
  private readonly counts = new Map<string, Counts>();
  private readonly caps = new Map<string, number | undefined>();
  /** The permits held by this instance, renewed by the cluster's lease loop. */
  private readonly held: LeaseGroup;
  private readonly waiters = new Set<Waiter>();
  private readonly waitingByModel = new Map<string, number>();
  private refreshing = false;

  constructor(
    private readonly redis: RedisService,
    registry: UpstreamRegistry,
    @Inject(upstreamConfig.KEY) config: Pick<ConfigType<typeof upstreamConfig>, 'routing'>,
    private readonly clock: Clock,
    private readonly leases: ClusterLeases,
    private readonly signals: ClusterSignals,
  ) {
    // A permit taken while Redis was away is never written over the cap by a renewal (no reassert).
    this.held = leases.group({ name: 'upstream permits', ttlMs: LEASE_TTL_MS, reassert: false, setTtlMs: KEY_TTL_MS });
    for (const upstream of registry.all()) {
      const shared = config.routing !== 'weighted' && sharesAModel(upstream, registry);
      if (upstream.maxConcurrency !== undefined || shared) {
        this.caps.set(upstream.name, upstream.maxConcurrency);
        this.counts.set(upstream.name, { refreshed: 0, acquired: 0, released: 0, acquiredAtRefresh: 0, releasedAtRefresh: 0, held: 0, waiting: 0 });
      }
    }
  }

  async onApplicationBootstrap(): Promise<void> {
    if (this.counts.size === 0) return;
    this.signals.subscribe(RELEASED_CHANNEL, (upstream) => this.wake(upstream), { everyMs: REFRESH_MS, run: () => this.refreshAndWake() });
    await this.refresh().catch(() => undefined);
  }

  /** Waiters look again at once (the shutdown); the cluster forgets this instance's leases. */
  beforeApplicationShutdown(): void {
    for (const waiter of this.waiters) waiter.wake();
  }

  /** Whether attempts to `upstream` are counted (it has a cap or shares a model under least-loaded routing). */
  tracks(upstream: string): boolean {
    return this.counts.has(upstream);
  }

  /**
   * A permit for one attempt, or undefined when the upstream is at its `maxConcurrency` on every
   * instance together. Untracked upstreams always get one at no cost. With Redis away, a capped
   * upstream is bounded by this instance's own leases (it can never exceed its cap from here alone).
   */
  async tryAcquire(upstream: UpstreamDefinition): Promise<UpstreamPermit | undefined> {
    const counts = this.counts.get(upstream.name);
    if (!counts) return NO_PERMIT_NEEDED;
    const cap = this.caps.get(upstream.name);
    const member = this.held.newMember();
    const args = [leaseKey(upstream.name), String(LEASE_TTL_MS), member, String(cap ?? 0), String(KEY_TTL_MS)];
    // Counted at once, so that concurrent picks on this instance already see it.
    counts.acquired++;
    counts.held++;
    if (cap === undefined) {
      // Only a load figure: written without making the request wait for Redis.
      if (this.redis.ready) void this.redis.client.eval(ACQUIRE_LEASE, 1, ...args).catch(() => undefined);
      return this.permit(upstream.name, member, counts, false);
    }
    let taken: boolean;
    try {
      if (!this.redis.ready) throw new Error('redis not ready');
      taken = (await this.redis.client.eval(ACQUIRE_LEASE, 1, ...args)) === 1;
    } catch {
      taken = counts.held <= cap;
    }
    if (!taken) {
      counts.acquired--;
      counts.held--;
      return undefined;
    }
    return this.permit(upstream.name, member, counts, true);
  }

  private permit(upstream: string, member: string, counts: Counts, capped: boolean): UpstreamPermit {
    this.held.hold(member, leaseKey(upstream));
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.held.drop(member);
        counts.released++;
        counts.held--;
        if (this.redis.ready) {
          void this.redis.client.eval(RELEASE_LEASE, 1, leaseKey(upstream), member, capped ? RELEASED_CHANNEL : '', upstream).catch(() => undefined);
        }
        // Waiters here need not wait for the message to come back.
        if (capped) this.wake(upstream);
      },
    };
  }

  /**
   * Waits until a permit of one of `upstreams` may have been released (a release message, or the poll
   * fallback), the signal aborts, or `deadlineAt`: never longer. The caller then tries again. The wait
   * shows in {@link waitingFor} (per model) and {@link details} (per upstream).
   */
  async waitForPermit(upstreams: readonly UpstreamDefinition[], model: string, signal: AbortSignal, deadlineAt: number): Promise<void> {
    const names = new Set(upstreams.map((u) => u.name));
    const counted = [...names].map((name) => this.counts.get(name)).filter((c): c is Counts => c !== undefined);
    for (const c of counted) c.waiting++;
    this.waitingByModel.set(model, (this.waitingByModel.get(model) ?? 0) + 1);
    let waiter: Waiter | undefined;
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    try {
      await new Promise<void>((resolve) => {
        waiter = { upstreams: names, wake: resolve };
        this.waiters.add(waiter);
        timer = setTimeout(resolve, Math.max(0, deadlineAt - this.clock.now()));
        onAbort = resolve;
        if (signal.aborted) resolve();
        else signal.addEventListener('abort', onAbort, { once: true });
      });
    } finally {
      clearTimeout(timer);
      if (waiter) this.waiters.delete(waiter);
      if (onAbort) signal.removeEventListener('abort', onAbort);
      for (const c of counted) c.waiting--;
      const left = (this.waitingByModel.get(model) ?? 1) - 1;
      if (left > 0) this.waitingByModel.set(model, left);
      else this.waitingByModel.delete(model);
    }
  }

  /** Attempts in flight to `upstream` on every instance (snapshot plus local changes since). */
  inFlight(upstream: string): number {
    const c = this.counts.get(upstream);
    if (!c) return 0;
    return Math.max(c.held, c.refreshed + (c.acquired - c.acquiredAtRefresh) - (c.released - c.releasedAtRefresh));
  }

  /** Leases of `upstream` this instance holds now. */
  heldHere(upstream: string): number {
    return this.counts.get(upstream)?.held ?? 0;
  }

  /** The upstream's own polled queue (vLLM), when fresh; else 0. */
  polledQueue(upstream: string): number {
    const polled = this.counts.get(upstream)?.polledQueue;
    return polled && this.clock.now() - polled.observedAt <= POLLED_STALE_MS ? polled.waiting : 0;
  }

  /** The routing load of `upstream`: its in-flight attempts plus its own polled queue (vLLM), when fresh. */
  load(upstream: string): number {
    const polled = this.counts.get(upstream)?.polledQueue;
    const queued = polled && this.clock.now() - polled.observedAt <= POLLED_STALE_MS ? polled.waiting : 0;
    return this.inFlight(upstream) + queued;
  }

  /** Records an upstream's own queue, as polled from its /metrics (vLLM `num_requests_waiting`). */
  setPolledQueue(upstream: string, waiting: number): void {
    const c = this.counts.get(upstream);
    if (c) c.polledQueue = { waiting, observedAt: this.clock.now() };
  }

  /** Requests waiting on this instance for a permit, per model. */
  waitingFor(): ReadonlyMap<string, number> {
    return this.waitingByModel;
  }

  /** Per-upstream figures for /health: cap, in flight everywhere, waiting here. Undefined when untracked. */
  details(upstream: string): { max_concurrency: number | null; in_flight: number; waiting: number } | undefined {
    const c = this.counts.get(upstream);
    if (!c) return undefined;
    return { max_concurrency: this.caps.get(upstream) ?? null, in_flight: this.inFlight(upstream), waiting: c.waiting };
  }

  private wake(upstream: string): void {
    for (const waiter of this.waiters) if (waiter.upstreams.has(upstream)) waiter.wake();
  }

  /** The poll behind the release channel: fresh counts, then every waiter whose upstream has room now tries again. */
  private async refreshAndWake(): Promise<void> {
    await this.refresh();
    for (const [upstream, cap] of this.caps) {
      if (cap !== undefined && this.inFlight(upstream) < cap) this.wake(upstream);
    }
  }

  /** Reads every tracked upstream's live lease count in one round trip; rejects when Redis did not answer. */
  async refresh(): Promise<void> {
    if (this.refreshing || !this.redis.ready) return;
    this.refreshing = true;
    const names = [...this.counts.keys()];
    const marks = names.map((name) => {
      const c = this.counts.get(name) as Counts;
      return { acquired: c.acquired, released: c.released };
    });
    try {
      const live = await this.leases.countLive(names.map(leaseKey));
      names.forEach((name, i) => {
        const c = this.counts.get(name) as Counts;
        c.refreshed = live[i] ?? c.refreshed;
        c.acquiredAtRefresh = marks[i].acquired;
        c.releasedAtRefresh = marks[i].released;
      });
    } catch (error) {
      this.logger.debug(`lease counts refresh failed: ${(error as Error).message}`);
      throw error;
    } finally {
      this.refreshing = false;
    }
  }
}

/** Whether some model `upstream` serves is served by another upstream too (an upstream open to any model shares all). */
function sharesAModel(upstream: UpstreamDefinition, registry: UpstreamRegistry): boolean {
  const others = registry.all().filter((u) => u.name !== upstream.name);
  if (others.length === 0) return false;
  if (upstream.models.length === 0) return true;
  return upstream.models.some((model) => registry.servingModel(model).length > 1);
}
