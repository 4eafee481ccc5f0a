import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { UpstreamSimulator } from '../src/simulator/simulator';
import { buildFuzzCorpus, FuzzCase } from './support/fuzz-corpus';
import { GatewayProcess } from './support/gateway-process';
import { chatBody, expectErrorShape, postJson } from './support/http';
import { RawResponse, sendRaw } from './support/raw-http';
import { GatewayStack, startStack } from './support/stack';

const CLIENT_KEY = 'sk-fuzz-client-5b1f0c';
const ADMIN_KEY = 'sk-fuzz-admin-77e2aa';
const UPSTREAM_KEY = 'sk-fuzz-upstream-c0ffee';
const MAX_BODY_BYTES = 16_384;
const SEED = 20_260_522;
const CASES = 1_100;
const CONCURRENCY = 8;

/** Requests that reached the simulator's generation routes (its background model probes do not count). */
function generationRequests(simulator: UpstreamSimulator): number {
  const byPath = simulator.stats.requestsByPath;
  return ['/v1/chat/completions', '/v1/completions', '/v1/embeddings'].reduce((sum, path) => sum + (byPath[path] ?? 0), 0);
}

/** What is wrong with one answer, or undefined when it is what the contract asks for. */
function problemWith(testCase: FuzzCase, response: RawResponse): string | undefined {
  if (response.status < 400 || response.status > 499) return `status ${response.status} is not 4xx`;
  if (!testCase.expect.includes(response.status)) return `status ${response.status}, expected one of ${testCase.expect.join('/')}`;
  try {
    expectErrorShape(response.json);
  } catch (error) {
    return (error as Error).message;
  }
  if (response.headers['x-should-retry'] !== 'false') return `x-should-retry is ${response.headers['x-should-retry']}`;
  for (const secret of [CLIENT_KEY, ADMIN_KEY, UPSTREAM_KEY]) if (response.body.includes(secret)) return 'the body echoes a key';
  if (/\n\s+at |node_modules|127\.0\.0\.1/.test(response.body)) return 'the body reveals internals';
  return undefined;
}

describe('fuzz: a seeded corpus of malformed requests', () => {
  let stack: GatewayStack;
  let simulator: UpstreamSimulator;
  let gateway: GatewayProcess;

  before(async () => {
    ({ simulator, gateway } = stack = await startStack({
      simulator: { latencyMs: 1, chunkIntervalMs: 1, apiKey: UPSTREAM_KEY },
      env: {
        UPSTREAM_API_KEY: UPSTREAM_KEY,
        API_KEYS: `${CLIENT_KEY}:normal`,
        ADMIN_API_KEY: ADMIN_KEY,
        MAX_BODY_BYTES: String(MAX_BODY_BYTES),
        RETRY_MAX_ATTEMPTS: '1',
      },
    }));
  });

  after(() => stack?.stop());

  it('is reproducible and covers every kind of defect', () => {
    const options = { apiKey: CLIENT_KEY, maxBodyBytes: MAX_BODY_BYTES };
    const corpus = buildFuzzCorpus(SEED, CASES, options);
    assert.ok(corpus.length >= 1000);
    assert.deepEqual(buildFuzzCorpus(SEED, 50, options), corpus.slice(0, 50));
    const kinds = new Set(corpus.map((c) => c.kind));
    for (const kind of ['mutated-json', 'wrong-type', 'bad-header', 'oversized', 'invalid-utf8', 'content-type', 'proto-key', 'deep-or-wide', 'malformed-http']) {
      assert.ok(kinds.has(kind), kind);
    }
  });

  it('answers every case with a 4xx in the contract shape, and none reaches the upstream', async () => {
    const corpus = buildFuzzCorpus(SEED, CASES, { apiKey: CLIENT_KEY, maxBodyBytes: MAX_BODY_BYTES });
    const reachedBefore = generationRequests(simulator);
    const problems: string[] = [];
    let next = 0;
    const worker = async () => {
      while (next < corpus.length) {
        const index = next++;
        const testCase = corpus[index];
        try {
          const problem = problemWith(testCase, await sendRaw(gateway.port, testCase.bytes));
          if (problem) problems.push(`#${index} ${testCase.kind}: ${problem} — ${JSON.stringify(testCase.bytes.toString('latin1').slice(0, 160))}`);
        } catch (error) {
          problems.push(`#${index} ${testCase.kind}: ${(error as Error).message}`);
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    assert.deepEqual(problems.slice(0, 15), [], `${problems.length} of ${corpus.length} cases went wrong`);
    assert.equal(generationRequests(simulator), reachedBefore, 'a malformed request reached the upstream');
  });

  it('is still alive and serving afterwards, through the upstream key', async () => {
    assert.equal(gateway.child.exitCode, null);
    const before = generationRequests(simulator);
    const res = await postJson(`${gateway.url}/v1/chat/completions`, chatBody(), { authorization: `Bearer ${CLIENT_KEY}` });
    assert.equal(res.status, 200);
    assert.equal(res.json.object, 'chat.completion');
    assert.equal(generationRequests(simulator), before + 1);
    assert.equal(simulator.stats.lastHeaders?.authorization, `Bearer ${UPSTREAM_KEY}`);
  });

  it('wrote no key into its logs', () => {
    const output = gateway.output();
    assert.ok(output.length > 0);
    for (const secret of [CLIENT_KEY, ADMIN_KEY, UPSTREAM_KEY]) assert.ok(!output.includes(secret), 'a key appears in the log');
  });
});
