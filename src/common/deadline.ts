/** The error of {@link withDeadline} when the time ran out first. */
export class DeadlineExceededError extends Error {
  constructor(readonly ms: number) {
    super(`no answer within ${ms} ms`);
    this.name = 'DeadlineExceededError';
  }
}

/**
 * Races `promise` against a timer: resolves or rejects as `promise` does, or rejects with a
 * {@link DeadlineExceededError} after `ms`. The timer never outlives the race.
 */
export function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new DeadlineExceededError(ms)), ms))),
  ]).finally(() => clearTimeout(timer));
}
