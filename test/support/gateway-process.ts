import { ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';

const MAIN = resolve(__dirname, '../../src/main.js');

export interface GatewayProcess {
  /** e.g. http://127.0.0.1:PORT */
  url: string;
  port: number;
  child: ChildProcess;
  /** Everything the process wrote so far (JSON log lines on stdout, anything on stderr). */
  output(): string;
  /** Parsed JSON log lines so far. */
  logLines(): Record<string, unknown>[];
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
}

/** Starts the real Bulwark (`dist/src/main.js`) as a child process on a free port. */
export async function startGateway(options: GatewayOptions = {}): Promise<GatewayProcess> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/tmp',
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    ...options.env,
  };
  const child = spawn(process.execPath, [MAIN], { env, stdio: ['ignore', 'pipe', 'pipe'] });
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
  const logLines = () =>
    output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          return {};
        }
      });
  return {
    url: `http://127.0.0.1:${port}`,
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
