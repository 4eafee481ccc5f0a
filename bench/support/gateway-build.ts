import { spawn } from 'node:child_process';

/** Output kept from a running gateway, for the error message when it fails: its last lines only. */
const KEPT_OUTPUT_CHARS = 16 * 1024;
const LISTENING = /"port":(\d+)[^\n]*"msg":"Bulwark listening"/;

/** A gateway process started from a given build. */
export interface GatewayBuildProcess {
  /** e.g. http://127.0.0.1:PORT */
  url: string;
  /** SIGTERM, then SIGKILL after `timeoutMs`; resolves once the process is gone. */
  stop(timeoutMs?: number): Promise<void>;
}

/**
 * Starts `node <main>` (any build of Bulwark, e.g. an older checkout's `dist/src/main.js`) on a free
 * loopback port with `env` on top of PATH and HOME, and waits for its "Bulwark listening" line.
 * Unlike the tests' `startGateway`, the entry point is a parameter, so one benchmark can run two builds.
 */
export async function startGatewayBuild(main: string, env: Record<string, string>, startTimeoutMs = 30_000): Promise<GatewayBuildProcess> {
  const child = spawn(process.execPath, [main], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk: Buffer) => (output = (output + chunk.toString()).slice(-KEPT_OUTPUT_CHARS));
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${main} did not start within ${startTimeoutMs} ms:\n${output}`));
    }, startTimeoutMs);
    const check = () => {
      const match = LISTENING.exec(output);
      if (!match) return;
      clearTimeout(timer);
      child.stdout.off('data', check);
      resolve(Number(match[1]));
    };
    child.stdout.on('data', check);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`${main} exited (${child.exitCode ?? child.signalCode}) before listening:\n${output}`));
    });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    stop: async (timeoutMs = 10_000) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
