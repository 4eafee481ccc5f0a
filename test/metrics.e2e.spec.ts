import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parsePrometheusText, PrometheusSample } from '../src/metrics/prometheus-text';
import { UpstreamSimulator } from '../src/simulator/simulator';
import { GatewayProcess } from './support/gateway-process';
import { chatBody, getJson, postJson, postSse } from './support/http';
import { GatewayStack, startStack } from './support/stack';
import { waitFor } from './support/wait';

/** API.md §6, and two of Node's default process metrics. */
const CONTRACT_METRICS = [
  'bulwark_requests_total',
  'bulwark_request_duration_seconds',
  'bulwark_queue_wait_seconds',
  'bulwark_time_to_first_token_seconds',
  'bulwark_queue_depth',
  'bulwark_inflight_requests',
  'bulwark_rejections_total',
  'bulwark_upstream_requests_total',
  'bulwark_upstream_duration_seconds',
  'bulwark_retries_total',
  'bulwark_breaker_state',
  'bulwark_abandoned_requests',
  'bulwark_health_score',
  'process_cpu_user_seconds_total',
  'nodejs_heap_size_used_bytes',
];

/** Sum of the samples of `name` whose labels include `labels` (0 when there are none). */
function value(samples: PrometheusSample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

describe('metrics: /metrics in Prometheus text format, moving with traffic', () => {
  let stack: GatewayStack;
  let simulator: UpstreamSimulator;
  let gateway: GatewayProcess;

  /** Scrapes /metrics and parses it strictly: every line is a comment, blank or `name{labels} value`. */
  async function scrape(): Promise<{ text: string; samples: PrometheusSample[] }> {
    const res = await getJson(`${gateway.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return { text: res.text, samples: parsePrometheusText(res.text, { strict: true }) };
  }

  before(async () => {
    ({ simulator, gateway } = stack = await startStack({
      upstreams: (url) => ({ upstreams: [{ name: 'sim', url, models: ['sim-small', 'sim-large'] }] }),
      env: { BREAKER_MIN_CALLS: '2', BREAKER_WINDOW_SIZE: '4', RETRY_MAX_ATTEMPTS: '1' },
    }));
  });

  after(() => stack?.stop());

  it('serves every contract metric, with HELP and TYPE, in valid exposition format', async () => {
    const { text, samples } = await scrape();
    for (const name of CONTRACT_METRICS) {
      assert.match(text, new RegExp(`^# TYPE ${name} (counter|gauge|histogram)$`, 'm'), `${name} is declared`);
      assert.match(text, new RegExp(`^# HELP ${name} .+`, 'm'), `${name} has help`);
    }
    assert.equal(value(samples, 'bulwark_queue_depth', { priority: 'high' }), 0);
    assert.ok(value(samples, 'bulwark_health_score') > 0);
  });

  it('counts requests, upstream calls, queue waits and first tokens as they happen, with bounded labels', async () => {
    const before = (await scrape()).samples;
    for (let i = 0; i < 3; i++) assert.equal((await postJson(`${gateway.url}/v1/chat/completions`, chatBody())).status, 200);
    const stream = await postSse(`${gateway.url}/v1/chat/completions`, chatBody({ stream: true }), {}, 10_000);
    assert.equal(stream.events.at(-1), '[DONE]');
    const unknown = await postJson(`${gateway.url}/v1/chat/completions`, chatBody({ model: 'model-name-from-a-client-9f3a' }));
    assert.equal(unknown.status, 404);

    // The stream's sample is recorded when its response closes, just after the client read [DONE].
    const { text, samples } = await waitFor('the stream to be counted', async () => {
      const scraped = await scrape();
      const served = value(scraped.samples, 'bulwark_requests_total', { route: '/v1/chat/completions', status: '200', model: 'sim-small' });
      return served - value(before, 'bulwark_requests_total', { route: '/v1/chat/completions', status: '200', model: 'sim-small' }) >= 4 ? scraped : undefined;
    });
    const delta = (name: string, labels: Record<string, string> = {}) => value(samples, name, labels) - value(before, name, labels);
    assert.equal(delta('bulwark_requests_total', { route: '/v1/chat/completions', status: '200', model: 'sim-small' }), 4);
    assert.equal(delta('bulwark_request_duration_seconds_count', { route: '/v1/chat/completions' }), 5);
    assert.equal(delta('bulwark_requests_total', { route: '/v1/chat/completions', status: '404', model: 'other' }), 1);
    assert.doesNotMatch(text, /model-name-from-a-client/, 'request input never becomes a label');
    assert.equal(delta('bulwark_upstream_requests_total', { upstream: 'sim', model: 'sim-small', outcome: 'success' }), 4);
    assert.equal(delta('bulwark_upstream_duration_seconds_count', { upstream: 'sim', model: 'sim-small', outcome: 'success' }), 4);
    assert.equal(delta('bulwark_time_to_first_token_seconds_count', { upstream: 'sim', model: 'sim-small' }), 1);
    assert.equal(delta('bulwark_queue_wait_seconds_count'), 4);
    assert.equal(delta('bulwark_admissions_total'), 4);
    assert.ok(value(samples, 'bulwark_requests_total', { route: '/metrics', status: '200', model: 'none' }) >= 1);
  });

  it('turns bulwark_breaker_state to 2 when a breaker opens, and counts the refusals that follow', async () => {
    simulator.configure({ modelFaults: { 'sim-large': { fault: 'error', status: 503 } } });
    try {
      for (let i = 0; i < 2; i++) {
        const res = await postJson(`${gateway.url}/v1/chat/completions`, chatBody({ model: 'sim-large' }));
        assert.equal(res.status, 502);
      }
      const { samples } = await waitFor('the sim-large breaker to show open', async () => {
        const scraped = await scrape();
        return value(scraped.samples, 'bulwark_breaker_state', { upstream: 'sim', model: 'sim-large' }) === 2 ? scraped : undefined;
      });
      assert.equal(value(samples, 'bulwark_breaker_state', { upstream: 'sim', model: 'sim-small' }), 0);
      assert.equal(value(samples, 'bulwark_upstream_requests_total', { upstream: 'sim', model: 'sim-large', outcome: 'failure' }), 2);
      assert.ok(value(samples, 'bulwark_requests_total', { route: '/v1/chat/completions', status: '502', model: 'sim-large' }) >= 2);

      const refused = await postJson(`${gateway.url}/v1/chat/completions`, chatBody({ model: 'sim-large' }));
      assert.equal(refused.status, 503);
      const after = (await scrape()).samples;
      assert.equal(value(after, 'bulwark_rejections_total', { reason: 'circuit_open' }), 1);
    } finally {
      simulator.configure({ modelFaults: {} });
    }
  });
});
