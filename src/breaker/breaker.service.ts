import { Listeners } from '../common/listeners';
import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { Clock } from '../common/clock';
import { breakerConfig } from '../config/sections';
import { BreakerNotice } from './breaker-notice';
import { BreakerStateStore } from './breaker-state.store';
import { BreakerSnapshot, BreakerState, CircuitBreaker, GrantedPermit } from './circuit-breaker';
import { ProbePermits } from './probe-permits';

/** How often the shared state in Redis is re-read, besides after every reconnect of the subscription. */
/** Longest a request waits for the answer to a probe-permit claim before it is refused as half-open. */
const PERMIT_CLAIM_TIMEOUT_MS = 500;

/**
 * Most breakers kept per open-ended upstream (one configured without a model list, such as a single
 * UPSTREAM_URL), whose model names come from clients: beyond it, models share the upstream's
 * {@link OVERFLOW_MODEL} breaker.
 */
export const MAX_OPEN_ENDED_BREAKERS = 32;
/** Model part of the key of the breaker shared by an open-ended upstream's models beyond the cap. */
export const OVERFLOW_MODEL = '*';

export interface BreakerView extends BreakerSnapshot {
  key: string;
  upstream: string;
  model: string;
}

/**
 * One granted call, to hand back to exactly one of {@link BreakerService.onSuccess},
 * {@link BreakerService.onFailure} or {@link BreakerService.release}. It remembers the breaker that
 * granted it, so its outcome lands there even if the key would resolve elsewhere by then.
 */
export class BreakerLease {
  constructor(
    readonly key: string,
    readonly permit: GrantedPermit,
    /** @internal */ readonly breaker: CircuitBreaker,
  ) {}

  get probe(): boolean {
    return this.permit.probe;
  }
}

export type BreakerAnswer = { allowed: true; lease: BreakerLease } | { allowed: false; key: string; retryInMs: number };

/** `upstream:model`; the upstream name cannot hold a colon, so the first colon splits them. */
export function breakerKey(upstream: string, model: string): string {
  return `${upstream}:${model}`;
}

/**
 * One circuit breaker per upstream + model, created on first use, acting as one across instances:
 * - an opening is written to Redis (a key that expires with the open period) and announced through
 *   pub/sub, so every instance refuses together within milliseconds; the hot path reads memory only;
 * - Redis is the truth: after each reconnect of the subscription and every few seconds (`RESYNC_INTERVAL_MS`)
 *   the open states are re-read, adopting openings and dropping openings closed elsewhere;
 * - when the open period ends, an instance probes only while it holds the round's permit in Redis
 *   (taken atomically, with a TTL), so a recovering upstream sees one probe round, not one per instance;
 * - nothing stale is replayed: an open period that has ended has no key, so an instance started after
 *   the upstream healed starts closed.
 *
 * Model names of an open-ended upstream come from clients, so their breakers are bounded: up to
 * {@link MAX_OPEN_ENDED_BREAKERS} per upstream, then a closed breaker with an empty window (it knows
 * nothing worth keeping) gives up its place, and when none can, the model shares the upstream's
 * `upstream:*` breaker. Keys heard from other instances go through the same bound. Real models, which
 * carry traffic, keep their own breakers; made-up names leave no trace once their window empties.
 */
@Injectable()
export class BreakerService implements OnApplicationBootstrap {
  private readonly logger = new Logger(BreakerService.name);
  private readonly breakers = new Map<string, CircuitBreaker>();
  /** Per open-ended upstream, the keys of the breakers its client-named models created. */
  private readonly openEndedKeys = new Map<string, Set<string>>();
  private readonly overflowWarned = new Set<string>();
  private readonly listeners = new Listeners<[BreakerView]>('breaker change', this.logger);
  private readonly permits: ProbePermits;
  /** Keys whose current opening Redis holds (written by this instance or read from there). */
  private readonly sharedOpen = new Set<string>();

  constructor(
    @Inject(breakerConfig.KEY) private readonly config: ConfigType<typeof breakerConfig>,
    private readonly store: BreakerStateStore,
    private readonly clock: Clock,
  ) {
    this.permits = new ProbePermits((key) => this.store.claimProbe(key, this.config.probeRoundMs), () => this.clock.now());
  }

  async onApplicationBootstrap(): Promise<void> {
    this.store.onNotice((notice) => this.applyNotice(notice));
    // After a reconnect, pub/sub notices sent meanwhile are lost: the store re-reads the shared state then, and periodically.
    this.store.onResync(() => this.resync());
    await this.store.start();
    // Redis away at start: the store's poll reads the state as soon as it answers.
    await this.resync().catch(() => undefined);
  }

  /** Subscribe to state changes of any breaker (local or remote). */
  onChange(listener: (view: BreakerView) => void): void {
    this.listeners.add(listener);
  }

