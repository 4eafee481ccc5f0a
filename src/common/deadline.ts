/**
 * Settles with `promise`'s value, or with `fallback` once `timeoutMs` has passed, whichever comes first.
 * A rejection of `promise` also gives `fallback`: callers use it where "no answer in time" and "failed"
 * lead to the same decision (a Redis command during an outage). The timer never holds the process open.
 */
export async function withDeadline<T>(promise: Promise<T>, timeoutMs: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(fallback), timeoutMs);
    timer.unref();
  });
  try {
    return await Promise.race([promise.catch(() => fallback), late]);
  } finally {
    clearTimeout(timer);
  }
}
