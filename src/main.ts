import 'reflect-metadata';
import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import { settleWithin } from './common/deadline';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { createApp } from './app.factory';
import { bootstrapLogger, PreparedRuntime, prepareRuntime, StartAbortedError } from './bootstrap';
import { ShutdownService } from './common/shutdown.service';
import { effectiveSettings } from './config/effective-settings';
import { ConfigurationError, EnvironmentVariables, workerCount } from './config/environment';
import { loadEnvironment, loadWorkerHandover } from './config/load-environment';
import { runPrimary } from './lifecycle/cluster-primary';
import { EXIT } from './lifecycle/exit-codes';
import { routeConsoleTo } from './logging';
import { listenFailureMessage } from './lifecycle/listen-failure';
import { StopSignals } from './lifecycle/stop-signals';
import { RedisUnavailableError } from './redis/embedded-redis';

// Not SIGHUP: a handler would override the ignore that `nohup` sets up.
const STOP_SIGNALS: NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];
/** Bound on closing a Nest application that never served (failed or aborted start). */
const ABORTED_CLOSE_MS = 5000;

/** Resolves true when `work` settles within `ms`, false otherwise; never rejects. */
function within(work: Promise<unknown>, ms: number): Promise<boolean> {
  return settleWithin(
    work.then(
      () => true,
      () => true,
    ),
    ms,
    false,
  );
}

/** Connections the kernel may queue for accept (capped by net.core.somaxconn). */
const LISTEN_BACKLOG = 4096;

async function main(): Promise<void> {
  let env: EnvironmentVariables;
  try {
    env = loadEnvironment();
  } catch (error) {
    if (error instanceof ConfigurationError) {
      // LOG_LEVEL itself may be what is wrong: this one line is written whatever it says.
      bootstrapLogger('info').fatal(error.message);
      process.exit(EXIT.config);
    }
    throw error;
  }
  const workers = workerCount(env.WORKERS, availableParallelism());
  if (cluster.isPrimary && workers > 1) return runPrimary(env, workers);
  await runInstance(env);
}

/** One gateway instance: the whole process when WORKERS=1, else one of the primary's workers. */
async function runInstance(env: EnvironmentVariables): Promise<void> {
  const logger = bootstrapLogger(env.LOG_LEVEL, cluster.isWorker ? 'Worker' : 'Bootstrap');
  const signals = new StopSignals();
  const starting = new AbortController();
  /** What prepareRuntime started, once it has: stopped on every way out. */
  let started: PreparedRuntime | undefined;
  /** Set once Bulwark listens: the graceful stop. Until then a signal aborts the start. */
  let drain: ((signal: NodeJS.Signals) => Promise<void>) | undefined;

  /** Every way out goes through here: what Bulwark started is stopped before the process exits. */
  const exit = async (code: number, how: 'stop' | 'halt' = 'stop'): Promise<never> => {
    if (how === 'halt') await started?.halt();
    else await started?.stop();
    process.exit(code);
  };
  /** Closes an application that never served (a failed or aborted start), within a bound. */
  const closeUnserved = async (unserved: NestFastifyApplication): Promise<void> => {
    if (!(await within(unserved.close(), ABORTED_CLOSE_MS))) logger.warn(`application close did not finish in ${ABORTED_CLOSE_MS} ms; stopping anyway`);
  };

  const onSignal = (signal: NodeJS.Signals) => {
    const verdict = signals.receive(Date.now());
    if (verdict === 'repeat') {
      logger.debug({ signal }, 'same stop request again (process group and npm both signal): already stopping');
    } else if (verdict === 'force') {
      logger.warn({ signal }, 'second signal: exiting now (stopping the embedded redis-server first)');
      void exit(EXIT.failure, 'halt');
    } else if (drain) {
      void drain(signal);
    } else {
      logger.info({ signal }, 'signal during start-up: stopping what was started');
      starting.abort();
    }
  };
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal);

  // What libraries print goes through the logger, and errors Node would print as multi-line stack traces
  // end the process as one JSON line each, after stopping what Bulwark started.
  routeConsoleTo(logger);
  const die = (event: string) => (error: unknown) => {
    logger.fatal({ err: error }, `${event}: exiting`);
    void exit(EXIT.software, 'halt');
  };
  process.on('unhandledRejection', die('unhandled promise rejection'));
  process.on('uncaughtException', die('uncaught exception'));

  let prepared: PreparedRuntime;
  try {
    prepared = started = await prepareRuntime(env, logger, starting.signal, loadWorkerHandover());
  } catch (error) {
    // prepareRuntime has already stopped what it started.
    if (error instanceof StartAbortedError) process.exit(EXIT.ok);
    if (error instanceof RedisUnavailableError || error instanceof ConfigurationError) {
      logger.fatal(error.message);
      process.exit(error instanceof ConfigurationError ? EXIT.config : EXIT.unavailable);
    }
    throw error;
  }
  if (!env.API_KEYS && !env.API_KEYS_FILE) {
    logger.warn('API_KEYS is unset: Bulwark accepts requests from anyone. Set API_KEYS=key:tier,... before exposing it.');
  }
  let app: NestFastifyApplication;
  try {
    app = await createApp(prepared.runtime, env);
  } catch (error) {
    logger.fatal({ err: error }, `Bulwark failed to start: ${error instanceof Error ? error.message : String(error)}`);
    return exit(EXIT.failure);
  }
  if (starting.signal.aborted) {
    await closeUnserved(app);
    return exit(EXIT.ok);
  }
  try {
    // A deep accept backlog: a burst of connections (a thousand streams opening at once) waits in the
    // kernel's queue instead of being dropped and retried by the clients seconds later.
    await app.listen({ port: env.PORT, host: env.HOST, backlog: LISTEN_BACKLOG });
  } catch (error) {
    logger.fatal({ port: env.PORT, host: env.HOST, code: (error as NodeJS.ErrnoException)?.code }, listenFailureMessage(env.HOST, env.PORT, error));
    await closeUnserved(app);
    return exit(EXIT.failure);
  }
  const address = app.getHttpAdapter().getInstance().server.address();
  const port = typeof address === 'object' && address ? address.port : env.PORT;
  logger.info({ settings: effectiveSettings(env, prepared.runtime) }, 'effective settings');
  logger.info({ port, host: env.HOST, url: `http://${env.HOST === '0.0.0.0' ? '127.0.0.1' : env.HOST}:${port}/v1` }, 'Bulwark listening');

  const stop = async (signal: NodeJS.Signals) => {
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
      void exit(1, 'halt');
    }, closeBoundMs + 5000);
    hardStop.unref();
    const closed = await settleWithin(app.close().then(() => true), closeBoundMs, false);
    if (!closed) logger.warn(`application close did not finish in ${closeBoundMs} ms; stopping anyway`);
    await prepared.stop();
    logger.info('stopped');
    process.exit(0);
  };
  drain = stop;
  // A signal that arrived while listen() ran asked for this stop already.
  if (starting.signal.aborted) void stop('SIGTERM');
}

void main().catch((error: unknown) => {
  // The embedded redis-server's exit hook stops it on this way out too.
  bootstrapLogger('info').fatal({ err: error }, `Bulwark failed to start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
