import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GatewayStack, startStack } from './support/stack';

const LOADTEST = resolve(__dirname, '../src/loadtest/loadtest.main.js');

/** Runs the real CLI to its end; resolves with its exit code and output. */
async function runLoadTest(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [LOADTEST, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** The `- Label: value` line of one level's section of the report. */
function field(report: string, concurrency: number, label: string): string {
  const section = report.split(`### ${concurrency} concurrent\n`)[1]?.split('\n### ')[0].split('\n## ')[0] ?? '';
  const line = section.split('\n').find((l) => l.startsWith(`- ${label}: `));
  assert.ok(line, `no "${label}" in the ${concurrency} section:\n${report}`);
  return line.slice(label.length + 4);
}

describe('npm run loadtest -- --help', () => {
  it('prints the usage on stdout and exits 0', async () => {
    const run = await runLoadTest(['--help']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /--url/);
    assert.match(run.stdout, /--concurrency/);
  });
});

describe('npm run loadtest against a gateway on the simulator', () => {
  let stack: GatewayStack;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bulwark-loadtest-'));
    // One request at a time and one waiting: at 4 concurrent, some requests are certainly refused.
    stack = await startStack({
      simulator: { latencyMs: 100, chunkIntervalMs: 5 },
      env: { MAX_CONCURRENT_REQUESTS: '1', MAX_QUEUE_SIZE: '1', RETRY_MAX_ATTEMPTS: '1' },
    });
  });

  after(async () => {
    await stack?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('reports per level the requests the simulator served, the refusals with Retry-After, and where refusals start', async () => {
    const reportPath = join(dir, 'results.md');
    const before = stack.simulator.stats.requestsByPath['/v1/chat/completions'] ?? 0;
    const run = await runLoadTest([
      '--url', `${stack.url}/v1`, '--model', 'sim-small', '--stream', '--key', 'unused-key',
      '--concurrency', '1,4', '--requests', '8', '--duration', '20s', '--report', reportPath,
    ]);
    assert.equal(run.code, 0, run.stderr);
    const report = readFileSync(reportPath, 'utf8');
    const served = (stack.simulator.stats.requestsByPath['/v1/chat/completions'] ?? 0) - before;

    // One client: every request is served, none refused.
    assert.equal(field(report, 1, 'Requests').split(' in ')[0], '8 (8 succeeded, 0 failed)');
    assert.equal(field(report, 1, 'Status codes'), '200 × 8');
    assert.equal(field(report, 1, 'Refusals (429/503)'), 'none');
    assert.match(field(report, 1, 'Time to first token'), /^avg \d+ ms, p50/);

    // Four clients against room for two: the rest are refused with the contract's 503 and Retry-After.
    const [, succeeded, failed] = /^8 \((\d+) succeeded, (\d+) failed\)/.exec(field(report, 4, 'Requests')) ?? [];
    assert.ok(Number(failed) >= 1, report);
    assert.equal(Number(succeeded) + Number(failed), 8);
    assert.equal(field(report, 4, 'Status codes'), [`200 × ${succeeded}`, `503 × ${failed}`].sort((a, b) => Number(b.split(' × ')[1]) - Number(a.split(' × ')[1]) || a.localeCompare(b)).join(', '));
    assert.match(field(report, 4, 'Error codes'), /^(queue_full|load_shed)/);
    assert.match(field(report, 4, 'Refusals (429/503)'), new RegExp(`^${failed} \\(\\d+(\\.\\d)?%\\), Retry-After (\\d+ s × \\d+(, )?)+$`));

    // Every success reached the upstream exactly once; no refused request did.
    assert.equal(served, 8 + Number(succeeded));
    assert.match(report, /## Observations\n(.*\n)*\d\. Refusals start at 4 concurrent: /);
    assert.match(report, /## Recommendations\n- /);
    assert.doesNotMatch(report + run.stdout + run.stderr, /unused-key/);
    // The terminal got each level's figures and the progress line.
    assert.match(run.stdout, /Concurrency 4: 8 requests in /);
    assert.match(run.stderr, /c=1 {2}\d+ requests {2}[\d.]+ req\/s {2}\d+ errors/);
  });

  it('exits 2 with the usage on a bad command line', async () => {
    const run = await runLoadTest(['--url', `${stack.url}/v1`, '--concurrency', '0']);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /--model is required|--concurrency must be/);
    assert.match(run.stderr, /usage: npm run loadtest/);
  });
});
