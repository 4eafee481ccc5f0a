import { ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

const MAIN = resolve(__dirname, '../../src/main.js');

/** The environment every test gateway starts from: loopback, a free port, info logs. */
function baseEnv(): Record<string, string> {
  return { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info' };
}

/** Parses JSON log lines; a line that is not JSON becomes `{}` (use {@link nonJsonLines} to find those). */
export function parseLogLines(output: string): Record<string, unknown>[] {
  return output
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        return {};
      }
    });
}

/** The non-empty lines of `output` that are not a JSON object. */
export function nonJsonLines(output: string): string[] {
  return output.split('\n').filter((line) => {
    if (line.trim() === '') return false;
    try {
      const parsed: unknown = JSON.parse(line);
      return typeof parsed !== 'object' || parsed === null;
    } catch {
      return true;
    }
  });
}

/** True when no process `pid` runs any more (a zombie, dead but not yet reaped, counts as gone). */
export function processGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    try {
      process.kill(pid, 0);
      return false;
    } catch {
      return true;
    }
  }
}

/** The pid of the embedded redis-server that a gateway's output reports having started, if any. */
export function embeddedRedisPid(output: string): number | undefined {
  const line = parseLogLines(output).find((l) => /embedded redis-server started/.test(String(l.msg)));
  return typeof line?.redisPid === 'number' ? line.redisPid : undefined;
}

/** How a gateway run that was expected to end by itself ended. */
export interface GatewayRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the gateway with `env` (on top of the test defaults) until it exits by itself, as a start that
 * must fail does; kills it after `timeoutMs`. `onOutput` sees the output as it arrives.
 */
export function runToExit(env: Record<string, string>, timeoutMs = 20_000, onOutput?: (output: string, child: ChildProcess) => void): Promise<GatewayRun> {
  return new Promise((resolveRun) => {
    const child = spawn(process.execPath, [MAIN], { env: { ...baseEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      onOutput?.(stdout + stderr, child);
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolveRun({ code, stdout, stderr });
    });
  });
}

export interface GatewayProcess {
  /** e.g. http://127.0.0.1:PORT */
  url: string;
  port: number;
  child: ChildProcess;
  /** Everything the process wrote so far (JSON log lines on stdout, anything on stderr). */
  output(): string;
  /** Parsed JSON log lines so far. */
  logLines(): Record<string, unknown>[];
  /** Lines of stdout and stderr so far that are not one JSON object each (API.md: logs are JSON lines). */
  nonJsonLines(): string[];
  /** Sends a signal and resolves with the exit code (or kills it after `timeoutMs`). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
  exited: Promise<number | null>;
}

export interface GatewayOptions {
  /**
   * On top of the defaults (PORT=0, LOG_LEVEL=info). With a fixed PORT the gateway also counts as started
   * once `/health/live` answers, so a LOG_LEVEL that hides the "Bulwark listening" line works too.
   */
  env?: Record<string, string>;
  /** How long to wait for the "Bulwark listening" line. */
  startTimeoutMs?: number;
  /**
   * Runs the gateway as the leader of its own process group, so that a test can signal the group
   * (`process.kill(-child.pid, …)`) as `timeout`, process managers and a terminal's Ctrl-C do.
   */
  detached?: boolean;
}

/** Starts the real Bulwark (`dist/src/main.js`) as a child process on a free port. */
export async function startGateway(options: GatewayOptions = {}): Promise<GatewayProcess> {
  const env: Record<string, string> = { ...baseEnv(), ...options.env };
  const child = spawn(process.execPath, [MAIN], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: options.detached ?? false });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const port = await new Promise<number>((resolvePort, reject) => {
    let waiting = true;
    const settle = () => {
      waiting = false;
      clearTimeout(timer);
      child.stdout!.off('data', check);
    };
    const timer = setTimeout(() => {
      settle();
      child.kill('SIGKILL');
      reject(new Error(`gateway did not start:\n${output}`));
    }, options.startTimeoutMs ?? 20_000);
    const check = () => {
      const match = /"port":(\d+)[^\n]*"msg":"Bulwark listening"/.exec(output);
      if (match) {
        settle();
        resolvePort(Number(match[1]));
      }
    };
    child.stdout!.on('data', check);
    const fixedPort = Number(env.PORT);
    if (fixedPort > 0) {
      void untilLive(fixedPort, () => waiting).then((live) => {
        if (!live || !waiting) return;
        settle();
        resolvePort(fixedPort);
      });
    }
    void exited.then((code) => {
      settle();
      reject(new Error(`gateway exited with ${code} before listening:\n${output}`));
    });
  });
  const logLines = () => parseLogLines(output);
  return {
    url: `http://127.0.0.1:${port}`,
    nonJsonLines: () => nonJsonLines(output),
    port,
    child,
    output: () => output,
    logLines,
    exited,
    stop: async (signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 40_000) => {
      if (child.exitCode !== null) return child.exitCode;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Polls `GET /health/live` on `port` while `waiting()`: true once it answers 200. */
async function untilLive(port: number, waiting: () => boolean): Promise<boolean> {
  while (waiting()) {
    const res = await fetch(`http://127.0.0.1:${port}/health/live`, { signal: AbortSignal.timeout(1000) }).catch(() => undefined);
    await res?.body?.cancel().catch(() => undefined);
    if (res?.status === 200) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}