  /**
   * Asks to call `model` on `upstream`, claiming the cluster's probe permit when the breaker is
   * half-open and nobody holds it yet. `openEnded` marks an upstream without a configured model list,
   * whose model names are bounded as the class comment says.
   */
  async acquire(upstream: string, model: string, openEnded = false): Promise<BreakerAnswer> {
    const answer = this.tryAcquire(upstream, model, openEnded);
    if (answer.allowed || this.breakers.get(answer.key)?.state !== 'half_open' || this.permits.holds(answer.key)) return answer;
    const held = await this.permits.acquire(answer.key, PERMIT_CLAIM_TIMEOUT_MS);
    return held ? this.tryAcquire(upstream, model, openEnded) : answer;
  }

  /** Like {@link acquire} without waiting: a half-open breaker probes only with a permit already held. */
  tryAcquire(upstream: string, model: string, openEnded = false): BreakerAnswer {
    const key = this.resolveKey(upstream, model, openEnded, true);
    const breaker = this.breakers.get(key) ?? this.create(key);
    const permit = breaker.tryAcquire();
    return permit.allowed ? { allowed: true, lease: new BreakerLease(key, permit, breaker) } : { allowed: false, key, retryInMs: permit.retryInMs };
  }

  onSuccess(lease: BreakerLease, durationMs: number): void {
    lease.breaker.onSuccess(durationMs, lease.permit);
  }

  /** Judges a failed call; an upstream's Retry-After may lengthen an open period, never shorten it. */
  onFailure(lease: BreakerLease, durationMs: number, retryAfterMs?: number): void {
    lease.breaker.onFailure(durationMs, lease.permit);
    // Only once the window has judged the upstream: one 429 alone must not open a breaker.
    if (retryAfterMs !== undefined && retryAfterMs > 0 && lease.breaker.state === 'open') lease.breaker.openFor(retryAfterMs);
  }

  /** Ends a call without judging the upstream (client error, cancellation). */
  release(lease: BreakerLease): void {
    lease.breaker.release(lease.permit);
  }

  /** Time until `model` on `upstream` may be tried again; 0 when it may be tried now. */
  retryInMs(upstream: string, model: string, openEnded = false): number {
    return this.breakers.get(this.resolveKey(upstream, model, openEnded, false))?.snapshot().retryInMs ?? 0;
  }

  isOpen(upstream: string, model: string, openEnded = false): boolean {
    return this.breakers.get(this.resolveKey(upstream, model, openEnded, false))?.state === 'open';
  }

  list(): BreakerView[] {
    return [...this.breakers.entries()].map(([key, breaker]) => this.view(key, breaker.snapshot()));
  }

  /** One breaker's view, or undefined when this instance has none under `key`. */
  get(key: string): BreakerView | undefined {
    const breaker = this.breakers.get(key);
    return breaker ? this.view(key, breaker.snapshot()) : undefined;
  }

  /**
   * Forces a breaker closed here and on every instance. A key this instance has no breaker for is
   * still reset when Redis holds it open (another instance opened it). Undefined for a key that is
   * neither open in Redis nor held here.
   */
  async reset(key: string): Promise<BreakerView | undefined> {
    let breaker = this.breakers.get(key);
    if (!breaker) {
      if (key.indexOf(':') < 1 || !(await this.store.isOpen(key).catch(() => false))) return undefined;
      breaker = this.create(key);
    }
    breaker.forceClose();
    this.logger.warn(`breaker ${key}: reset by an operator`);
    this.forget(key);
    // Awaited, unlike ordinary transitions, so that the operator's answer means every instance was told.
    await this.store.writeClosed(key, this.isOpenEndedKey(key), breaker.snapshot().cooldownMs);
    return this.view(key, breaker.snapshot());
  }

  private create(key: string): CircuitBreaker {
    const { probeRoundMs: _probeRoundMs, ...options } = this.config;
    const breaker = new CircuitBreaker(options, this.clock);
    breaker.onTransition = (from, to, snap) => this.onLocalTransition(key, from, to, snap);
    breaker.probeGate = () => this.permits.holds(key);
    this.breakers.set(key, breaker);
    return breaker;
  }

  /**
   * The key `model` on `upstream` is judged under. For an open-ended upstream at its cap, `claim`
   * frees the place of an idle breaker for it; without `claim` (read-only paths) nothing changes.
   */
  private resolveKey(upstream: string, model: string, openEnded: boolean, claim: boolean): string {
    const key = breakerKey(upstream, model);
    if (!openEnded || this.breakers.has(key) || model === OVERFLOW_MODEL) return key;
    let keys = this.openEndedKeys.get(upstream);
    if (!keys) this.openEndedKeys.set(upstream, (keys = new Set()));
    if (keys.size < MAX_OPEN_ENDED_BREAKERS) {
      if (claim) keys.add(key);
      return key;
    }
    const idle = [...keys].find((k) => this.isIdle(k));
    if (idle !== undefined) {
      if (claim) {
        keys.delete(idle);
        this.breakers.delete(idle);
        this.forget(idle);
        keys.add(key);
      }
      return key;
    }
    if (claim && !this.overflowWarned.has(upstream)) {
      this.overflowWarned.add(upstream);
      this.logger.warn(`upstream ${upstream}: more than ${MAX_OPEN_ENDED_BREAKERS} models with recent outcomes; further models share breaker ${breakerKey(upstream, OVERFLOW_MODEL)}`);
    }
    return breakerKey(upstream, OVERFLOW_MODEL);
  }

