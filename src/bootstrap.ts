import pino, { Logger } from 'pino';
import { EnvironmentVariables, redactUrl } from './config/environment';
import { loadClientKeys, loadUpstreamTopology } from './config/load-environment';
import { topologyFromConfig } from './upstream/upstream-registry';
import { EmbeddedRedis } from './redis/embedded-redis';
import type { Runtime } from './runtime';
import { UpstreamSimulator } from './upstream/simulator/simulator';

/** What the process started around Nest, and how to stop it once Nest has closed. */
export interface PreparedRuntime {
  runtime: Runtime;
  stop(): Promise<void>;
}

export function bootstrapLogger(level: EnvironmentVariables['LOG_LEVEL']): Logger {
  return pino({ level, base: { context: 'Bootstrap' } });
}

/**
 * Starts what Bulwark needs and the environment does not provide: a private `redis-server` when
 * REDIS_URL is unset, the simulated upstream when no upstream is configured.
 */
export async function prepareRuntime(env: EnvironmentVariables, logger: Logger): Promise<PreparedRuntime> {
  const stops: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const fn of stops.reverse()) await fn().catch((error: Error) => logger.warn({ err: error }, 'stop failed'));
  };
  try {
    // A bad keys file stops the start before anything is started (the auth section reads it again).
    if (env.API_KEYS_FILE) loadClientKeys(env.API_KEYS_FILE, env.ADMIN_API_KEY);
    let redisUrl = env.REDIS_URL;
    if (redisUrl) {
      logger.info({ redis: redactUrl(redisUrl) }, 'using the shared Redis of REDIS_URL');
    } else {
      const embedded = new EmbeddedRedis(env.DATA_DIR, logger);
      await embedded.start();
      stops.push(() => embedded.stop());
      redisUrl = embedded.url;
    }
    let topology = topologyFromConfig({
      url: env.UPSTREAM_URL,
      apiKey: env.UPSTREAM_API_KEY,
      topology: env.UPSTREAMS_FILE ? loadUpstreamTopology(env.UPSTREAMS_FILE) : undefined,
    });
    let simulated = false;
    if (!topology) {
      const simulator = new UpstreamSimulator();
      const { baseUrl } = await simulator.start(0, '127.0.0.1');
      stops.push(() => simulator.stop());
      simulated = true;
      topology = { upstreams: [{ name: 'simulator', baseUrl, models: ['sim-small', 'sim-large'], weight: 1 }], fallbacks: { 'sim-large': ['sim-small'] } };
      logger.warn({ upstream: baseUrl }, 'no UPSTREAM_URL or UPSTREAMS_FILE: serving from the built-in simulated upstream (models sim-small, sim-large)');
    }
    return { runtime: { redisUrl, topology, simulated }, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
