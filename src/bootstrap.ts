import pino, { Logger } from 'pino';
import { EnvironmentVariables, parseSentinels } from './config/environment';
import { loadClientKeys, loadUpstreamTopology } from './config/load-environment';
import { topologyFromConfig } from './upstream/upstream-registry';
import { EmbeddedRedis } from './redis/embedded-redis';
import { describeTarget, RedisTarget } from './redis/redis-target';
import { waitForRedis } from './redis/wait-for-redis';
import type { Runtime } from './runtime';
import { UpstreamSimulator } from './simulator/simulator';
import type { WorkerHandover } from './config/worker-handover';

/** What the process started around Nest, and how to stop it once Nest has closed. */
export interface PreparedRuntime {
  runtime: Runtime;
  /** Stops what was started (simulator, embedded redis-server), each within its bound; idempotent. */
  stop(): Promise<void>;
  /** For a forced exit: stops only the child processes, with a short bound; in-process servers die with the process. */
  halt(): Promise<void>;
  /** What this process started that cluster workers should use rather than start again. */
  handover: WorkerHandover;
}

/** Thrown by {@link prepareRuntime} when a stop signal arrived while it worked; what it started is stopped. */
export class StartAbortedError extends Error {
  override readonly name = 'StartAbortedError';
}

/** The logger of start-up and shutdown, before and after Nest's; `context` names the part of the process. */
export function bootstrapLogger(level: EnvironmentVariables['LOG_LEVEL'], context = 'Bootstrap'): Logger {
  return pino({ level, base: { pid: process.pid, context } });
}

/** The built-in simulator's upstreams, wherever it listens. */
function simulatorTopology(baseUrl: string) {
  return { upstreams: [{ name: 'simulator', baseUrl, models: ['sim-small', 'sim-large'], weight: 1 }], fallbacks: { 'sim-large': ['sim-small'] } };
}

/**
 * Starts what Bulwark needs and the environment does not provide: a private `redis-server` when
 * neither REDIS_URL nor REDIS_SENTINELS is set (else waits for the Redis of REDIS_URL to answer, for
 * REDIS_CONNECT_TIMEOUT_MS), the simulated upstream when no upstream is configured. A cluster worker
 * uses what its primary started instead (`handover`). On any failure, or when `signal` aborts, it stops
 * what it started before throwing.
 */
export async function prepareRuntime(env: EnvironmentVariables, logger: Logger, signal?: AbortSignal, handover: WorkerHandover = {}): Promise<PreparedRuntime> {
  const stops: (() => Promise<void>)[] = [];
  let embedded: EmbeddedRedis | undefined;
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      for (const fn of [...stops].reverse()) await fn().catch((error: Error) => logger.warn({ err: error }, 'stop failed'));
    })());
  const halt = async () => {
    await embedded?.halt();
  };
  const checkAborted = () => {
    if (signal?.aborted) throw new StartAbortedError('stopped by a signal during start-up');
  };
  try {
    // The configuration files first: a bad UPSTREAMS_FILE or API_KEYS_FILE stops the start before
    // anything was started (the auth section reads the keys file again).
    if (env.API_KEYS_FILE) loadClientKeys(env.API_KEYS_FILE, env.ADMIN_API_KEY);
    let topology = topologyFromConfig({
      url: env.UPSTREAM_URL,
      apiKey: env.UPSTREAM_API_KEY,
      topology: env.UPSTREAMS_FILE ? loadUpstreamTopology(env.UPSTREAMS_FILE) : undefined,
    });
    let redis: RedisTarget;
    const started: WorkerHandover = {};
    if (handover.redisUrl) {
      // The primary's embedded redis-server, already answering.
      redis = { kind: 'url', url: handover.redisUrl };
    } else if (env.REDIS_SENTINELS && env.REDIS_SENTINEL_NAME) {
      redis = {
        kind: 'sentinel',
        sentinels: parseSentinels(env.REDIS_SENTINELS),
        name: env.REDIS_SENTINEL_NAME,
        sentinelPassword: env.REDIS_SENTINEL_PASSWORD,
        password: env.REDIS_PASSWORD,
      };
      logger.info(describeTarget(redis), 'using the Redis primary that the Sentinels of REDIS_SENTINELS name');
    } else if (env.REDIS_URL) {
      redis = { kind: 'url', url: env.REDIS_URL };
      logger.info({ ...describeTarget(redis), timeoutMs: env.REDIS_CONNECT_TIMEOUT_MS }, 'using the shared Redis of REDIS_URL');
      await waitForRedis(env.REDIS_URL, env.REDIS_CONNECT_TIMEOUT_MS, logger, signal);
    } else {
      const child = new EmbeddedRedis(env.DATA_DIR, logger);
      embedded = child;
      stops.push(() => child.stop());
      await child.start();
      redis = { kind: 'url', url: child.url };
      started.redisUrl = child.url;
    }
    checkAborted();
    let simulated = false;
    if (!topology && handover.simulatorUrl) {
      simulated = true;
      topology = simulatorTopology(handover.simulatorUrl);
    } else if (!topology) {
      const simulator = new UpstreamSimulator();
      const { baseUrl } = await simulator.start(0, '127.0.0.1');
      stops.push(() => simulator.stop());
      simulated = true;
      started.simulatorUrl = baseUrl;
      topology = simulatorTopology(baseUrl);
      logger.warn({ upstream: baseUrl }, 'no UPSTREAM_URL or UPSTREAMS_FILE: serving from the built-in simulated upstream (models sim-small, sim-large)');
    }
    checkAborted();
    return { runtime: { redis, topology, simulated }, stop, halt, handover: started };
  } catch (error) {
    await stop();
    throw error;
  }
}
