/** Bounds of {@link RestartBackoff}. */
export interface RestartBackoffOptions {
  /** Delay before restarting a worker that died after a stable run, and the first step of the doubling. */
  initialMs: number;
  /** The longest delay: a crash loop restarts at most once per this long. */
  maxMs: number;
  /** A worker that ran at least this long was stable: its death starts the doubling afresh. */
  stableMs: number;
}

export const DEFAULT_RESTART_BACKOFF: RestartBackoffOptions = { initialMs: 100, maxMs: 30_000, stableMs: 30_000 };

/**
 * How long to wait before starting a worker in place of one that died. A worker that ran for a while
 * is replaced at once (after `initialMs`); each further quick death doubles the wait, up to `maxMs`, so
 * a worker that crashes at start (a bad upstream file edited under it, a full disk) does not spin.
 */
export class RestartBackoff {
  private quickDeaths = 0;

  constructor(private readonly options: RestartBackoffOptions = DEFAULT_RESTART_BACKOFF) {}

  /** The delay before the replacement of a worker that died after running `ranMs`. */
  delayAfter(ranMs: number): number {
    if (ranMs >= this.options.stableMs) this.quickDeaths = 0;
    const delay = Math.min(this.options.maxMs, this.options.initialMs * 2 ** this.quickDeaths);
    if (delay < this.options.maxMs) this.quickDeaths++;
    return delay;
  }
}
