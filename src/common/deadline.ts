/** The error of {@link withDeadline} when the time ran out first. */
export class DeadlineExceededError extends Error {
  constructor(readonly ms: number) {
    super(`no answer within ${ms} ms`);
    this.name = 'DeadlineExceededError';
  }
}

/**
 * Races `promise` against a timer: resolves or rejects as `promise` does, or rejects with a
 * {@link DeadlineExceededError} after `ms`. The timer never outlives the race nor holds the process open.
 */
export function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DeadlineExceededError(ms)), ms);
      timer.unref();
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Settles with `promise`'s value, or with `fallback` once `ms` has passed or `promise` failed: for
 * callers where "no answer in time" and "failed" lead to the same decision (a Redis command during an
 * outage).
 */
export function settleWithin<T>(promise: Promise<T>, ms: number, fallback: T): Promise<T> {
  return withDeadline(promise, ms).catch(() => fallback);
}

/**
 * Settles as `promise` does, or rejects with `signal.reason` as soon as `signal` aborts (at once when it
 * has already): for a wait bounded by its caller's deadline or departure. The listener never outlives it.
 */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  let onAbort!: () => void;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([promise, aborted]).finally(() => signal.removeEventListener('abort', onAbort));
}
