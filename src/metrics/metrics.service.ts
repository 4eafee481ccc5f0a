import { Injectable, OnApplicationBootstrap } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { AdaptiveService } from '../adaptive/adaptive.service';
import { AdmissionService } from '../adaptive/admission.service';
import { ServiceTimes } from '../adaptive/service-times.service';
import { STRATEGIES } from '../adaptive/health-score';
import { BreakerService } from '../breaker/breaker.service';
import type { BreakerState } from '../breaker/circuit-breaker';
import { ShutdownService } from '../common/shutdown.service';
import { QueueFigures } from '../queue/queue-figures.service';
import { AuthService } from '../auth/auth.service';
import { UpstreamLeases } from '../upstream/upstream-leases.service';
import { UpstreamOutcome, UpstreamOutcomes } from '../upstream/upstream-outcomes';
import { UpstreamRegistry } from '../upstream/upstream-registry';
import { ModelLabels, OTHER_MODEL } from './metric-labels';

const BREAKER_STATE_VALUE: Record<BreakerState, number> = { closed: 0, half_open: 1, open: 2 };
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
/** What became of one upstream-bound request of a client key. */
export type KeyOutcome = 'served' | 'accepted' | 'refused' | 'client_error' | 'failed';

/** Bound of each cache of label children (the label sets themselves are bounded far below it). */
const MAX_CACHED_SERIES = 10_000;

const RETRY_REASON = /^(timeout|bad_response|connection|other|status_\d{3})$/;

/**
 * Bulwark's Prometheus metrics (API.md §6): one registry, owned here, with every label value bounded.
 * Models pass through {@link ModelLabels}, upstreams must be configured ones, routes are route patterns.
 * Counters and histograms are fed by events; gauges are read from the live services at scrape time.
 */
@Injectable()
export class MetricsService implements OnApplicationBootstrap {
  readonly registry = new Registry();
  readonly models: ModelLabels;
  private readonly upstreamNames: Set<string>;

