import { Clock } from '../common/clock';
import { OutcomeWindow } from './outcome-window';

/** Breaker state. `half_open` lets a fixed number of probe calls through to test the upstream. */
export type BreakerState = 'closed' | 'open' | 'half_open';

/** Configuration of a {@link CircuitBreaker}. Durations in milliseconds, ratios in (0, 1]. */
export interface BreakerOptions {
  /** Number of most recent outcomes considered. */
  windowSize: number;
  /** The breaker never opens while the window holds fewer outcomes than this. */
  minCalls: number;
  /** Opens when failures / calls reaches this. */
  failureRatio: number;
  /** Outcomes older than this no longer count. */
  windowMs: number;
  /** Base time spent open before probing. */
  cooldownMs: number;
  /** Probe calls allowed, in total, per half-open period; all must succeed to close. */
  halfOpenProbes: number;
  /** A call lasting longer than this is slow. */
  slowCallMs: number;
  /** Opens when slowCalls / calls reaches this; use a value > 1 to disable. */
  slowCallRatio: number;
  /** Cap of the cooldown as a multiple of `cooldownMs` after repeated failed probes. Default 10. */
  maxCooldownMultiplier?: number;
}

/** Point-in-time view of a breaker, for metrics, admin endpoints and publication. */
export interface BreakerSnapshot {
  state: BreakerState;
  calls: number;
  failures: number;
  slowCalls: number;
  failureRatio: number;
  slowCallRatio: number;
  /** Start of the current (or last, when half-open) open period; null when closed. */
  openedAt: number | null;
  /** Time until an open breaker starts probing; 0 otherwise. */
  retryInMs: number;
  /** Length of the current (or, when half-open, last) open period; when closed, that of the next. */
  cooldownMs: number;
  probesInFlight: number;
  probeSuccesses: number;
}

/**
 * A granted call. `epoch` names the state period (closed, open or one half-open round) in which it was
 * granted, so that its outcome can be told apart from that of a call granted before a transition.
 */
export interface GrantedPermit {
  allowed: true;
  probe: boolean;
  epoch: number;
}

/** Answer of {@link CircuitBreaker.tryAcquire}. */
export type BreakerPermit = GrantedPermit | { allowed: false; retryInMs: number };

const DEFAULT_MAX_COOLDOWN_MULTIPLIER = 10;
/** Retry hint given to callers refused because all half-open probe slots are taken. */
const HALF_OPEN_RETRY_HINT_MS = 1000;

/**
 * Pure circuit-breaker state machine (closed → open → half_open → closed | open).
 *
 * No timers: the open → half_open transition happens lazily when time has passed, and is
 * applied (and reported through `onTransition`) by the next mutating call. Every call is O(1).
 *
 * Outcomes should hand back the permit their call was given: only a probe permit of the current
 * half-open round moves the half-open state, and an outcome whose permit predates the current
 * state (a call granted before the breaker opened or closed) is stale: recorded in the window while
 * open or half-open, where it changes nothing, and dropped once closed, where it would judge the
 * upstream on calls older than its recovery. Without a permit, an outcome in half_open is
 * attributed to a probe while one is in flight (callers that cannot keep permits).
 */
export class CircuitBreaker {
  /**
   * Called after every local transition, with the state already applied; not called by
   * {@link applyRemote}. Also called as open → open when {@link openFor} extends an open period,
   * so owners can republish the new deadline. Must not throw.
   */
  onTransition?: (from: BreakerState, to: BreakerState, snap: BreakerSnapshot) => void;

  /**
   * Asked before a half-open probe is granted; false refuses it. Lets the owner hold the whole
   * cluster to one probe round (only the instance holding the round's permit probes). Must not throw.
   */
  probeGate?: () => boolean;

  private readonly window: OutcomeWindow;
  private readonly baseCooldownMs: number;
  private readonly maxCooldownMs: number;
  private current: BreakerState = 'closed';
  private openedAt: number | null = null;
  /** Length of the current or last open period; may exceed `level` after openFor. */
  private periodMs: number;
  /** Cooldown used by the next failure-driven opening: base, doubled per failed probe, capped. */
  private level: number;
  /** Probe permits handed out in this half-open period (released ones are given back). */
  private probesIssued = 0;
  private probesInFlight = 0;
  private probeSuccesses = 0;
  /** Bumped on every change of state period; see {@link GrantedPermit.epoch}. */
  private epoch = 0;

