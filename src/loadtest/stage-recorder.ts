import { build, Histogram } from 'hdr-histogram-js';

/** How one request ended, as the client saw it. */
export interface RequestOutcome {
  /** HTTP status; undefined when no response arrived (connection error, client timeout). */
  status?: number;
  /** Contract error code (`queue_full`, …), a stream's error event code, or a client-side cause; undefined on success. */
  errorCode?: string;
  /** Time until the whole answer was read. */
  latencyMs: number;
  /** Streams: time until the first content token. */
  ttftMs?: number;
  /** The `Retry-After` header of a 429 or 503, in seconds. */
  retryAfterS?: number;
}

/** One bar of a text histogram: the values in [fromMs, toMs]. */
export interface HistogramBar {
  fromMs: number;
  toMs: number;
  count: number;
}

/** Percentiles of one distribution (milliseconds), and its shape for a text histogram. */
export interface LatencySummary {
  count: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  max: number;
  bars: HistogramBar[];
}

/** Everything a stage measured; plain data, ready for the console summary and the report. */
export interface StageResult {
  concurrency: number;
  /** From the first request sent to the last answer read. */
  elapsedMs: number;
  requests: number;
  succeeded: number;
  failed: number;
  /** Completed requests per second, whatever their outcome. */
  requestsPerSecond: number;
  /** Successful requests per second. */
  successesPerSecond: number;
  /** Of successful requests only: refusals answer at once and would hide the served requests' latency. */
  latency?: LatencySummary;
  /** Streams only, successful requests. */
  ttft?: LatencySummary;
  /** Count per status; `no response` when none arrived. */
  statuses: Record<string, number>;
  /** Count per error code. */
  errorCodes: Record<string, number>;
  /** 429 and 503 answers: the gateway (or a rate limit) refused the request. */
  refusals: number;
  /** Count of refusals per `Retry-After` value (seconds; `none` when absent). */
  retryAfter: Record<string, number>;
}

const BAR_COUNT = 10;

/** Collects a stage's outcomes into HDR histograms (hdr-histogram-js) and counters. */
export class StageRecorder {
  private readonly latency: Histogram = newHistogram();
  private readonly ttft: Histogram = newHistogram();
  private readonly statuses = new Map<string, number>();
  private readonly errorCodes = new Map<string, number>();
  private readonly retryAfter = new Map<string, number>();
  private requests = 0;
  private succeeded = 0;
  private refusals = 0;

  constructor(readonly concurrency: number) {}

  get completed(): number {
    return this.requests;
  }

  get errors(): number {
    return this.requests - this.succeeded;
  }

  record(outcome: RequestOutcome): void {
    this.requests++;
    increment(this.statuses, outcome.status === undefined ? 'no response' : String(outcome.status));
    const ok = outcome.errorCode === undefined && outcome.status !== undefined && outcome.status >= 200 && outcome.status < 300;
    if (ok) {
      this.succeeded++;
      this.latency.recordValue(Math.max(1, Math.round(outcome.latencyMs)));
      if (outcome.ttftMs !== undefined) this.ttft.recordValue(Math.max(1, Math.round(outcome.ttftMs)));
    } else {
      increment(this.errorCodes, outcome.errorCode ?? `http_${outcome.status ?? 'error'}`);
    }
    if (outcome.status === 429 || outcome.status === 503) {
      this.refusals++;
      increment(this.retryAfter, outcome.retryAfterS === undefined ? 'none' : String(outcome.retryAfterS));
    }
  }

  /** The stage's figures; `elapsedMs` is the stage's wall time. Frees the histograms. */
  finish(elapsedMs: number): StageResult {
    const seconds = Math.max(elapsedMs, 1) / 1000;
    const result: StageResult = {
      concurrency: this.concurrency,
      elapsedMs,
      requests: this.requests,
      succeeded: this.succeeded,
      failed: this.requests - this.succeeded,
      requestsPerSecond: this.requests / seconds,
      successesPerSecond: this.succeeded / seconds,
      latency: summarize(this.latency),
      ttft: summarize(this.ttft),
      statuses: Object.fromEntries(this.statuses),
      errorCodes: Object.fromEntries(this.errorCodes),
      refusals: this.refusals,
      retryAfter: Object.fromEntries(this.retryAfter),
    };
    this.latency.destroy();
    this.ttft.destroy();
    return result;
  }
}

function newHistogram(): Histogram {
  // 1 ms to 1 h at 3 significant digits; plain JS (no WebAssembly start-up).
  return build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000, numberOfSignificantValueDigits: 3, useWebAssembly: false });
}

function increment(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

function summarize(histogram: Histogram): LatencySummary | undefined {
  if (histogram.totalCount === 0) return undefined;
  return {
    count: histogram.totalCount,
    min: histogram.minNonZeroValue,
    mean: histogram.mean,
    p50: histogram.getValueAtPercentile(50),
    p90: histogram.getValueAtPercentile(90),
    p95: histogram.getValueAtPercentile(95),
    p99: histogram.getValueAtPercentile(99),
    max: histogram.maxValue,
    bars: bars(histogram),
  };
}

/** Ten equal-width bars from min to max, filled from the histogram's recorded values. */
function bars(histogram: Histogram): HistogramBar[] {
  const min = histogram.minNonZeroValue;
  const max = histogram.maxValue;
  const width = Math.max(1, Math.ceil((max - min + 1) / BAR_COUNT));
  const count = Math.min(BAR_COUNT, Math.ceil((max - min + 1) / width));
  const result: HistogramBar[] = Array.from({ length: count }, (_, i) => ({ fromMs: min + i * width, toMs: min + (i + 1) * width - 1, count: 0 }));
  const iterator = (histogram as unknown as { recordedValuesIterator?: RecordedValues }).recordedValuesIterator;
  if (!iterator) return result;
  iterator.reset();
  while (iterator.hasNext()) {
    const step = iterator.next();
    const value = Math.min(max, step.valueIteratedTo);
    const index = Math.min(count - 1, Math.max(0, Math.floor((value - min) / width)));
    result[index].count += step.countAtValueIteratedTo;
  }
  return result;
}

/** hdr-histogram-js's JsHistogram iterator, which its `Histogram` interface does not list. */
interface RecordedValues {
  reset(): void;
  hasNext(): boolean;
  next(): { valueIteratedTo: number; countAtValueIteratedTo: number };
}
