import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { keyDigest } from '../src/config/api-keys-file';
import { startGateway } from './support/gateway-process';
import { chatBody, getJson, postJson } from './support/http';
import { GatewayStack, startStack, TempFile, writeUpstreamsFile } from './support/stack';

const TEAM_A_KEY = 'sk-e2e-team-a-31c9d2';
const BATCH_KEY = 'sk-e2e-batch-7ae410';

describe('API_KEYS_FILE: named keys with tiers, from hashes or named variables', () => {
  let stack: GatewayStack;
  let file: TempFile;

  before(async () => {
    file = writeUpstreamsFile({
      keys: [
        { name: 'team-a', keyEnv: 'TEAM_A_KEY', tier: 'high', weight: 2, maxConcurrent: 3, maxQueueShare: 0.5 },
        { name: 'batch', keyHash: `sha256:${keyDigest(BATCH_KEY)}`, tier: 'low' },
      ],
    });
    stack = await startStack({ env: { API_KEYS_FILE: file.path, TEAM_A_KEY } });
  });

  after(async () => {
    await stack?.stop();
    file?.remove();
  });

  it('serves a key from the file through the openai client, whichever way the file gives it', async () => {
    for (const apiKey of [TEAM_A_KEY, BATCH_KEY]) {
      const client = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey, maxRetries: 0 });
      const answer = await client.chat.completions.create({ model: 'sim-small', messages: [{ role: 'user', content: 'hi' }] });
      assert.equal(answer.object, 'chat.completion');
    }
  });

  it('refuses an unknown key and a near miss of a configured one with 401', async () => {
    for (const key of ['sk-e2e-nobody-000000', `${TEAM_A_KEY}x`, keyDigest(TEAM_A_KEY)]) {
      const res = await postJson(`${stack.url}/v1/chat/completions`, chatBody(), { authorization: `Bearer ${key}` });
      assert.equal(res.status, 401);
      assert.equal(res.json.error.type, 'authentication_error');
    }
  });

  it("caps a request's priority at its key's tier (batch is low)", async () => {
    const res = await postJson(`${stack.url}/v1/jobs`, chatBody(), { authorization: `Bearer ${BATCH_KEY}`, 'x-priority': 'high' });
    assert.equal(res.status, 202);
    assert.equal(res.json.priority, 'low');
  });

  it('counts served requests per configured name, never by key', async () => {
    const metrics = await getJson(`${stack.url}/metrics`);
    assert.match(metrics.text, /bulwark_key_requests_total\{key_name="team-a",outcome="served"\} 1\b/);
    assert.match(metrics.text, /bulwark_key_requests_total\{key_name="batch",outcome="served"\} 1\b/);
    assert.match(metrics.text, /bulwark_key_requests_total\{key_name="batch",outcome="accepted"\} 1\b/);
    assert.doesNotMatch(metrics.text, /bulwark_key_requests_total\{key_name="anonymous"/, 'unknown keys count under no name');
    for (const key of [TEAM_A_KEY, BATCH_KEY]) assert.ok(!metrics.text.includes(key) && !stack.gateway.output().includes(key), 'a key leaks');
  });
});

describe('API_KEYS_FILE: a bad file stops the start', () => {
  it('exits 78 naming the file, the entry and the closest valid field', async () => {
    const file = writeUpstreamsFile({ keys: [{ name: 'team-a', keyEnv: 'TEAM_A_KEY', weigth: 2 }] });
    try {
      await assert.rejects(
        startGateway({ env: { REDIS_URL: 'redis://127.0.0.1:1', UPSTREAM_URL: 'http://127.0.0.1:1/v1', API_KEYS_FILE: file.path, TEAM_A_KEY } }),
        (error: Error) => {
          assert.match(error.message, /exited with 78/);
          assert.match(error.message, /API_KEYS_FILE=.*keys\[0\] \(team-a\): unknown field `weigth` \(did you mean `weight`\?\)/);
          assert.ok(!error.message.includes(TEAM_A_KEY), 'the key leaks');
          return true;
        },
      );
    } finally {
      file.remove();
    }
  });
});