  private isOpenEndedKey(key: string): boolean {
    const { upstream, model } = splitKey(key);
    return model === OVERFLOW_MODEL || (this.openEndedKeys.get(upstream)?.has(key) ?? false);
  }

  /** A closed breaker with no outcome in its window: dropping it loses nothing. */
  private isIdle(key: string): boolean {
    const snap = this.breakers.get(key)?.snapshot();
    return snap === undefined || (snap.state === 'closed' && snap.calls === 0);
  }

  private forget(key: string): void {
    this.permits.drop(key);
    this.sharedOpen.delete(key);
  }

  private view(key: string, snap: BreakerSnapshot): BreakerView {
    return { key, ...splitKey(key), ...snap };
  }

  private tell(key: string, snap: BreakerSnapshot): void {
    this.listeners.emit(this.view(key, snap));
  }

  /** Shares a local opening or closing (half-open is reached by every instance on its own). Never throws. */
  private onLocalTransition(key: string, from: BreakerState, to: BreakerState, snap: BreakerSnapshot): void {
    if (from !== to) this.logger.warn(`breaker ${key}: ${from} -> ${to} (failures ${snap.failures}/${snap.calls})`);
    this.tell(key, snap);
    if (to === 'half_open') return;
    this.forget(key);
    const openEnded = this.isOpenEndedKey(key);
    if (to === 'closed') {
      void this.store.writeClosed(key, openEnded, snap.cooldownMs);
      return;
    }
    void this.store.writeOpen(key, openEnded, snap.cooldownMs, snap.retryInMs).then((written) => {
      if (written && this.breakers.get(key)?.state === 'open') this.sharedOpen.add(key);
      else if (!written) this.logger.warn(`breaker ${key}: Redis did not take the opening; other instances will not hear of it`);
    });
  }

  /** Adopts another instance's opening or closing, within this instance's bound on breakers. */
  private applyNotice(notice: BreakerNotice): void {
    const { upstream, model } = splitKey(notice.key);
    // At the cap, this instance judges the model under its overflow breaker: the notice is not for it.
    if (this.resolveKey(upstream, model, notice.openEnded, notice.state === 'open') !== notice.key) return;
    let breaker = this.breakers.get(notice.key);
    // A close of a breaker this instance never had changes nothing: do not grow the map for it.
    if (!breaker && notice.state === 'closed') return;
    breaker ??= this.create(notice.key);
    this.forget(notice.key);
    if (notice.state === 'open') {
      const openedAt = this.clock.now() - Math.max(0, notice.cooldownMs - notice.remainingMs);
      breaker.applyRemote('open', openedAt, notice.cooldownMs);
      this.sharedOpen.add(notice.key);
    } else {
      breaker.applyRemote('closed', null, notice.cooldownMs);
    }
    this.tell(notice.key, breaker.snapshot());
  }

  /**
   * Re-reads the truth in Redis: adopts openings this instance has not heard of, and closes openings
   * it adopted or wrote that Redis no longer holds while their period still runs (closed elsewhere,
   * the notice lost). A breaker whose period has ended is half-open and settles through its probe round.
   */
  private async resync(): Promise<void> {
    // Only openings known before the read began may be judged by it (a write may land during the read).
    const knownBefore = new Set(this.sharedOpen);
    // Redis away: this rejects, the connection's own outage line says so, and the next poll retries.
    const entries = await this.store.readOpen();
    const open = new Set<string>();
    for (const entry of entries) {
      open.add(entry.key);
      const local = this.breakers.get(entry.key)?.snapshot();
      // Already open here for about as long (or just past it, probing): re-applying would only restart
      // its probe bookkeeping.
      if (local && local.state !== 'closed' && Math.abs(local.retryInMs - entry.remainingMs) < 1000) {
        this.sharedOpen.add(entry.key);
        continue;
      }
      this.applyNotice(entry);
    }
    for (const key of knownBefore) {
      if (open.has(key) || !this.sharedOpen.has(key)) continue;
      const breaker = this.breakers.get(key);
      this.sharedOpen.delete(key);
      if (breaker?.state !== 'open') continue;
      breaker.applyRemote('closed', null, breaker.snapshot().cooldownMs);
      this.permits.drop(key);
      this.tell(key, breaker.snapshot());
    }
  }
}

function splitKey(key: string): { upstream: string; model: string } {
  const colon = key.indexOf(':');
  return { upstream: key.slice(0, colon), model: key.slice(colon + 1) };
}