  constructor(
    private readonly options: BreakerOptions,
    private readonly clock: Clock,
  ) {
    const { windowSize, minCalls, failureRatio, cooldownMs, halfOpenProbes, slowCallMs, slowCallRatio } = options;
    const multiplier = options.maxCooldownMultiplier ?? DEFAULT_MAX_COOLDOWN_MULTIPLIER;
    if (!Number.isInteger(minCalls) || minCalls < 1 || minCalls > windowSize) {
      throw new RangeError(`minCalls must be an integer in [1, windowSize], got ${minCalls}`);
    }
    if (!(failureRatio > 0) || !(slowCallRatio > 0)) {
      throw new RangeError('failureRatio and slowCallRatio must be > 0');
    }
    if (!(cooldownMs > 0) || !Number.isFinite(cooldownMs)) {
      throw new RangeError(`cooldownMs must be a finite number > 0, got ${cooldownMs}`);
    }
    if (!Number.isInteger(halfOpenProbes) || halfOpenProbes < 1) {
      throw new RangeError(`halfOpenProbes must be an integer >= 1, got ${halfOpenProbes}`);
    }
    if (!(slowCallMs >= 0)) throw new RangeError(`slowCallMs must be >= 0, got ${slowCallMs}`);
    if (!(multiplier >= 1)) throw new RangeError(`maxCooldownMultiplier must be >= 1, got ${multiplier}`);
    this.window = new OutcomeWindow(windowSize, options.windowMs);
    this.baseCooldownMs = cooldownMs;
    this.maxCooldownMs = cooldownMs * multiplier;
    this.periodMs = cooldownMs;
    this.level = cooldownMs;
  }

  /** Effective state: an open breaker whose cooldown has passed reports half_open. */
  get state(): BreakerState {
    return this.effectiveState(this.clock.now());
  }

  /**
   * Asks to start a call. Closed: allowed. Open: refused until the cooldown passes.
   * Half-open: the first `halfOpenProbes` requests are allowed as probes, the rest refused.
   * An allowed call must end with exactly one of onSuccess, onFailure or release.
   */
  tryAcquire(): BreakerPermit {
    if (this.current === 'closed') return { allowed: true, probe: false, epoch: this.epoch };
    const now = this.clock.now();
    this.settle(now);
    if (this.current === 'open') {
      return { allowed: false, retryInMs: this.openUntil() - now };
    }
    if (this.current === 'half_open' && this.probesIssued < this.options.halfOpenProbes && (this.probeGate?.() ?? true)) {
      this.probesIssued++;
      this.probesInFlight++;
      return { allowed: true, probe: true, epoch: this.epoch };
    }
    return { allowed: false, retryInMs: Math.min(HALF_OPEN_RETRY_HINT_MS, this.baseCooldownMs) };
  }

  /** Reports a successful call; `durationMs > slowCallMs` counts it as slow. */
  onSuccess(durationMs: number, permit?: GrantedPermit): void {
    const now = this.clock.now();
    this.settle(now);
    if (this.isStaleWhileClosed(permit)) return;
    this.window.record({ failure: false, slow: durationMs > this.options.slowCallMs }, now);
    if (this.current === 'closed') {
      this.tripIfUnhealthy(now);
    } else if (this.isLiveProbe(permit)) {
      this.probesInFlight--;
      this.probeSuccesses++;
      if (this.probeSuccesses >= this.options.halfOpenProbes) this.close();
    }
  }

  /** Reports a failed call; a known `durationMs > slowCallMs` also counts it as slow. */
  onFailure(durationMs?: number, permit?: GrantedPermit): void {
    const now = this.clock.now();
    this.settle(now);
    if (this.isStaleWhileClosed(permit)) return;
    const slow = durationMs !== undefined && durationMs > this.options.slowCallMs;
    this.window.record({ failure: true, slow }, now);
    if (this.current === 'closed') {
      this.tripIfUnhealthy(now);
    } else if (this.isLiveProbe(permit)) {
      this.level = Math.min(this.level * 2, this.maxCooldownMs);
      this.open(now, this.level);
    }
  }

  /**
   * Ends an acquired call without judging the upstream (a client error, a cancellation): frees its
   * half-open probe slot when it held one of the current round, and does nothing else.
   */
  release(permit?: GrantedPermit): void {
    this.settle(this.clock.now());
    if (this.isLiveProbe(permit)) {
      this.probesInFlight--;
      this.probesIssued--;
    }
  }

  /** Current counts and state, without applying any pending transition. */
  snapshot(): BreakerSnapshot {
    return this.snapshotAt(this.clock.now());
  }

  /** Admin reset: closed, window cleared, cooldown back to base. */
  forceClose(): void {
    const from = this.effectiveState(this.clock.now());
    this.window.clear();
    this.close(from);
  }

