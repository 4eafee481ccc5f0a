import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AdaptiveService } from '../adaptive/adaptive.service';
import type { AdmissionService, RejectionReason } from '../adaptive/admission.service';
import { ServiceTimes } from '../adaptive/service-times.service';
import type { BreakerService, BreakerView } from '../breaker/breaker.service';
import { ShutdownService } from '../common/shutdown.service';
import type { QueueFigures } from '../queue/queue-figures.service';
import type { AuthService } from '../auth/auth.service';
import type { UpstreamLeases } from '../upstream/upstream-leases.service';
import { UpstreamOutcomes } from '../upstream/upstream-outcomes';
import { UpstreamRegistry } from '../upstream/upstream-registry';
import { MetricsService } from './metrics.service';
import { parsePrometheusText, PrometheusSample } from './prometheus-text';

function view(upstream: string, model: string, state: BreakerView['state']): BreakerView {
  return { key: `${upstream}:${model}`, upstream, model, state } as BreakerView;
}

function setup(breakers: BreakerView[] = []) {
  const rejection: ((reason: RejectionReason) => void)[] = [];
  const waits: ((ms: number) => void)[] = [];
  const outcomes = new UpstreamOutcomes();
  const figures = {
    snapshot: () => ({ byPriority: { high: 1, normal: 4, low: 0 }, waiting: 5, active: 3, localActive: 2, fresh: true }),
    onQueueWait: (l: (ms: number) => void) => waits.push(l),
    waitingOf: (id: string) => ({ key_3f2a: 4, anonymous: 1, key_unlisted: 9 })[id] ?? 0,
  } as unknown as QueueFigures;
  const admission = { onRejection: (l: (r: RejectionReason) => void) => rejection.push(l), onAdmission: () => undefined } as unknown as AdmissionService;
  const adaptive = {
    abandoned: { totalSinceReset: () => 3, capacityUsed: () => 0.3 },
    healthScore: 0.42,
    strategy: 'degraded',
  } as unknown as AdaptiveService;
  const breakerService = { list: () => breakers } as unknown as BreakerService;
  const registry = new UpstreamRegistry({ upstreams: [{ name: 'primary', baseUrl: 'http://127.0.0.1:1/v1', models: ['sim-small'], weight: 1 }], fallbacks: {} });
  const serviceTimes = new ServiceTimes(outcomes, registry);
  serviceTimes.onApplicationBootstrap();
  const metrics = new MetricsService(figures, outcomes, admission, adaptive, breakerService, new ShutdownService(), registry, serviceTimes, { waitingFor: () => new Map([['sim-small', 2]]) } as unknown as UpstreamLeases, {
    clientIdentities: () => [
      { id: 'key_3f2a', name: 'team-a' },
      { id: 'key_77c1', name: 'batch' },
    ],
  } as unknown as AuthService);
  metrics.onApplicationBootstrap();
  return { metrics, outcomes, reject: (r: RejectionReason) => rejection.forEach((l) => l(r)), wait: (ms: number) => waits.forEach((l) => l(ms)) };
}

async function samples(metrics: MetricsService): Promise<PrometheusSample[]> {
  return parsePrometheusText(await metrics.scrape(), { strict: true });
}

