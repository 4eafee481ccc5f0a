import Redis from 'ioredis';
import { withDeadline } from '../common/deadline';
import type { Logger } from 'pino';
import { redactUrl } from '../config/environment';
import { RedisUnavailableError } from './embedded-redis';

/** Pause after the n-th failed attempt (1-based): 0.5 s, 1 s, then 2 s. */
function redisRetryDelayMs(attempt: number): number {
  return Math.min(500 * 2 ** (attempt - 1), 2000);
}

/** Why one connection attempt failed, in a word where there is one (`ECONNREFUSED`, `WRONGPASS …`). */
function reason(error: unknown): string {
  const e = error as NodeJS.ErrnoException & { errors?: NodeJS.ErrnoException[] };
  return e?.code ?? e?.errors?.[0]?.code ?? (e?.message || String(error)).split('\n')[0];
}

/** One attempt: connect and PING within `timeoutMs`; resolves undefined on success, else the reason. */
async function attempt(url: string, timeoutMs: number): Promise<string | undefined> {
  let lastError: unknown;
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    // One try per attempt; the loop below owns the retries and their log lines.
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    connectionName: 'bulwark:start-check',
  });
  // Without a listener ioredis prints each failure as a multi-line "Unhandled error event" dump.
  client.on('error', (error: unknown) => (lastError = error));
  try {
    await withDeadline(client.connect().then(() => client.ping()), timeoutMs);
    return undefined;
  } catch (error) {
    return reason(lastError ?? error);
  } finally {
    client.disconnect();
  }
}

/**
 * Waits until the Redis of REDIS_URL answers a PING, trying again for `timeoutMs`: one JSON line per
 * failed attempt, then a {@link RedisUnavailableError} naming REDIS_URL (password hidden). Resolves
 * early, without error, when `signal` aborts (the caller checks it).
 */
export async function waitForRedis(url: string, timeoutMs: number, logger: Pick<Logger, 'info' | 'warn'>, signal?: AbortSignal): Promise<void> {
  const shown = redactUrl(url);
  const deadline = Date.now() + timeoutMs;
  for (let n = 1; !signal?.aborted; n++) {
    const failure = await attempt(url, Math.max(100, Math.min(2000, deadline - Date.now())));
    if (failure === undefined) {
      if (n > 1) logger.info({ redis: shown, attempts: n }, 'Redis of REDIS_URL answers');
      return;
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new RedisUnavailableError(
        `REDIS_URL=${shown}: Redis did not answer within ${timeoutMs} ms (${n} attempts, last: ${failure}). Start that Redis, fix REDIS_URL, or raise REDIS_CONNECT_TIMEOUT_MS`,
      );
    }
    const retryInMs = Math.min(redisRetryDelayMs(n), left);
    logger.warn({ redis: shown, attempt: n, error: failure, retryInMs, leftMs: left }, `Redis of REDIS_URL does not answer (${failure}); trying again`);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, retryInMs);
      signal?.addEventListener('abort', done, { once: true });
      function done() {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      }
    });
  }
}