  /**
   * Opens now for at least `ms` (e.g. an upstream's Retry-After), but never longer than the maximum
   * cooldown: a wild hint must not shut an upstream off for hours. Never shortens an existing open
   * period; opening from closed or half_open lasts at least the current cooldown.
   */
  openFor(ms: number): void {
    ms = Math.min(ms, this.maxCooldownMs);
    const now = this.clock.now();
    this.settle(now);
    if (this.current !== 'open') {
      this.open(now, Math.max(this.level, ms));
      return;
    }
    const until = now + ms;
    if (until <= this.openUntil()) return;
    this.periodMs = until - (this.openedAt ?? now);
    this.notify('open', 'open', now);
  }

  /**
   * Adopts a transition published by another instance. Probe counters restart, except when
   * this instance is already half-open (every instance reaches half_open on its own, and its
   * probes in flight must still be judged). The window is cleared on close so stale local
   * failures do not immediately re-open it. Does not call onTransition (no re-publication).
   */
  applyRemote(state: BreakerState, openedAt: number | null, cooldownMs: number): void {
    const now = this.clock.now();
    if (!(state === 'half_open' && this.current === 'half_open')) {
      this.resetProbes();
      this.epoch++;
    }
    this.current = state;
    const period = cooldownMs > 0 ? cooldownMs : this.baseCooldownMs;
    this.periodMs = period;
    this.level = Math.min(Math.max(period, this.baseCooldownMs), this.maxCooldownMs);
    if (state === 'closed') {
      this.openedAt = null;
      this.window.clear();
    } else {
      this.openedAt = openedAt ?? now;
    }
  }

  /** Whether an outcome belongs to a probe of the current half-open round. */
  private isLiveProbe(permit: GrantedPermit | undefined): boolean {
    if (this.current !== 'half_open' || this.probesInFlight === 0) return false;
    return permit === undefined || (permit.probe && permit.epoch === this.epoch);
  }

  private isStaleWhileClosed(permit: GrantedPermit | undefined): boolean {
    return this.current === 'closed' && permit !== undefined && permit.epoch !== this.epoch;
  }

  private effectiveState(now: number): BreakerState {
    if (this.current === 'open' && now >= this.openUntil()) return 'half_open';
    return this.current;
  }

  /** Applies the lazy open → half_open transition. */
  private settle(now: number): void {
    if (this.current === 'open' && now >= this.openUntil()) {
      this.current = 'half_open';
      this.epoch++;
      this.resetProbes();
      this.notify('open', 'half_open', now);
    }
  }

  private openUntil(): number {
    return (this.openedAt ?? this.clock.now()) + this.periodMs;
  }

  private tripIfUnhealthy(now: number): void {
    const { calls, failures, slowCalls } = this.window.counts(now);
    if (calls < this.options.minCalls) return;
    if (failures / calls >= this.options.failureRatio || slowCalls / calls >= this.options.slowCallRatio) {
      this.open(now, this.level);
    }
  }

  private open(now: number, periodMs: number): void {
    const from = this.current;
    this.current = 'open';
    this.epoch++;
    this.openedAt = now;
    this.periodMs = periodMs;
    this.resetProbes();
    this.notify(from, 'open', now);
  }

  private close(from: BreakerState = this.current): void {
    this.current = 'closed';
    this.epoch++;
    this.openedAt = null;
    this.periodMs = this.baseCooldownMs;
    this.level = this.baseCooldownMs;
    this.window.clear();
    this.resetProbes();
    if (from !== 'closed') this.notify(from, 'closed', this.clock.now());
  }

  private resetProbes(): void {
    this.probesIssued = 0;
    this.probesInFlight = 0;
    this.probeSuccesses = 0;
  }

  private notify(from: BreakerState, to: BreakerState, now: number): void {
    this.onTransition?.(from, to, this.snapshotAt(now));
  }

  private snapshotAt(now: number): BreakerSnapshot {
    const { calls, failures, slowCalls } = this.window.counts(now);
    const state = this.effectiveState(now);
    return {
      state,
      calls,
      failures,
      slowCalls,
      failureRatio: calls > 0 ? failures / calls : 0,
      slowCallRatio: calls > 0 ? slowCalls / calls : 0,
      openedAt: this.openedAt,
      retryInMs: state === 'open' ? this.openUntil() - now : 0,
      cooldownMs: state === 'closed' ? this.level : this.periodMs,
      probesInFlight: this.probesInFlight,
      probeSuccesses: this.probeSuccesses,
    };
  }
}