function find(all: PrometheusSample[], name: string, labels: Record<string, string> = {}): PrometheusSample[] {
  return all.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

describe('MetricsService', () => {
  it('shows what each configured key has waiting by its name, never an id or an unknown key', async () => {
    const { metrics } = setup();
    const all = await samples(metrics);
    assert.equal(find(all, 'bulwark_key_waiting', { key_name: 'team-a' })[0].value, 4);
    assert.equal(find(all, 'bulwark_key_waiting', { key_name: 'anonymous' })[0].value, 1);
    assert.equal(find(all, 'bulwark_key_waiting', { key_name: 'batch' }).length, 0, 'nothing waiting: no sample');
    assert.equal(find(all, 'bulwark_key_waiting').length, 2, 'an id that is no configured key is no label');
  });

  it('labels an unknown model `other` and never uses the raw value', async () => {
    const { metrics, outcomes } = setup();
    metrics.recordHttp('/v1/chat/completions', '200', 'sim-small', 0.1);
    metrics.recordHttp('/v1/chat/completions', '404', 'my-secret-model-name', 0.1);
    outcomes.record({ upstream: 'primary', model: 'invented', outcome: 'client_error', durationMs: 5 });
    const text = await metrics.scrape();
    assert.doesNotMatch(text, /my-secret-model-name|invented/);
    const all = parsePrometheusText(text, { strict: true });
    assert.equal(find(all, 'bulwark_requests_total', { model: 'sim-small', status: '200' })[0].value, 1);
    assert.equal(find(all, 'bulwark_requests_total', { model: 'other', status: '404' })[0].value, 1);
    assert.equal(find(all, 'bulwark_upstream_requests_total', { model: 'other', outcome: 'client_error' })[0].value, 1);
  });

  it('learns a model the upstream served, so its later requests keep their name', async () => {
    const { metrics, outcomes } = setup();
    outcomes.record({ upstream: 'primary', model: 'llama-3', outcome: 'success', durationMs: 40, timeToFirstTokenMs: 12 });
    metrics.recordHttp('/v1/chat/completions', '200', 'llama-3', 0.05);
    const all = await samples(metrics);
    assert.equal(find(all, 'bulwark_requests_total', { model: 'llama-3' })[0].value, 1);
    assert.equal(find(all, 'bulwark_time_to_first_token_seconds_count', { upstream: 'primary', model: 'llama-3' })[0].value, 1);
    assert.equal(find(all, 'bulwark_upstream_duration_seconds_sum', { outcome: 'success' })[0].value, 0.04);
  });

  it('counts rejections, retries and queue waits, with bounded retry reasons', async () => {
    const { metrics, outcomes, reject, wait } = setup();
    reject('queue_full');
    reject('queue_full');
    metrics.recordRejection('rate_limited');
    outcomes.retried({ upstream: 'primary', reason: 'status_503' });
    outcomes.retried({ upstream: 'nobody-configured', reason: 'weird reason from somewhere' });
    wait(250);
    const all = await samples(metrics);
    assert.equal(find(all, 'bulwark_rejections_total', { reason: 'queue_full' })[0].value, 2);
    assert.equal(find(all, 'bulwark_rejections_total', { reason: 'rate_limited' })[0].value, 1);
    assert.equal(find(all, 'bulwark_retries_total', { upstream: 'primary', reason: 'status_503' })[0].value, 1);
    assert.equal(find(all, 'bulwark_retries_total', { upstream: 'other', reason: 'other' })[0].value, 1);
    assert.equal(find(all, 'bulwark_queue_wait_seconds_count')[0].value, 1);
  });

  it('reads gauges at scrape time, folding unknown models into the worst breaker state', async () => {
    const { metrics } = setup([view('primary', 'sim-small', 'half_open'), view('primary', 'x1', 'closed'), view('primary', 'x2', 'open')]);
    const all = await samples(metrics);
    assert.equal(find(all, 'bulwark_queue_depth', { priority: 'normal' })[0].value, 4);
    assert.equal(find(all, 'bulwark_inflight_requests')[0].value, 2);
    assert.equal(find(all, 'bulwark_health_score')[0].value, 0.42);
    assert.equal(find(all, 'bulwark_degradation_level')[0].value, 2);
    assert.equal(find(all, 'bulwark_abandoned_requests')[0].value, 3);
    assert.equal(find(all, 'bulwark_breaker_state', { model: 'sim-small' })[0].value, 1);
    const other = find(all, 'bulwark_breaker_state', { model: 'other' });
    assert.equal(other.length, 1);
    assert.equal(other[0].value, 2);
    assert.ok(find(all, 'process_cpu_user_seconds_total').length === 1, 'Node default metrics are there');
  });
});
