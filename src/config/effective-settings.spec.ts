import 'reflect-metadata';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Runtime } from '../runtime';
import { effectiveSettings, redactSecretsOfUrl } from './effective-settings';
import { validateEnvironment } from './environment';

const runtime = (overrides: Partial<Runtime> = {}): Runtime => ({
  redis: { kind: 'url', url: 'redis://127.0.0.1:6390' },
  simulated: false,
  topology: { upstreams: [{ name: 'primary', baseUrl: 'http://vllm:8000/v1', models: [], weight: 1 }], fallbacks: {} },
  ...overrides,
});

describe('effectiveSettings', () => {
  it('names the UPSTREAM_URL upstream with its URL, any model, and the shared Redis without its password', () => {
    const env = validateEnvironment({
      UPSTREAM_URL: 'http://vllm:8000/v1',
      UPSTREAM_API_KEY: 'sk-upstream-secret',
      REDIS_URL: 'redis://:hunter2@redis:6379/0',
      API_KEYS: 'sk-a:high,sk-b:low',
      ADMIN_API_KEY: 'sk-admin-secret',
      MAX_QUEUE_SIZE: '20',
      MAX_CONCURRENT_REQUESTS: '4',
      REQUEST_TIMEOUT_MS: '15000',
      WORKER_ENABLED: 'false',
    });
    const settings = effectiveSettings(env, runtime({ topology: { upstreams: [{ name: 'primary', baseUrl: 'http://vllm:8000/v1', apiKey: 'sk-upstream-secret', models: [], weight: 1 }], fallbacks: {} } }));
    assert.equal(settings.upstreamSource, 'UPSTREAM_URL');
    assert.deepEqual(settings.upstreams, [{ name: 'primary', url: 'http://vllm:8000/v1', models: '*', weight: 1, apiKey: 'set' }]);
    assert.deepEqual(settings.redis, { mode: 'url', url: 'redis://:***@redis:6379/0', connectTimeoutMs: 30000 });
    assert.deepEqual(settings.queue, { maxQueueSize: 20, maxConcurrent: 4, rejectionThreshold: 0.8, workerEnabled: false });
    assert.equal(settings.deadlines.requestTimeoutMs, 15000);
    assert.deepEqual(settings.auth, { clientKeys: 2, adminKey: 'set', rateLimitRpm: 0, metrics: 'none', healthDetails: 'none' });
    const text = JSON.stringify(settings);
    for (const secret of ['sk-upstream-secret', 'hunter2', 'sk-a', 'sk-b', 'sk-admin-secret']) assert.doesNotMatch(text, new RegExp(secret));
  });

  it('lists the models of each upstream of a file, the fallbacks, and the embedded Redis', () => {
    const env = validateEnvironment({ UPSTREAMS_FILE: '/etc/bulwark/upstreams.yaml', DATA_DIR: '/var/lib/bulwark' });
    const settings = effectiveSettings(
      env,
      runtime({
        topology: {
          upstreams: [
            { name: 'a', baseUrl: 'https://user:pw@a.example/v1?api_key=abc', models: ['llama', 'mistral'], weight: 2, maxConcurrency: 8 },
            { name: 'b', baseUrl: 'http://b/v1', models: ['mistral'], weight: 1 },
          ],
          fallbacks: { llama: ['mistral'] },
        },
      }),
    );
    assert.equal(settings.upstreamSource, 'UPSTREAMS_FILE');
    assert.deepEqual(settings.upstreams, [
      { name: 'a', url: 'https://user:***@a.example/v1?api_key=***', models: ['llama', 'mistral'], weight: 2, maxConcurrency: 8, apiKey: 'unset' },
      { name: 'b', url: 'http://b/v1', models: ['mistral'], weight: 1, apiKey: 'unset' },
    ]);
    assert.deepEqual(settings.fallbacks, { llama: ['mistral'] });
    assert.deepEqual(settings.redis, { mode: 'embedded', url: 'redis://127.0.0.1:6390', dataDir: '/var/lib/bulwark' });
    assert.equal(settings.auth.clientKeys, 'off');
  });

  it('says when the built-in simulator serves', () => {
    assert.equal(effectiveSettings(validateEnvironment({}), runtime({ simulated: true })).upstreamSource, 'simulator');
  });
});

describe('redactSecretsOfUrl', () => {
  it('hides user info and every query value, and leaves a plain URL alone', () => {
    assert.equal(redactSecretsOfUrl('http://host:8000/v1'), 'http://host:8000/v1');
    assert.equal(redactSecretsOfUrl('http://u:p@host/v1?key=1&x=2'), 'http://u:***@host/v1?key=***&x=***');
    assert.equal(redactSecretsOfUrl('rediss://token@redis:6380'), 'rediss://***@redis:6380');
  });
});
