import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { UpstreamSimulator } from '../src/simulator/simulator';
import { GatewayProcess } from './support/gateway-process';
import { chatBody, expectErrorShape, postJson, request } from './support/http';
import { Stack, startStack } from './support/stack';

const KEYS = { high: 'sk-e2e-high-6a0c1e', low: 'sk-e2e-low-93bd27', admin: 'sk-e2e-admin-d41f08', upstream: 'sk-e2e-upstream-5c3b99' };
const API_KEYS = `${KEYS.high}:high,${KEYS.low}:low`;
type Caller = 'none' | 'unknown' | 'client' | 'admin';
const CALLERS: Record<Caller, Record<string, string>> = {
  none: {},
  unknown: { authorization: 'Bearer sk-e2e-not-a-key' },
  client: { authorization: `Bearer ${KEYS.low}` },
  admin: { authorization: `Bearer ${KEYS.admin}` },
};

interface Route {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  body?: unknown;
  /** Expected status per caller. */
  expect: Record<Caller, number>;
}

const CLIENT_ROUTE = (ok: number) => ({ none: 401, unknown: 401, client: ok, admin: ok });
const PUBLIC_ROUTE = { none: 200, unknown: 200, client: 200, admin: 200 };
const ADMIN_ROUTE = (ok: number) => ({ none: 401, unknown: 401, client: 403, admin: ok });
/** Every route there is, with its auth rule (API.md §1). */
const ROUTES: Route[] = [
  { method: 'POST', path: '/v1/chat/completions', body: chatBody(), expect: CLIENT_ROUTE(200) },
  { method: 'POST', path: '/v1/completions', body: { model: 'sim-small', prompt: 'hi' }, expect: CLIENT_ROUTE(200) },
  { method: 'POST', path: '/v1/embeddings', body: { model: 'sim-small', input: 'hi' }, expect: CLIENT_ROUTE(200) },
  { method: 'GET', path: '/v1/models', expect: CLIENT_ROUTE(200) },
  { method: 'POST', path: '/v1/jobs', body: chatBody(), expect: CLIENT_ROUTE(202) },
  { method: 'GET', path: '/v1/jobs/no-such-job', expect: CLIENT_ROUTE(404) },
  { method: 'DELETE', path: '/v1/jobs/no-such-job', expect: CLIENT_ROUTE(404) },
  { method: 'GET', path: '/v1/queue/stats', expect: CLIENT_ROUTE(200) },
  { method: 'GET', path: '/health', expect: PUBLIC_ROUTE },
  { method: 'GET', path: '/health/live', expect: PUBLIC_ROUTE },
  { method: 'GET', path: '/health/ready', expect: PUBLIC_ROUTE },
  { method: 'GET', path: '/dashboard', expect: PUBLIC_ROUTE },
  // Run with METRICS_AUTH=admin and HEALTH_DETAILS=admin (dashboard figures follow HEALTH_DETAILS).
  { method: 'GET', path: '/metrics', expect: ADMIN_ROUTE(200) },
  { method: 'GET', path: '/dashboard/data', expect: ADMIN_ROUTE(200) },
  { method: 'GET', path: '/admin/jobs?status=failed', expect: ADMIN_ROUTE(200) },
  { method: 'GET', path: '/admin/breakers', expect: ADMIN_ROUTE(200) },
  { method: 'POST', path: '/admin/breakers/no-such-breaker/reset', expect: ADMIN_ROUTE(404) },
];

const call = (base: string, { method, path, body }: Pick<Route, 'method' | 'path' | 'body'>, headers: Record<string, string>) =>
  request(`${base}${path}`, { method, headers, body, timeoutMs: 15_000 });

/** Asserts an error body names nothing it must not: keys, internal addresses, stack frames. */
function assertNothingLeaks(text: string, label: string): void {
  for (const key of Object.values(KEYS)) assert.ok(!text.includes(key), `${label}: a key leaks`);
  assert.doesNotMatch(text, /127\.0\.0\.1|localhost|node_modules|\n\s+at |\.js:\d+/, `${label}: internals leak`);
}

