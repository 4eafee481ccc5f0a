import { settleWithin } from '../common/deadline';

/**
 * The half-open probe permits this instance holds. A permit is claimed in Redis (atomically, with a
 * TTL) so that the whole cluster sends one probe round to a recovering upstream; this class only
 * remembers what was won and makes concurrent requests share one claim per breaker.
 *
 * A claim that resolves after {@link drop} (the breaker changed state meanwhile) is not taken: its
 * round is over. The permit left in Redis then lapses with its TTL, or the next opening deletes it.
 */
export class ProbePermits {
  private readonly held = new Set<string>();
  private readonly claims = new Map<string, Promise<boolean>>();
  /** When a claim of the key was last lost: requests in the next `quietMs` are refused without asking Redis. */
  private readonly lostAt = new Map<string, number>();

  /**
   * `claim` asks Redis for the permit of `key`; true when this instance holds it. After a lost claim,
   * the permit is not asked for again during `quietMs`, so that a busy instance refused during another
   * instance's round sends Redis a few claims a second, not one per request.
   */
  constructor(
    private readonly claim: (key: string) => Promise<boolean>,
    private readonly now: () => number,
    private readonly quietMs = 200,
  ) {}

  holds(key: string): boolean {
    return this.held.has(key);
  }

  /**
   * Whether this instance holds (or now wins) the permit of `key`; false when another instance holds
   * it, Redis refused or failed, or no answer came within `timeoutMs` (the claim may still win later).
   */
  acquire(key: string, timeoutMs: number): Promise<boolean> {
    if (this.held.has(key)) return Promise.resolve(true);
    const lost = this.lostAt.get(key);
    if (lost !== undefined && this.now() - lost < this.quietMs) return Promise.resolve(false);
    let pending = this.claims.get(key);
    if (!pending) {
      const claim: Promise<boolean> = this.claim(key)
        .catch(() => false)
        .then((won) => {
          if (this.claims.get(key) !== claim) return false;
          this.claims.delete(key);
          if (won) {
            this.held.add(key);
            this.lostAt.delete(key);
          } else {
            this.lostAt.set(key, this.now());
          }
          return won;
        });
      pending = claim;
      this.claims.set(key, claim);
    }
    return settleWithin(pending, timeoutMs, false);
  }

  /** Forgets the permit of `key` (its round ended, or the state changed), including a claim in flight. */
  drop(key: string): void {
    this.held.delete(key);
    this.claims.delete(key);
    this.lostAt.delete(key);
  }
}
