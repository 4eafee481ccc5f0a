import { formatCounts, formatMs, otherErrors, share } from './figures-format';
import type { StageResult } from './stage-recorder';

/** What the figures say, and what to do about it: the report's last two chapters. */
export interface Findings {
  observations: string[];
  recommendations: string[];
}

/** Successful throughput growing less than this between two levels counts as a plateau. */
const PLATEAU_GAIN = 1.1;
/** Served throughput below this share of its peak, at a level with refusals, counts as a collapse. */
const COLLAPSE_RATIO = 0.75;

/** Reads the stages (in the order they ran, concurrency rising) for where the gateway saturates. */
export function findings(stages: StageResult[]): Findings {
  const observations: string[] = [];
  const recommendations: string[] = [];
  if (stages.length === 0) return { observations, recommendations };

  const served = stages.filter((s) => s.latency);
  if (served.length >= 2) {
    const first = served[0];
    const last = served[served.length - 1];
    const factor = last.latency!.p95 / Math.max(1, first.latency!.p95);
    observations.push(
      `p95 latency of successful requests goes from ${formatMs(first.latency!.p95)} at ${first.concurrency} concurrent to ` +
        `${formatMs(last.latency!.p95)} at ${last.concurrency} concurrent (×${factor.toFixed(1)}).`,
    );
  }
  const streamed = stages.filter((s) => s.ttft);
  if (streamed.length >= 2) {
    const first = streamed[0];
    const last = streamed[streamed.length - 1];
    observations.push(`p95 time to first token goes from ${formatMs(first.ttft!.p95)} to ${formatMs(last.ttft!.p95)} over the same range.`);
  }

  const plateau = plateauStage(stages);
  if (plateau) {
    observations.push(
      `Successful throughput stops growing at about ${plateau.successesPerSecond.toFixed(1)} req/s from ${plateau.concurrency} concurrent: ` +
        'more clients add waiting (or refusals), not throughput.',
    );
    recommendations.push(
      `Concurrency above ${plateau.concurrency} buys no throughput: size MAX_CONCURRENT_REQUESTS to what the upstream serves at once, ` +
        'and add upstream capacity (or instances of it) rather than clients.',
    );
  }

  const peak = stages.reduce((a, b) => (b.successesPerSecond > a.successesPerSecond ? b : a));
  const collapsed = stages.find((s) => s.concurrency > peak.concurrency && s.refusals > 0 && s.successesPerSecond < peak.successesPerSecond * COLLAPSE_RATIO);
  if (collapsed) {
    observations.push(
      `Served throughput falls from ${peak.successesPerSecond.toFixed(1)} req/s (${peak.concurrency} concurrent) to ${collapsed.successesPerSecond.toFixed(1)} req/s ` +
        `at ${collapsed.concurrency} concurrent while ${(collapsed.refusals / Math.max(0.001, collapsed.elapsedMs / 1000)).toFixed(0)} refusals/s are answered: refusals are cheap, not free.`,
    );
    recommendations.push('Clients must back off on 429/503 (wait the Retry-After): clients that retry at once take capacity from the requests being served.');
  }

  const refused = stages.find((s) => s.refusals > 0);
  if (refused) {
    const worst = stages.reduce((a, b) => (b.refusals / Math.max(1, b.requests) > a.refusals / Math.max(1, a.requests) ? b : a));
    const codes = Object.fromEntries(Object.entries(refused.errorCodes).filter(([code]) => REFUSAL_CODES.has(code)));
    observations.push(
      `Refusals start at ${refused.concurrency} concurrent: ${refused.refusals} of ${refused.requests} requests (${share(refused.refusals, refused)}) ` +
        `refused (${formatCounts(codes)}), Retry-After ${formatCounts(refused.retryAfter, ' s')}.` +
        (worst !== refused ? ` At ${worst.concurrency} concurrent: ${worst.refusals} (${share(worst.refusals, worst)}).` : ''),
    );
    recommendations.push(
      `Keep steady client concurrency below ${refused.concurrency}, or raise MAX_QUEUE_SIZE (waiting room) if the extra queue wait is acceptable; ` +
        'clients must honour Retry-After (the OpenAI SDKs do).',
    );
  } else {
    observations.push(`No request was refused up to ${stages[stages.length - 1].concurrency} concurrent.`);
  }

  const failing = stages.find((s) => otherErrors(s) > 0);
  if (failing) {
    const codes = Object.fromEntries(Object.entries(failing.errorCodes).filter(([code]) => !REFUSAL_CODES.has(code)));
    observations.push(`Errors other than refusals start at ${failing.concurrency} concurrent: ${formatCounts(codes)}.`);
    if (Object.keys(codes).some((code) => TIMEOUT_CODES.has(code))) {
      recommendations.push('Requests time out under load: lower the concurrency, or raise REQUEST_TIMEOUT_MS (and the client timeout) if waiting longer is acceptable.');
    } else {
      recommendations.push('Check the upstream and the gateway logs for the failures above: they are not load shedding.');
    }
  } else {
    observations.push('No errors other than refusals.');
  }

  if (!plateau && !refused && !failing) {
    recommendations.push(`No saturation up to ${stages[stages.length - 1].concurrency} concurrent: rerun with higher --concurrency levels to find the limit.`);
  }
  return { observations, recommendations };
}

/** Codes of a request the gateway (or a rate limit) turned away before any upstream work. */
const REFUSAL_CODES = new Set(['queue_full', 'load_shed', 'deadline_unreachable', 'shutting_down', 'rate_limited', 'key_queue_share_exceeded', 'circuit_open', 'upstream_rate_limited']);
const TIMEOUT_CODES = new Set(['queue_timeout', 'request_timeout', 'client_timeout']);

/** The first level after which successful throughput grows by less than {@link PLATEAU_GAIN}. */
function plateauStage(stages: StageResult[]): StageResult | undefined {
  for (let i = 0; i + 1 < stages.length; i++) {
    const here = stages[i];
    const next = stages[i + 1];
    if (next.concurrency > here.concurrency && here.successesPerSecond > 0 && next.successesPerSecond < here.successesPerSecond * PLATEAU_GAIN) return here;
  }
  return undefined;
}
