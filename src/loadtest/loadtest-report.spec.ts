import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LoadTestOptions } from './loadtest-options';
import { loadTestReport } from './loadtest-report';
import { findings } from './observations';
import { RequestOutcome, StageRecorder, StageResult } from './stage-recorder';

const OPTIONS: LoadTestOptions = {
  url: 'http://gw/v1',
  model: 'sim-small',
  stream: true,
  key: 'secret-key',
  concurrency: [5, 10, 20],
  durationMs: 30_000,
  priority: 'low',
  timeoutMs: 60_000,
  honorRetryAfter: false,
  prompt: 'What is 2+2?',
  maxTokens: 32,
};

/** A stage built through the real recorder from scripted outcomes; `elapsedMs` fixes the rates. */
function stage(concurrency: number, outcomes: RequestOutcome[], elapsedMs = 10_000): StageResult {
  const recorder = new StageRecorder(concurrency);
  for (const outcome of outcomes) recorder.record(outcome);
  return recorder.finish(elapsedMs);
}

const ok = (latencyMs: number, ttftMs?: number): RequestOutcome => ({ status: 200, latencyMs, ttftMs });
const refused = (code: string, retryAfterS?: number): RequestOutcome => ({ status: 503, errorCode: code, latencyMs: 2, retryAfterS });
const times = <T>(n: number, make: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => make(i));

test('StageRecorder counts statuses, error codes, refusals and Retry-After; percentiles from successes only', () => {
  const result = stage(10, [
    ...times(90, (i) => ok(100 + i, 10 + i)),
    ...times(6, () => refused('queue_full', 1)),
    refused('load_shed', 2),
    refused('load_shed'),
    { status: 504, errorCode: 'request_timeout', latencyMs: 30_000 },
    { errorCode: 'ECONNRESET', latencyMs: 5 },
  ]);
  assert.equal(result.requests, 100);
  assert.equal(result.succeeded, 90);
  assert.equal(result.failed, 10);
  assert.equal(result.requestsPerSecond, 10);
  assert.equal(result.successesPerSecond, 9);
  assert.deepEqual(result.statuses, { '200': 90, '503': 8, '504': 1, 'no response': 1 });
  assert.deepEqual(result.errorCodes, { queue_full: 6, load_shed: 2, request_timeout: 1, ECONNRESET: 1 });
  assert.equal(result.refusals, 8);
  assert.deepEqual(result.retryAfter, { '1': 7 - 1, '2': 1, none: 1 });
  assert.equal(result.latency?.count, 90);
  assert.equal(result.latency?.min, 100);
  assert.equal(result.latency?.max, 189);
  assert.equal(result.latency?.p50, 144);
  assert.equal(result.ttft?.count, 90);
  assert.equal(result.latency?.bars.reduce((sum, bar) => sum + bar.count, 0), 90);
});

test('findings: where refusals start, the throughput plateau, and other errors', () => {
  const stages = [
    stage(5, times(50, () => ok(100))),
    stage(10, times(100, () => ok(150))),
    stage(20, [...times(102, () => ok(300)), ...times(40, () => refused('queue_full', 1)), { status: 504, errorCode: 'queue_timeout', latencyMs: 5000 }]),
  ];
  const { observations, recommendations } = findings(stages);
  assert.ok(observations.some((o) => o.startsWith('Refusals start at 20 concurrent: 40 of 143 requests (28%) refused (queue_full × 40), Retry-After 1 s × 40.')), observations.join('\n'));
  assert.ok(observations.some((o) => o.includes('stops growing at about 10.0 req/s from 10 concurrent')), observations.join('\n'));
  assert.ok(observations.some((o) => o === 'Errors other than refusals start at 20 concurrent: queue_timeout × 1.'), observations.join('\n'));
  assert.ok(recommendations.some((r) => r.startsWith('Keep steady client concurrency below 20')));
  assert.ok(recommendations.some((r) => r.includes('REQUEST_TIMEOUT_MS')));
});

test('findings: served throughput collapsing under a refusal flood asks clients to back off', () => {
  const stages = [
    stage(10, times(100, () => ok(100))),
    stage(40, [...times(30, () => ok(900)), ...times(5000, () => refused('load_shed', 1))]),
  ];
  const { observations, recommendations } = findings(stages);
  assert.ok(observations.includes('Served throughput falls from 10.0 req/s (10 concurrent) to 3.0 req/s at 40 concurrent while 500 refusals/s are answered: refusals are cheap, not free.'), observations.join('\n'));
  assert.ok(recommendations.some((r) => r.startsWith('Clients must back off on 429/503')));
});

test('findings without saturation say so and recommend higher levels', () => {
  const { observations, recommendations } = findings([stage(5, times(50, () => ok(100))), stage(10, times(100, () => ok(100)))]);
  assert.ok(observations.includes('No request was refused up to 10 concurrent.'));
  assert.ok(observations.includes('No errors other than refusals.'));
  assert.deepEqual(recommendations, ['No saturation up to 10 concurrent: rerun with higher --concurrency levels to find the limit.']);
});

test('loadTestReport has seed 004 chapters, one section per level with its figures, and hides the key', () => {
  const stages = [stage(5, times(20, () => ok(100, 20))), stage(10, [...times(15, () => ok(200, 40)), ...times(5, () => refused('queue_full', 2))])];
  const report = loadTestReport(OPTIONS, stages, { startedAt: new Date('2026-01-01T00:00:00Z') });
  const chapters = report.split('\n').filter((line) => line.startsWith('#'));
  assert.deepEqual(chapters, ['# Load Test Results', '## Test Configuration', '## Results', '### 5 concurrent', '### 10 concurrent', '## Observations', '## Recommendations']);
  assert.match(report, /- Endpoint: POST http:\/\/gw\/v1\/chat\/completions/);
  assert.match(report, /- Priority: low; API key: set/);
  assert.doesNotMatch(report, /secret-key/);
  assert.match(report, /\| 10 \| 20 \| 2\.00 \| 1\.50 \| 200 ms \| 200 ms \| 200 ms \| 5 \| 0 \|/);
  assert.match(report, /- Requests: 20 \(15 succeeded, 5 failed\)/);
  assert.match(report, /- Status codes: 200 × 15, 503 × 5/);
  assert.match(report, /- Refusals \(429\/503\): 5 \(25%\), Retry-After 2 s × 5/);
  assert.match(report, /- Time to first token: avg 40 ms/);
  assert.match(report, /1\. .*\n2\. /);
});