describe('auth: keys, tiers and isolation', () => {
  let stack: Stack;
  let simulator: UpstreamSimulator;
  let gateway: GatewayProcess;
  let closedAdmin: GatewayProcess;

  before(async () => {
    stack = await startStack({
      simulator: { latencyMs: 2, chunkIntervalMs: 2, apiKey: KEYS.upstream },
      env: { UPSTREAM_API_KEY: KEYS.upstream, API_KEYS, RETRY_MAX_ATTEMPTS: '1', LOG_LEVEL: 'trace' },
      gateway: false,
    });
    simulator = stack.simulator;
    [gateway, closedAdmin] = await Promise.all([
      stack.startGateway({ ADMIN_API_KEY: KEYS.admin, METRICS_AUTH: 'admin', HEALTH_DETAILS: 'admin' }),
      stack.startGateway(),
    ]);
  });

  after(() => stack?.stop());

  it('applies each route’s auth rule to every kind of caller', async () => {
    for (const route of ROUTES) {
      for (const caller of Object.keys(CALLERS) as Caller[]) {
        const label = `${route.method} ${route.path} as ${caller}`;
        const res = await call(gateway.url, route, CALLERS[caller]);
        assert.equal(res.status, route.expect[caller], `${label}: ${res.text.slice(0, 200)}`);
        if (res.status === 401 || res.status === 403) {
          const error = expectErrorShape(res.json);
          assert.deepEqual([error.type, error.code], res.status === 401 ? ['authentication_error', 'invalid_api_key'] : ['permission_error', 'admin_only'], label);
          assert.equal(res.headers.get('x-should-retry'), 'false', label);
        }
        if (res.status >= 400) assertNothingLeaks(res.text, label);
      }
    }
  });

  it('accepts keys as X-API-Key too, for client and admin routes', async () => {
    assert.equal((await postJson(`${gateway.url}/v1/chat/completions`, chatBody(), { 'x-api-key': KEYS.high })).status, 200);
    assert.equal((await call(gateway.url, { method: 'GET', path: '/admin/jobs?status=failed' }, { 'x-api-key': KEYS.admin })).status, 200);
    assert.equal((await call(gateway.url, { method: 'GET', path: '/admin/jobs?status=failed' }, { 'x-api-key': KEYS.high })).status, 403);
  });

  it('shows /health details to the admin key only, with HEALTH_DETAILS=admin', async () => {
    for (const caller of Object.keys(CALLERS) as Caller[]) {
      const res = await call(gateway.url, { method: 'GET', path: '/health' }, CALLERS[caller]);
      assert.equal(res.status, 200, caller);
      if (caller === 'admin') assert.ok(res.json.details, 'the admin sees the details');
      else assert.deepEqual(Object.keys(res.json), ['status'], caller);
    }
  });

  it('keeps admin routes closed (403) for everyone while ADMIN_API_KEY is unset', async () => {
    for (const path of ['/admin/jobs?status=failed', '/admin/breakers']) {
      for (const caller of Object.keys(CALLERS) as Caller[]) {
        const res = await call(closedAdmin.url, { method: 'GET', path }, CALLERS[caller]);
        assert.equal(res.status, 403, `${path} as ${caller}`);
        assert.equal(expectErrorShape(res.json).code, 'admin_only');
      }
    }
    assert.equal((await postJson(`${closedAdmin.url}/v1/chat/completions`, chatBody(), CALLERS.client)).status, 200);
  });

  it('caps a job’s priority at its key’s tier', async () => {
    const asked = { 'x-priority': 'high', prefer: 'respond-async' };
    const low = await postJson(`${gateway.url}/v1/chat/completions`, chatBody(), { ...CALLERS.client, ...asked });
    const high = await postJson(`${gateway.url}/v1/jobs`, chatBody(), { authorization: `Bearer ${KEYS.high}`, 'x-priority': 'high' });
    const lowAsksLow = await postJson(`${gateway.url}/v1/jobs`, chatBody(), { ...CALLERS.client, 'x-priority': 'low' });
    assert.deepEqual([low.status, high.status, lowAsksLow.status], [202, 202, 202]);
    assert.equal(low.json.priority, 'low', 'a low-tier key asking for high runs at low');
    assert.equal(high.json.priority, 'high');
    assert.equal(lowAsksLow.json.priority, 'low');
  });

  it('shows a job only to the key that created it; to anyone else it does not exist', async () => {
    const created = await postJson(`${gateway.url}/v1/jobs`, chatBody(), CALLERS.client);
    assert.equal(created.status, 202);
    const id: string = created.json.id;
    assert.equal(created.headers.get('location'), `/v1/jobs/${id}`);
    const owner = await call(gateway.url, { method: 'GET', path: `/v1/jobs/${id}` }, CALLERS.client);
    assert.equal(owner.status, 200);
    assert.equal(owner.json.id, id);

    const other = { authorization: `Bearer ${KEYS.high}` };
    const missing = await call(gateway.url, { method: 'GET', path: '/v1/jobs/0000000' }, other);
    for (const method of ['GET', 'DELETE'] as const) {
      const res = await call(gateway.url, { method, path: `/v1/jobs/${id}` }, other);
      assert.equal(res.status, 404, method);
      const error = expectErrorShape(res.json);
      assert.equal(error.code, 'job_not_found');
      assert.equal(error.message.replace(id, '<id>'), expectErrorShape(missing.json).message.replace('0000000', '<id>'), 'the same answer as for a job that never existed');
      assert.ok(!res.text.includes('"status"') && !res.text.includes('sim-small'), 'nothing of the job leaks');
    }
    assert.equal((await call(gateway.url, { method: 'GET', path: `/v1/jobs/${id}` }, CALLERS.client)).status, 200, 'still there for its owner');
  });

  it('reveals no upstream key, address or stack when the upstream fails', async () => {
    const faults = [{ fault: 'error', status: 500 }, { fault: 'reset' }, { fault: 'bad_json' }, { fault: 'error', status: 401 }];
    for (const x_sim of faults) {
      const res = await postJson(`${gateway.url}/v1/chat/completions`, chatBody({ x_sim }), CALLERS.client);
      assert.ok(res.status >= 400, JSON.stringify(x_sim));
      expectErrorShape(res.json);
      assertNothingLeaks(res.text, JSON.stringify(x_sim));
    }
    const unknownModel = await postJson(`${gateway.url}/v1/chat/completions`, chatBody({ model: 'no-such-model' }), CALLERS.client);
    assertNothingLeaks(unknownModel.text, 'unknown model');
  });

  it('sends the upstream its own key, never the client’s', async () => {
    await postJson(`${gateway.url}/v1/chat/completions`, chatBody(), CALLERS.client);
    const sent = simulator.stats.lastHeaders ?? {};
    assert.equal(sent.authorization, `Bearer ${KEYS.upstream}`);
    assert.ok(!JSON.stringify(sent).includes(KEYS.low), 'the client key went upstream');
  });

  it('shows none of the keys in its metrics after all this traffic', async () => {
    const metrics = await call(gateway.url, { method: 'GET', path: '/metrics' }, CALLERS.admin);
    assert.equal(metrics.status, 200);
    assert.match(metrics.text, /bulwark_requests_total/);
    for (const key of Object.values(KEYS)) assert.ok(!metrics.text.includes(key), 'a key appears in the metrics');
  });

  it('wrote none of the keys into its logs (the whole suite above, at LOG_LEVEL=trace)', () => {
    for (const instance of [gateway, closedAdmin]) {
      const output = instance.output();
      assert.ok(output.includes('auth configured'), 'the log was captured');
      for (const key of Object.values(KEYS)) assert.ok(!output.includes(key), 'a key appears in the log');
    }
  });
});