  /**
   * The children of the per-request series by their label values: prom-client hashes a label object on
   * every call, a child does it once.
   */
  private readonly httpSeries = new Map<string, { requests: Counter.Internal; duration: Histogram.Internal<'route'> }>();
  private readonly keySeries = new Map<string, Counter.Internal>();
  private readonly requests = new Counter({
    name: 'bulwark_requests_total',
    help: 'HTTP requests answered, by route pattern, status and model.',
    labelNames: ['route', 'status', 'model'] as const,
    registers: [this.registry],
  });
  private readonly requestDuration = new Histogram({
    name: 'bulwark_request_duration_seconds',
    help: 'Time from the request to the end of its response (streams included), by route pattern.',
    labelNames: ['route'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  private readonly queueWait = new Histogram({
    name: 'bulwark_queue_wait_seconds',
    help: 'Time jobs spent queued before a worker of this instance started them.',
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  private readonly timeToFirstToken = new Histogram({
    name: 'bulwark_time_to_first_token_seconds',
    help: 'Time from sending a streamed request upstream to its first event.',
    labelNames: ['upstream', 'model'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  private readonly rejections = new Counter({
    name: 'bulwark_rejections_total',
    help: 'Requests refused before any upstream work, by reason.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  private readonly admissions = new Counter({
    name: 'bulwark_admissions_total',
    help: 'Upstream-bound requests admitted by admission control, by effective priority.',
    labelNames: ['priority'] as const,
    registers: [this.registry],
  });
  private readonly upstreamRequests = new Counter({
    name: 'bulwark_upstream_requests_total',
    help: 'Upstream attempts by outcome (success, failure, timeout, client_error, cancelled, refused by the breaker).',
    labelNames: ['upstream', 'model', 'outcome'] as const,
    registers: [this.registry],
  });
  private readonly upstreamDuration = new Histogram({
    name: 'bulwark_upstream_duration_seconds',
    help: 'Duration of upstream attempts (whole stream for streams), by outcome.',
    labelNames: ['upstream', 'model', 'outcome'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  private readonly keyRequests = new Counter({
    name: 'bulwark_key_requests_total',
    help: 'Upstream-bound requests per client key, by its configured name (never the key) and outcome (served, accepted as a job, refused, client_error, failed).',
    labelNames: ['key_name', 'outcome'] as const,
    registers: [this.registry],
  });
  private readonly estimateRatio = new Histogram({
    name: 'bulwark_service_time_estimate_ratio',
    help: 'Actual over estimated service time of upstream calls (1 = exact), from the per-model rates that size-aware admission uses.',
    labelNames: ['model'] as const,
    buckets: [0.25, 0.5, 0.67, 0.8, 0.9, 1, 1.1, 1.25, 1.5, 2, 4],
    registers: [this.registry],
  });
  private readonly routed = new Counter({
    name: 'bulwark_routed_total',
    help: 'Upstream attempts sent, by the upstream the router chose and the model: the routing share.',
    labelNames: ['upstream', 'model'] as const,
    registers: [this.registry],
  });
  private readonly retries = new Counter({
    name: 'bulwark_retries_total',
    help: 'Retries of upstream attempts, by upstream and the reason of the failed attempt.',
    labelNames: ['upstream', 'reason'] as const,
    registers: [this.registry],
  });

  private readonly hedges = new Counter({
    name: 'bulwark_hedges_total',
    help: 'Hedged attempts, by model and outcome: won (answered first), lost (the first attempt did), skipped (budget, deadline or no other upstream).',
    labelNames: ['model', 'outcome'] as const,
    registers: [this.registry],
  });

  private readonly fallbacks = new Counter({
    name: 'bulwark_fallbacks_total',
    help: 'Answers served by a fallback model instead of the model asked for, by the model asked for and the one that answered.',
    labelNames: ['from', 'to'] as const,
    registers: [this.registry],
  });

  constructor(
    private readonly figures: QueueFigures,
    private readonly outcomes: UpstreamOutcomes,
    private readonly admission: AdmissionService,
    private readonly adaptive: AdaptiveService,
    private readonly breakers: BreakerService,
    private readonly shutdown: ShutdownService,
    registry: UpstreamRegistry,
    private readonly serviceTimes: ServiceTimes,
    private readonly leases: UpstreamLeases,
    private readonly auth: AuthService,
  ) {
    this.models = new ModelLabels(registry.configuredModels());
    this.upstreamNames = new Set(registry.all().map((u) => u.name));
    collectDefaultMetrics({ register: this.registry });
    this.registerGauges();
  }

  onApplicationBootstrap(): void {
    this.figures.onQueueWait((ms) => this.queueWait.observe(ms / 1000));
    this.admission.onRejection((reason) => this.rejections.inc({ reason }));
    this.admission.onAdmission((priority) => this.admissions.inc({ priority }));
    this.outcomes.onOutcome((event) => this.recordOutcome(event));
    this.outcomes.onFallback((event) => this.fallbacks.inc({ from: this.models.label(event.from), to: this.models.label(event.to) }));
    this.outcomes.onHedge((event) => this.hedges.inc({ model: this.models.label(event.model), outcome: event.outcome }));
    this.outcomes.onRouted((event) => this.routed.inc({ upstream: this.upstream(event.upstream), model: this.models.label(event.model) }));
    this.serviceTimes.onEstimateCheck(({ model, actualMs, estimatedMs }) => {
      if (estimatedMs > 0) this.estimateRatio.observe({ model: this.models.label(model) }, actualMs / estimatedMs);
    });
    this.outcomes.onRetry((event) =>
      this.retries.inc({ upstream: this.upstream(event.upstream), reason: RETRY_REASON.test(event.reason) ? event.reason : 'other' }),
    );
  }

  /** Records one finished HTTP exchange; `route` and `status` must already be bounded labels. */
  recordHttp(route: string, status: string, model: unknown, durationSeconds: number): void {
    const modelLabel = this.models.label(model);
    const key = `${route}\n${status}\n${modelLabel}`;
    let series = this.httpSeries.get(key);
    if (!series) {
      series = { requests: this.requests.labels({ route, status, model: modelLabel }), duration: this.requestDuration.labels({ route }) };
      // Every label is bounded, so is this map; the cap only guards against a mistake.
      if (this.httpSeries.size < MAX_CACHED_SERIES) this.httpSeries.set(key, series);
    }
    series.requests.inc();
    series.duration.observe(durationSeconds);
  }

  /**
   * Counts one upstream-bound request of a client key. `keyName` is a configured name (or a key's
   * hash-prefix id, `anonymous`, `admin`): a bounded set fixed at start-up, never the key itself.
   */
  recordKeyRequest(keyName: string, outcome: KeyOutcome): void {
    const key = `${keyName}\n${outcome}`;
    let series = this.keySeries.get(key);
    if (!series) {
      series = this.keyRequests.labels({ key_name: keyName, outcome });
      if (this.keySeries.size < MAX_CACHED_SERIES) this.keySeries.set(key, series);
    }
    series.inc();
  }

  /** Counts a refusal made outside admission control (rate limit, authentication). */
  recordRejection(reason: string): void {
    this.rejections.inc({ reason });
  }

  /** The Prometheus text exposition of every metric. */
  scrape(): Promise<string> {
    return this.registry.metrics();
  }

  /** The exposition format's content type (`text/plain; version=0.0.4`). */
  get contentType(): string {
    return this.registry.contentType;
  }

  private recordOutcome(event: UpstreamOutcome): void {
    if (event.outcome === 'success') this.models.learn(event.model);
    const labels = { upstream: this.upstream(event.upstream), model: this.models.label(event.model), outcome: event.outcome };
    this.upstreamRequests.inc(labels);
    // A breaker refusal made no call: it has no duration worth a histogram sample.
    if (event.outcome !== 'refused') this.upstreamDuration.observe(labels, event.durationMs / 1000);
    if (event.timeToFirstTokenMs !== undefined) {
      this.timeToFirstToken.observe({ upstream: labels.upstream, model: labels.model }, event.timeToFirstTokenMs / 1000);
    }
  }

  private upstream(name: string): string {
    return this.upstreamNames.has(name) ? name : OTHER_MODEL;
  }

  /** Gauges read at scrape time from the live figures (no timers, never stale). */
  private registerGauges(): void {
    const registers = [this.registry];
    const figures = this.figures;
    const adaptive = this.adaptive;
    const breakers = this.breakers;
    const shutdown = this.shutdown;
    const models = this.models;
    const upstream = (name: string) => this.upstream(name);
    const leases = this.leases;
    new Gauge({
      name: 'bulwark_queue_depth',
      help: 'Requests waiting in the shared queue, by priority (the same figure on every instance).',
      labelNames: ['priority'] as const,
      registers,
      collect() {
        const { byPriority } = figures.snapshot();
        for (const priority of ['high', 'normal', 'low'] as const) this.set({ priority }, byPriority[priority]);
      },
    });
    const auth = this.auth;
    new Gauge({
      name: 'bulwark_key_waiting',
      help: 'Requests waiting in the shared queue per client key, by its configured name (never the key); fair share orders them within a priority.',
      labelNames: ['key_name'] as const,
      registers,
      collect() {
        this.reset();
        // Only configured keys (and anonymous) are labels: a bounded set fixed at start-up.
        for (const client of [...auth.clientIdentities(), { id: 'anonymous', name: 'anonymous' }]) {
          const waiting = figures.waitingOf(client.id);
          if (waiting > 0) this.set({ key_name: client.name }, waiting);
        }
      },
    });
    new Gauge({
      name: 'bulwark_inflight_requests',
      help: 'Upstream-bound requests being worked on by this instance.',
      registers,
      collect() {
        this.set(figures.snapshot().localActive);
      },
    });
    new Gauge({
      name: 'bulwark_http_inflight_requests',
      help: 'HTTP requests of any kind open on this instance (streams included).',
      registers,
      collect() {
        this.set(shutdown.inflightRequests);
      },
    });
    new Gauge({
      name: 'bulwark_breaker_state',
      help: 'Circuit breaker state per upstream and model: 0 closed, 1 half-open, 2 open.',
      labelNames: ['upstream', 'model'] as const,
      registers,
      collect() {
        // Several unknown models fold into `other`: the worst state among them is reported.
        const worst = new Map<string, { upstream: string; model: string; value: number }>();
        for (const view of breakers.list()) {
          const labels = { upstream: upstream(view.upstream), model: models.label(view.model) };
          const key = `${labels.upstream}\u0000${labels.model}`;
          const value = BREAKER_STATE_VALUE[view.state];
          if ((worst.get(key)?.value ?? -1) < value) worst.set(key, { ...labels, value });
        }
        this.reset();
        for (const { value, ...labels } of worst.values()) this.set(labels, value);
      },
    });
    new Gauge({
      name: 'bulwark_upstream_waiting',
      help: "Requests on this instance waiting for a permit because every upstream of their model is at its maxConcurrency, by model.",
      labelNames: ['model'] as const,
      registers,
      collect() {
        this.reset();
        const byLabel = new Map<string, number>();
        for (const [model, count] of leases.waitingFor()) byLabel.set(models.label(model), (byLabel.get(models.label(model)) ?? 0) + count);
        for (const [model, count] of byLabel) this.set({ model }, count);
      },
    });
    new Gauge({
      name: 'bulwark_abandoned_requests',
      help: 'Upstream calls abandoned (cut off by their deadline while the upstream still worked) since the last scheduled reset.',
      registers,
      collect() {
        this.set(adaptive.abandoned.totalSinceReset());
      },
    });
    new Gauge({
      name: 'bulwark_abandoned_capacity_ratio',
      help: 'Decayed abandoned count over MAX_ABANDONED_REQUESTS; graduated rejection starts at ABANDONED_REJECTION_THRESHOLD.',
      registers,
      collect() {
        this.set(adaptive.abandoned.capacityUsed());
      },
    });
    new Gauge({
      name: 'bulwark_health_score',
      help: 'Adaptive health score: 1 healthy, 0 nothing works.',
      registers,
      collect() {
        this.set(adaptive.healthScore);
      },
    });
    new Gauge({
      name: 'bulwark_degradation_level',
      help: 'Current strategy as a number: 0 healthy, 1 stressed, 2 degraded, 3 critical (X-Degradation-Level).',
      registers,
      collect() {
        this.set(STRATEGIES.indexOf(adaptive.strategy));
      },
    });
  }
}
