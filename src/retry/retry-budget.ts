import { Clock } from '../common/clock';

/** Configuration of a {@link RetryBudget}. */
export interface RetryBudgetOptions {
  /** Tokens deposited per original request; a retry costs one (0.2 = retries may add 20% load). */
  ratio: number;
  /** Retries per second allowed regardless of traffic, so a quiet service can still retry. */
  minRetriesPerSecond: number;
  /** How long deposits and withdrawals count, in ms. */
  ttlMs: number;
}

/** Fixed-point scale so that e.g. ten deposits of 0.1 make exactly one token. */
const UNITS_PER_TOKEN = 1_000_000;
const SLICE_TARGET_MS = 1000;

/**
 * Finagle-style retry budget: a token bucket whose deposits and withdrawals expire.
 *
 * Each original request deposits `ratio` tokens, each retry withdraws one, and a constant
 * reserve of `minRetriesPerSecond × ttlMs / 1000` tokens is added on top. Entries live in a
 * ring of ~1 s slices covering `ttlMs`; like Finagle's WindowedAdder, an entry stops counting
 * once `ttlMs` has passed, possibly up to one slice earlier. Within any window the retries
 * allowed are ≈ `ratio × requests + reserve`.
 */
export class RetryBudget {
  private readonly slices: Float64Array;
  private readonly sliceMs: number;
  private readonly depositUnits: number;
  private readonly reserveUnits: number;
  /** Sum of all slices, in units; negative when withdrawals outweigh live deposits. */
  private total = 0;
  /** Absolute index of the slice holding the current time. */
  private currentSlice: number;

  constructor(
    options: RetryBudgetOptions,
    private readonly clock: Clock,
  ) {
    const { ratio, minRetriesPerSecond, ttlMs } = options;
    if (!(ratio >= 0) || !Number.isFinite(ratio)) {
      throw new RangeError(`ratio must be a finite number >= 0, got ${ratio}`);
    }
    if (!(minRetriesPerSecond >= 0) || !Number.isFinite(minRetriesPerSecond)) {
      throw new RangeError(`minRetriesPerSecond must be a finite number >= 0, got ${minRetriesPerSecond}`);
    }
    if (!(ttlMs >= 1) || !Number.isFinite(ttlMs)) {
      throw new RangeError(`ttlMs must be a finite number >= 1, got ${ttlMs}`);
    }
    const count = Math.ceil(ttlMs / SLICE_TARGET_MS);
    this.slices = new Float64Array(count);
    this.sliceMs = ttlMs / count;
    this.depositUnits = Math.round(ratio * UNITS_PER_TOKEN);
    this.reserveUnits = Math.round(((minRetriesPerSecond * ttlMs) / 1000) * UNITS_PER_TOKEN);
    this.currentSlice = Math.floor(clock.now() / this.sliceMs);
  }

  /** Records one original (non-retry) request, depositing `ratio` tokens. */
  recordRequest(): void {
    this.add(this.depositUnits);
  }

  /** Takes one token for a retry; false (and nothing taken) when the budget is spent. */
  tryWithdraw(): boolean {
    this.rotate();
    if (this.total + this.reserveUnits < UNITS_PER_TOKEN) return false;
    this.add(-UNITS_PER_TOKEN);
    return true;
  }

  /** Tokens currently available (fractional; never negative). */
  available(): number {
    this.rotate();
    return Math.max(0, this.total + this.reserveUnits) / UNITS_PER_TOKEN;
  }

  private add(units: number): void {
    this.rotate();
    this.slices[this.indexOf(this.currentSlice)] += units;
    this.total += units;
  }

  /** Zeroes the slices that time has left behind. O(slices) at worst, amortized O(1). */
  private rotate(): void {
    const slice = Math.floor(this.clock.now() / this.sliceMs);
    // A clock stepping backwards keeps writing into the newest slice rather than resurrecting old ones.
    if (slice <= this.currentSlice) return;
    const n = this.slices.length;
    if (slice - this.currentSlice >= n) {
      this.slices.fill(0);
      this.total = 0;
    } else {
      for (let s = this.currentSlice + 1; s <= slice; s++) {
        const i = this.indexOf(s);
        this.total -= this.slices[i];
        this.slices[i] = 0;
      }
    }
    this.currentSlice = slice;
  }

  private indexOf(slice: number): number {
    const n = this.slices.length;
    return ((slice % n) + n) % n;
  }
}
