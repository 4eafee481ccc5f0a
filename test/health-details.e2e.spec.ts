import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { GatewayProcess } from './support/gateway-process';
import { expectErrorShape, getJson } from './support/http';
import { GatewayStack, startStack } from './support/stack';

const KEYS = { client: 'sk-e2e-details-client-2b7f', admin: 'sk-e2e-details-admin-8c1e' };
const AS = {
  nobody: {},
  client: { authorization: `Bearer ${KEYS.client}` },
  admin: { 'x-api-key': KEYS.admin },
};

describe('health details, dashboard figures and metrics behind the admin key', () => {
  let stack: GatewayStack;
  let gateway: GatewayProcess;

  before(async () => {
    ({ gateway } = stack = await startStack({
      simulator: { latencyMs: 5 },
      env: { API_KEYS: `${KEYS.client}:normal`, ADMIN_API_KEY: KEYS.admin, HEALTH_DETAILS: 'admin', METRICS_AUTH: 'admin' },
    }));
  });

  after(() => stack?.stop());

  it('shows only the status of /health and /health/ready to anyone but the admin', async () => {
    for (const path of ['/health', '/health/ready']) {
      for (const who of ['nobody', 'client'] as const) {
        const res = await getJson(`${gateway.url}${path}`, AS[who]);
        assert.equal(res.status, 200, `${path} as ${who}`);
        assert.deepEqual(res.json, { status: 'ok' }, `${path} as ${who}`);
      }
      const admin = await getJson(`${gateway.url}${path}`, AS.admin);
      assert.equal(admin.status, 200);
      assert.ok(admin.json.details?.redis, `${path} as admin: ${admin.text}`);
    }
    const full = await getJson(`${gateway.url}/health`, AS.admin);
    assert.equal(full.json.graceful_degradation.current_strategy, 'healthy');
  });

  it('keeps the dashboard figures for the admin, but serves the page itself to anyone', async () => {
    assert.equal((await getJson(`${gateway.url}/dashboard/data`)).status, 401);
    const client = await getJson(`${gateway.url}/dashboard/data`, AS.client);
    assert.equal(client.status, 403);
    assert.equal(expectErrorShape(client.json).type, 'permission_error');
    const admin = await getJson(`${gateway.url}/dashboard/data`, AS.admin);
    assert.equal(admin.status, 200);
    assert.ok(Array.isArray(admin.json.history));
    const refused = await fetch(`${gateway.url}/dashboard/stream`, { signal: AbortSignal.timeout(5000) });
    assert.equal(refused.status, 401);
    await refused.body?.cancel();
    const page = await fetch(`${gateway.url}/dashboard`, { signal: AbortSignal.timeout(5000) });
    assert.equal(page.status, 200);
    assert.match(await page.text(), /admin key/i);
  });

  it('answers /metrics to the admin key only with METRICS_AUTH=admin', async () => {
    const none = await getJson(`${gateway.url}/metrics`);
    assert.equal(none.status, 401);
    assert.equal(expectErrorShape(none.json).type, 'authentication_error');
    assert.equal((await getJson(`${gateway.url}/metrics`, AS.client)).status, 403);
    const admin = await getJson(`${gateway.url}/metrics`, AS.admin);
    assert.equal(admin.status, 200);
    assert.match(admin.text, /^bulwark_health_score /m);
    assert.doesNotMatch(admin.text, new RegExp(`${KEYS.admin}|${KEYS.client}`), 'no key in any label');
  });
});
