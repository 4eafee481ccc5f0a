import 'reflect-metadata';
import { createApp } from './app.factory';
import { bootstrapLogger, prepareRuntime } from './bootstrap';
import { ShutdownService } from './common/shutdown.service';
import { ConfigurationError } from './config/environment';
import { loadEnvironment } from './config/load-environment';
import { RedisUnavailableError } from './redis/embedded-redis';

async function main(): Promise<void> {
  let env;
  try {
    env = loadEnvironment();
  } catch (error) {
    if (error instanceof ConfigurationError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw error;
  }
  const logger = bootstrapLogger(env.LOG_LEVEL);
  let prepared;
  try {
    prepared = await prepareRuntime(env, logger);
  } catch (error) {
    if (error instanceof RedisUnavailableError || error instanceof ConfigurationError) {
      logger.fatal(error.message);
      process.exit(error instanceof ConfigurationError ? 78 : 69); // EX_UNAVAILABLE
    }
    throw error;
  }
  if (!env.API_KEYS && !env.API_KEYS_FILE) {
    logger.warn('API_KEYS is unset: Bulwark accepts requests from anyone. Set API_KEYS=key:tier,... before exposing it.');
  }
  let app;
  try {
    app = await createApp(prepared.runtime, env);
    await app.listen({ port: env.PORT, host: env.HOST });
  } catch (error) {
    await prepared.stop();
    throw error;
  }
  const address = app.getHttpAdapter().getInstance().server.address();
  const port = typeof address === 'object' && address ? address.port : env.PORT;
  logger.info({ port, host: env.HOST, url: `http://${env.HOST === '0.0.0.0' ? '127.0.0.1' : env.HOST}:${port}/v1` }, 'Bulwark listening');

  let stopping = false;
  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    const shutdown = app.get(ShutdownService);
    const graceEndsAt = Date.now() + env.SHUTDOWN_GRACE_MS;
    shutdown.beginDrain();
    logger.info({ signal, inflight: shutdown.inflightRequests, graceMs: env.SHUTDOWN_GRACE_MS }, 'shutting down: draining in-flight work');
    const drained = await shutdown.waitForIdle(env.SHUTDOWN_GRACE_MS);
    if (!drained) {
      // Cut what still runs: async jobs go back to the queue for another instance (or the next start).
      logger.warn({ inflight: shutdown.inflightRequests }, 'grace period over: handing back the work still in flight');
      await shutdown.endGrace();
    }
    // Closing connections gets 5 s, and a Redis that is gone must not hold the exit hostage.
    const closeBoundMs = Math.max(0, graceEndsAt - Date.now()) + 5000;
    const hardStop = setTimeout(() => {
      logger.error('shutdown did not finish in time: exiting');
      process.exit(1);
    }, closeBoundMs + 5000);
    hardStop.unref();
    const closed = await Promise.race([
      app.close().then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), closeBoundMs).unref()),
    ]);
    if (!closed) logger.warn(`application close did not finish in ${closeBoundMs} ms; stopping anyway`);
    await prepared.stop();
    logger.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', (s) => void stop(s));
  process.on('SIGINT', (s) => void stop(s));
}

void main().catch((error: unknown) => {
  process.stderr.write(`Bulwark failed to start: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  process.exit(1);
});
