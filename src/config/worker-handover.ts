/**
 * What a cluster primary (WORKERS > 1) started once for all its workers and hands each of them: the
 * embedded redis-server's URL when REDIS_URL and REDIS_SENTINELS are unset, the built-in simulated
 * upstream's base URL when no upstream is configured. Not an operator setting: the primary puts it in the
 * environment of the workers it forks.
 */
export interface WorkerHandover {
  redisUrl?: string;
  simulatorUrl?: string;
}

/** The variable the primary passes the handover in. */
export const WORKER_HANDOVER_VARIABLE = 'BULWARK_WORKER_HANDOVER';

const REDIS_URL = /^redis:\/\/127\.0\.0\.1:\d{1,5}$/;
const SIMULATOR_URL = /^http:\/\/127\.0\.0\.1:\d{1,5}\/v1$/;

/** The handover as the primary writes it into a worker's environment. */
export function encodeHandover(handover: WorkerHandover): string {
  return JSON.stringify(handover);
}

/**
 * Reads the handover a worker was given; undefined when there is none. Throws when it is not what a
 * primary writes (only loopback URLs of what the primary itself started are accepted).
 */
export function parseHandover(raw: string | undefined): WorkerHandover | undefined {
  if (raw === undefined || raw === '') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new Error(`${WORKER_HANDOVER_VARIABLE} is not JSON`);
  }
  const { redisUrl, simulatorUrl } = (parsed ?? {}) as Record<string, unknown>;
  if (redisUrl !== undefined && !(typeof redisUrl === 'string' && REDIS_URL.test(redisUrl))) throw new Error(`${WORKER_HANDOVER_VARIABLE}: bad redisUrl`);
  if (simulatorUrl !== undefined && !(typeof simulatorUrl === 'string' && SIMULATOR_URL.test(simulatorUrl))) throw new Error(`${WORKER_HANDOVER_VARIABLE}: bad simulatorUrl`);
  return { redisUrl, simulatorUrl };
}
