import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { parseSimulatorArgs } from './simulator.main';

test('parseSimulatorArgs maps flags to options', () => {
  const cli = parseSimulatorArgs(['--port', '0', '--latency-ms', '5', '--capacity', '2', '--models', 'a, b', '--api-key', 'k']);
  assert.deepEqual(cli, { port: 0, host: '127.0.0.1', options: { latencyMs: 5, capacity: 2, models: ['a', 'b'], apiKey: 'k' } });
  assert.throws(() => parseSimulatorArgs(['--capacity', '-1']), /capacity/);
  assert.throws(() => parseSimulatorArgs(['--bogus']));
});

test('parseSimulatorArgs reads the prefix-cache and stall flags', () => {
  const cli = parseSimulatorArgs(['--prefix-cache-tokens', '4096', '--block-tokens', '8', '--prefill-ms-per-token', '0.5', '--stall-share', '0.1', '--stall-ms', '5000']);
  assert.deepEqual(cli.options, { prefixCacheTokens: 4096, blockTokens: 8, prefillMsPerToken: 0.5, stall: { share: 0.1, ms: 5000 } });
  assert.throws(() => parseSimulatorArgs(['--stall-share', '2']), /stall-share/);
});

test('simulator.main logs its URL, serves, and exits cleanly on SIGTERM', async () => {
  const child = spawn(process.execPath, [join(__dirname, 'simulator.main.js'), '--port', '0', '--models', 'm1'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = once(child, 'exit');
  const firstLine = (await createInterface({ input: child.stdout })[Symbol.asyncIterator]().next()).value as string;
  const { url } = JSON.parse(firstLine) as { url: string };
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/v1$/);
  const models = (await (await fetch(`${url}/models`)).json()) as { data: Array<{ id: string }> };
  assert.deepEqual(models.data.map((m) => m.id), ['m1']);
  child.kill('SIGTERM');
  const [code] = await exited;
  assert.equal(code, 0);
});
