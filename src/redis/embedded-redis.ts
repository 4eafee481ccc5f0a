import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { settleWithin } from '../common/deadline';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { resolve } from 'node:path';
import type { Logger } from 'pino';

export class RedisUnavailableError extends Error {
  override readonly name = 'RedisUnavailableError';
}

const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5000;
/** How long {@link EmbeddedRedis.halt} waits for the child before killing it. */
const HALT_TIMEOUT_MS = 2000;

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port'))));
    });
  });
}

/** `pid:role date time <level> message`, redis-server's log line; the level is one of `. - * #`. */
const REDIS_LOG_LINE = /^\d+:[A-Z] .+? ([.\-*#]) (.*)$/;

/**
 * Where a redis-server output line goes once the child runs: its warnings (`#`) at warn, everything
 * else at debug, always as one JSON line of Bulwark's log (never the child's raw text).
 */
export function redisLogLine(line: string): { level: 'warn' | 'debug'; message: string } | undefined {
  const text = line.trim();
  if (text === '') return undefined;
  const match = REDIS_LOG_LINE.exec(text);
  if (!match) return { level: 'debug', message: text };
  return { level: match[1] === '#' ? 'warn' : 'debug', message: match[2] };
}

/** An embedded redis-server left behind by a crashed Bulwark: reparented to init, safe to reclaim. */
function orphanedRedis(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return stat.includes('(redis-server)') && fields[1] === '1';
  } catch {
    return false;
  }
}

/**
 * A watchdog shell loop for the one way out no hook sees: Bulwark killed with SIGKILL (the OOM killer,
 * `kill -9`). It polls once a second and exits by itself once redis-server is gone; if Bulwark goes
 * first, it stops redis-server (SIGTERM: Redis flushes its AOF). The cmdline check keeps it from
 * signalling a process that reused the pid.
 */
const WATCHDOG_SCRIPT = [
  'while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 1; done',
  'if kill -0 "$2" 2>/dev/null && ! kill -0 "$1" 2>/dev/null; then',
  '  if [ ! -r "/proc/$2/cmdline" ] || grep -q redis-server "/proc/$2/cmdline"; then kill -TERM "$2"; fi',
  'fi',
].join('\n');

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * A private `redis-server` child for a single instance started without `REDIS_URL`: loopback only,
 * append-only persistence under `dataDir`, stopped (and its AOF flushed) on shutdown.
 *
 * The child runs in its own process group, so that a signal to Bulwark's group (Ctrl-C, `timeout`)
 * does not stop it while Bulwark still drains. In exchange Bulwark must stop it on every way out:
 * `stop()` on a graceful shutdown, `halt()` on a forced one, and as a last resort a process `exit`
 * hook that signals the child synchronously whenever Bulwark exits through `process.exit` or an
 * uncaught error. Only SIGKILL of Bulwark escapes all three; the next start on the same DATA_DIR
 * reclaims that orphan.
 */
export class EmbeddedRedis {
  private child?: ChildProcess;
  private exited?: Promise<void>;
  private stopping?: Promise<void>;
  port = 0;

  constructor(
    private readonly dataDir: string,
    private readonly logger: Pick<Logger, 'info' | 'warn' | 'error' | 'debug'>,
    private readonly binary = 'redis-server',
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    if (spawnSync(this.binary, ['--version'], { stdio: 'ignore' }).error) {
      throw new RedisUnavailableError(
        'redis-server is not installed. Install it (Debian/Ubuntu: `sudo apt-get install -y redis-server`; macOS: `brew install redis`) or set REDIS_URL to an existing Redis.',
      );
    }
    const dir = resolve(this.dataDir);
    mkdirSync(dir, { recursive: true });
    const pidFile = resolve(dir, 'redis.pid');
    if (existsSync(pidFile)) {
      const pid = Number(readFileSync(pidFile, 'utf8').trim());
      if (pid > 0 && orphanedRedis(pid)) {
        this.logger.warn({ pid }, 'stopping the orphaned embedded redis-server of a previous run');
        process.kill(pid, 'SIGTERM');
        for (let i = 0; i < 50 && processAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));
      }
      if (pid > 0 && processAlive(pid)) {
        throw new RedisUnavailableError(
          `Another embedded redis-server (pid ${pid}) is using DATA_DIR ${dir}; stop it, use another DATA_DIR, or set REDIS_URL`,
        );
      }
    }
    this.port = await freePort();
    const child = spawn(
      this.binary,
      [
        '--port', String(this.port),
        '--bind', '127.0.0.1',
        '--dir', dir,
        '--appendonly', 'yes',
        '--appendfsync', 'everysec',
        '--save', '',
        '--pidfile', pidFile,
        '--daemonize', 'no',
        '--maxmemory-policy', 'noeviction',
        '--protected-mode', 'yes',
      ],
      // Its own process group: a Ctrl-C in the terminal reaches Bulwark, which drains and then stops it.
      { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
    );
    this.child = child;
    const killOnExit = () => this.signalChild('SIGTERM', child);
    process.on('exit', killOnExit);
    this.exited = new Promise((done) =>
      child.once('exit', () => {
        process.off('exit', killOnExit);
        done();
      }),
    );
    // Every output line becomes a JSON log line; until it is ready, the last lines also explain a failed start.
    let startOutput = '';
    let onReady: (() => void) | undefined;
    const forward = (stream: Readable | null) => {
      if (!stream) return;
      createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => {
        if (onReady) {
          startOutput = `${startOutput}${line}\n`.slice(-2000);
          if (line.includes('Ready to accept connections')) onReady();
        }
        const entry = redisLogLine(line);
        if (entry) this.logger[entry.level]({ source: 'redis-server' }, entry.message);
      });
    };
    await new Promise<void>((ready, fail) => {
      const timer = setTimeout(() => fail(new RedisUnavailableError(`redis-server did not start within ${START_TIMEOUT_MS} ms: ${startOutput.slice(-500)}`)), START_TIMEOUT_MS);
      onReady = () => {
        onReady = undefined;
        clearTimeout(timer);
        ready();
      };
      forward(child.stdout);
      forward(child.stderr);
      child.once('exit', (code) => {
        clearTimeout(timer);
        // Let the line readers hand over the last lines before they explain the exit.
        setImmediate(() => fail(new RedisUnavailableError(`redis-server exited with code ${code} at start: ${startOutput.slice(-500)}`)));
      });
    }).catch(async (error: unknown) => {
      await this.halt();
      throw error;
    });
    child.once('exit', (code, signal) => {
      if (this.child === child) this.logger.error({ code, signal }, 'embedded redis-server exited');
    });
    this.startWatchdog(child.pid!);
    this.logger.info({ port: this.port, redisPid: child.pid, dataDir: dir }, 'embedded redis-server started (REDIS_URL is unset)');
  }

  /** Stops the child gracefully (Redis flushes its AOF on SIGTERM), killing it if it does not stop in time. */
  stop(): Promise<void> {
    return this.terminate(STOP_TIMEOUT_MS);
  }

  /** As `stop()`, with a short bound: for a forced exit, which must not wait on anything slow. */
  halt(): Promise<void> {
    return this.terminate(HALT_TIMEOUT_MS);
  }

  /** The child's pid while it runs. */
  get pid(): number | undefined {
    return this.child?.exitCode === null ? this.child.pid : undefined;
  }

  /** Idempotent: a second call (a forced exit during a graceful stop) waits for the first. */
  private terminate(boundMs: number): Promise<void> {
    const child = this.child;
    if (!child) return this.stopping ?? Promise.resolve();
    this.child = undefined;
    return (this.stopping = this.signalAndWait(child, boundMs));
  }

  private async signalAndWait(child: ChildProcess, boundMs: number): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    this.signalChild('SIGTERM', child);
    const stopped = await settleWithin(this.exited!.then(() => true), boundMs, false);
    if (!stopped) {
      this.logger.warn(`embedded redis-server did not stop within ${boundMs} ms; killing it`);
      this.signalChild('SIGKILL', child);
      await settleWithin(this.exited!, 1000, undefined);
    }
  }

  /** See {@link WATCHDOG_SCRIPT}. Best effort: without `sh` the other ways out still stop redis-server. */
  private startWatchdog(redisPid: number): void {
    try {
      const watchdog = spawn('sh', ['-c', WATCHDOG_SCRIPT, 'bulwark-redis-watchdog', String(process.pid), String(redisPid)], {
        stdio: 'ignore',
        // Outside Bulwark's process group, so that the signal that stops Bulwark does not stop it.
        detached: true,
      });
      watchdog.on('error', (error) => this.logger.warn({ err: error }, 'no watchdog for the embedded redis-server'));
      watchdog.unref();
    } catch (error) {
      this.logger.warn({ err: error }, 'no watchdog for the embedded redis-server');
    }
  }

  /** Signals the child's process group (the child and anything it spawned); synchronous, never throws. */
  private signalChild(signal: NodeJS.Signals, child = this.child): void {
    if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      try {
        child.kill(signal);
      } catch {
        // Already gone.
      }
    }
  }
}
