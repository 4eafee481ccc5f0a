import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The small chat completion every load generator sends (the simulator answers 4 words). */
export const SMALL_CHAT_BODY = JSON.stringify({ model: 'sim-small', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 });

/** True when `command` can be run (e.g. `wrk`, `hey`, `haproxy`). */
export function installed(command: string, versionFlag = '-v'): boolean {
  return !spawnSync(command, [versionFlag]).error;
}

/**
 * Runs a command to its end without blocking this process's event loop (the simulator lives in it) and
 * returns its stdout; throws with stderr when it fails or outlives `timeoutMs`.
 */
export function runCommand(command: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else reject(new Error(`${command} ${args.join(' ')} ended with ${code ?? signal}: ${stderr || stdout}`));
    });
  });
}

/** What one `wrk` run measured. */
export interface WrkResult {
  requestsPerSecond: number;
  total: number;
  /** Answers other than 2xx/3xx, and socket errors (connect, read, write, timeout). */
  non2xx: number;
  errors: number;
  p50: number;
  p90: number;
  p99: number;
}

/** Runs `wrk` (one thread: the load generator shares the machine) sending {@link SMALL_CHAT_BODY}, with `headers` on top. */
export async function wrk(url: string, connections: number, seconds: number, headers: Record<string, string> = {}): Promise<WrkResult> {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-wrk-'));
  try {
    const script = join(dir, 'post.lua');
    const extra = Object.entries(headers).map(([name, value]) => `wrk.headers[${JSON.stringify(name)}] = ${JSON.stringify(value)}\n`).join('');
    writeFileSync(script, `wrk.method = "POST"\nwrk.body = '${SMALL_CHAT_BODY}'\nwrk.headers["Content-Type"] = "application/json"\n${extra}`);
    const output = await runCommand('wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '-s', script, url], (seconds + 30) * 1000);
    return parseWrk(output);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function parseWrk(output: string): WrkResult {
  const ms = (value: string, unit: string) => Number(value) * (unit === 'us' ? 0.001 : unit === 's' ? 1000 : 1);
  const percentile = (p: string) => {
    const match = new RegExp(`\\s${p}%\\s+([\\d.]+)(us|ms|s)`).exec(output);
    return match ? ms(match[1], match[2]) : NaN;
  };
  const number = (pattern: RegExp) => Number(pattern.exec(output)?.[1] ?? NaN);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  return {
    requestsPerSecond: number(/Requests\/sec:\s+([\d.]+)/),
    total: number(/(\d+) requests in/),
    non2xx: Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(output)?.[1] ?? 0),
    errors: socketErrors ? socketErrors.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0,
    p50: percentile('50'),
    p90: percentile('90'),
    p99: percentile('99'),
  };
}

/** What one `hey` run at a fixed rate measured (latencies in ms). */
export interface HeyResult {
  requestsPerSecond: number;
  total: number;
  /** Answers per HTTP status, and requests that got no answer. */
  statuses: Record<string, number>;
  errors: number;
  p50: number;
  p90: number;
  p99: number;
}

/**
 * Runs `hey` at `rate` requests/s in total over `workers` keep-alive connections for `seconds`, sending
 * {@link SMALL_CHAT_BODY}.
 */
export async function heyAtRate(url: string, rate: number, workers: number, seconds: number): Promise<HeyResult> {
  const perWorker = String(rate / workers);
  const args = ['-z', `${seconds}s`, '-c', String(workers), '-q', perWorker, '-m', 'POST', '-T', 'application/json', '-d', SMALL_CHAT_BODY, url];
  return parseHey(await runCommand('hey', args, (seconds + 30) * 1000));
}

function parseHey(output: string): HeyResult {
  const percentile = (p: number) => Number(new RegExp(`^\\s*${p}%+ in ([\\d.]+) secs`, 'm').exec(output)?.[1] ?? NaN) * 1000;
  const statuses: Record<string, number> = {};
  for (const match of output.matchAll(/^\s*\[(\d{3})\]\s+(\d+) responses/gm)) statuses[match[1]] = Number(match[2]);
  const errorSection = output.split('Error distribution:')[1] ?? '';
  const errors = [...errorSection.matchAll(/^\s*\[(\d+)\]/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
  return {
    requestsPerSecond: Number(/Requests\/sec:\s+([\d.]+)/.exec(output)?.[1] ?? NaN),
    total: Object.values(statuses).reduce((sum, n) => sum + n, 0) + errors,
    statuses,
    errors,
    p50: percentile(50),
    p90: percentile(90),
    p99: percentile(99),
  };
}
