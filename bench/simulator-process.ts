import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { freePort } from '../test/support/redis-server';

const SIMULATOR_MAIN = resolve(__dirname, '../src/simulator/simulator.main.js');

/** The built-in simulator as a process of its own (`simulator.main.js`), so it has a core to itself. */
export interface SimulatorProcess {
  /** e.g. http://127.0.0.1:PORT/v1 */
  baseUrl: string;
  pid: number;
  stop(): Promise<void>;
}

/** Starts the standalone simulator with its command-line options (e.g. `--chunk-interval-ms 100`). */
export async function startSimulatorProcess(args: string[]): Promise<SimulatorProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, [SIMULATOR_MAIN, '--port', String(port), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGKILL');
    await exited;
  };
  await new Promise<void>((resolveStarted, reject) => {
    const timer = setTimeout(() => reject(new Error(`simulator did not start: ${output}`)), 10_000);
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('upstream simulator listening')) {
        clearTimeout(timer);
        resolveStarted();
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`simulator exited before listening: ${output}`));
    });
  }).catch(async (error: unknown) => {
    await stop();
    throw error;
  });
  return { baseUrl: `http://127.0.0.1:${port}/v1`, pid: child.pid!, stop };
}
