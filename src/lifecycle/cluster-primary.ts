import { bootstrapLogger, PreparedRuntime, prepareRuntime, StartAbortedError } from '../bootstrap';
import { ConfigurationError, EnvironmentVariables } from '../config/environment';
import { encodeHandover, WORKER_HANDOVER_VARIABLE } from '../config/worker-handover';
import { routeConsoleTo } from '../logging';
import { RedisUnavailableError } from '../redis/embedded-redis';
import { EXIT } from './exit-codes';
import { StopSignals } from './stop-signals';
import { WorkerFleet } from './worker-fleet';

const STOP_SIGNALS: NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];
/**
 * How long the primary waits for its workers after asking them to stop, beyond SHUTDOWN_GRACE_MS: each
 * worker's own bounds (closing connections, then its hard stop) end within 10 s of its grace.
 */
const WORKER_STOP_MARGIN_MS = 15_000;
/** After a forced stop (a second signal), how long the workers get to exit before they are killed. */
const FORCED_STOP_MS = 5000;

/**
 * The process when WORKERS asks for more than one: it serves nothing itself. It starts once what every
 * worker needs and the environment does not provide (the embedded redis-server, the simulated
 * upstream), forks `count` workers that listen on one port, replaces a worker that dies, and on
 * SIGTERM/SIGINT drains every worker, then stops what it started and exits 0.
 */
export async function runPrimary(env: EnvironmentVariables, count: number): Promise<void> {
  const logger = bootstrapLogger(env.LOG_LEVEL, 'Primary');
  const signals = new StopSignals();
  const starting = new AbortController();
  let prepared: PreparedRuntime | undefined;
  let fleet: WorkerFleet | undefined;
  let serving = false;

  const exit = async (code: number, how: 'stop' | 'halt' = 'stop'): Promise<never> => {
    if (how === 'halt') await prepared?.halt();
    else await prepared?.stop();
    process.exit(code);
  };
  const drain = async (signal: NodeJS.Signals) => {
    logger.info({ signal, workers: fleet?.pids.length ?? 0, graceMs: env.SHUTDOWN_GRACE_MS }, 'shutting down: every worker drains its in-flight work');
    const clean = (await fleet?.stop('SIGTERM', env.SHUTDOWN_GRACE_MS + WORKER_STOP_MARGIN_MS)) ?? true;
    await prepared?.stop();
    logger.info('stopped');
    process.exit(clean ? EXIT.ok : EXIT.failure);
  };

  const onSignal = (signal: NodeJS.Signals) => {
    const verdict = signals.receive(Date.now());
    if (verdict === 'repeat') {
      logger.debug({ signal }, 'same stop request again (process group and npm both signal): already stopping');
    } else if (verdict === 'force') {
      logger.warn({ signal }, 'second signal: stopping every worker now');
      // Each worker counts this as its own second signal and exits at once.
      void (fleet?.stop(signal, FORCED_STOP_MS) ?? Promise.resolve()).then(() => exit(EXIT.failure, 'halt'));
    } else if (serving) {
      void drain(signal);
    } else {
      logger.info({ signal }, 'signal during start-up: stopping what was started');
      starting.abort();
    }
  };
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
  routeConsoleTo(logger);
  const die = (event: string) => (error: unknown) => {
    logger.fatal({ err: error }, `${event}: exiting`);
    // The workers exit by themselves when their primary is gone (node:cluster).
    void exit(EXIT.software, 'halt');
  };
  process.on('unhandledRejection', die('unhandled promise rejection'));
  process.on('uncaughtException', die('uncaught exception'));

  try {
    prepared = await prepareRuntime(env, logger, starting.signal);
  } catch (error) {
    if (error instanceof StartAbortedError) process.exit(EXIT.ok);
    if (error instanceof RedisUnavailableError || error instanceof ConfigurationError) {
      logger.fatal(error.message);
      process.exit(error instanceof ConfigurationError ? EXIT.config : EXIT.unavailable);
    }
    throw error;
  }
  logger.info({ workers: count }, `starting ${count} gateway workers on one port`);
  fleet = new WorkerFleet(count, { [WORKER_HANDOVER_VARIABLE]: encodeHandover(prepared.handover) }, logger);
  const abortStart = () => void fleet?.signal('SIGTERM');
  starting.signal.addEventListener('abort', abortStart);
  const started = await fleet.start();
  starting.signal.removeEventListener('abort', abortStart);
  if (starting.signal.aborted) {
    await fleet.stop('SIGTERM', env.SHUTDOWN_GRACE_MS + WORKER_STOP_MARGIN_MS);
    return exit(EXIT.ok);
  }
  if (!started.ok) {
    // The worker logged why; its exit code (configuration, Redis unavailable, ...) becomes the primary's.
    logger.fatal({ code: started.code, signal: started.signal }, 'a worker failed to start: stopping');
    await fleet.stop('SIGTERM', env.SHUTDOWN_GRACE_MS + WORKER_STOP_MARGIN_MS);
    return exit(started.code ?? EXIT.failure);
  }
  serving = true;
  const host = env.HOST === '0.0.0.0' ? '127.0.0.1' : env.HOST;
  logger.info({ port: started.port, host: env.HOST, workers: fleet.pids, url: `http://${host}:${started.port}/v1` }, 'Bulwark listening');
}
