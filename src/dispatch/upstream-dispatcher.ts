import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { BreakerLease, BreakerService } from '../breaker/breaker.service';
import { Clock } from '../common/clock';
import {
  BulwarkError,
  CircuitOpenError,
  NotFoundError,
  RequestTimeoutError,
  UpstreamBadResponseError,
  UpstreamClientError,
  UpstreamError,
  UpstreamTimeoutError,
} from '../common/errors';
import { RandomSource } from '../common/random';
import { retryConfig, serverConfig } from '../config/sections';
import { planRetry } from '../retry/backoff';
import { Sleeper } from '../retry/sleeper';
import { RetryBudgetService } from './retry-budget.service';
import { settleWhenEnded } from './settled-stream';
import { UpstreamClient } from '../upstream/upstream-client';
import { UpstreamOutcomes } from '../upstream/upstream-outcomes';
import { UpstreamRegistry } from '../upstream/upstream-registry';
import type { InferencePayload, ServedAnswer, UpstreamDefinition, UpstreamStreamAnswer } from '../upstream/upstream.types';

export interface DispatchOptions {
  /** Aborts everything: its reason (a typed error) is what the caller gets. */
  signal: AbortSignal;
  deadlineAt: number;
  /** False in the degraded strategy: one attempt per upstream, no backoff. */
  retriesAllowed: boolean;
}

/**
 * Upstream failures count against the breaker and may be retried: connection errors, 429 and 5xx,
 * timeouts, unparseable answers. Client mistakes (the upstream's other 4xx) and cancellations do not.
 */
export function isUpstreamFailure(error: unknown): boolean {
  return error instanceof UpstreamError || error instanceof UpstreamTimeoutError || error instanceof UpstreamBadResponseError;
}

type Attempt = { kind: 'served'; answer: ServedAnswer } | { kind: 'refused'; retryInMs: number } | { kind: 'failed'; error: unknown };

/**
 * Sends one request upstream, keeping callers and upstreams healthy: per upstream+model breakers,
 * retries with full-jitter backoff inside the retry budget and the deadline, weighted choice among
 * upstreams serving the model, then the model's fallbacks. All of it happens before the first byte
 * reaches the caller; afterwards a failure ends the stream. When nothing serves, the caller gets the
 * first upstream failure (the root cause), or `circuit_open` when every candidate was shut off.
 */
@Injectable()
export class UpstreamDispatcher {
  constructor(
    private readonly registry: UpstreamRegistry,
    private readonly client: UpstreamClient,
    private readonly breakers: BreakerService,
    private readonly budget: RetryBudgetService,
    private readonly outcomes: UpstreamOutcomes,
    private readonly clock: Clock,
    private readonly random: RandomSource,
    private readonly sleeper: Sleeper,
    @Inject(retryConfig.KEY) private readonly retry: ConfigType<typeof retryConfig>,
    @Inject(serverConfig.KEY) private readonly server: ConfigType<typeof serverConfig>,
  ) {}

  /**
   * Whether any upstream (of the model or its fallbacks) may take the model now, from the in-memory
   * breakers only. When none can, `retryInMs` is the time to the soonest probe.
   */
  availability(model: string): { available: true } | { available: false; retryInMs: number } {
    let soonest = Number.POSITIVE_INFINITY;
    for (const candidate of this.candidateModels(model)) {
      for (const upstream of this.registry.servingModel(candidate)) {
        const openEnded = isOpenEnded(upstream);
        if (!this.breakers.isOpen(upstream.name, candidate, openEnded)) return { available: true };
        soonest = Math.min(soonest, this.breakers.retryInMs(upstream.name, candidate, openEnded));
      }
    }
    return Number.isFinite(soonest) ? { available: false, retryInMs: soonest } : { available: true };
  }

  async dispatch(payload: InferencePayload, options: DispatchOptions): Promise<ServedAnswer> {
    if (!this.registry.knows(payload.model)) {
      throw new NotFoundError('model_not_found', `The model \`${payload.model}\` does not exist`, 'model');
    }
    const startedAt = this.clock.now();
    this.budget.recordRequest();
    let firstError: unknown;
    let soonestRetryMs = Number.POSITIVE_INFINITY;
    for (const model of this.candidateModels(payload.model)) {
      for (const upstream of this.weightedOrder(this.registry.servingModel(model))) {
        const result = await this.tryUpstream(upstream, model, payload, options, (own) => this.timeUp(options, startedAt, firstError ?? own));
        if (result.kind === 'served') return result.answer;
        if (result.kind === 'refused') soonestRetryMs = Math.min(soonestRetryMs, result.retryInMs);
        else firstError ??= result.error;
      }
    }
    if (firstError !== undefined) throw firstError;
    throw new CircuitOpenError(payload.model, Number.isFinite(soonestRetryMs) ? soonestRetryMs : this.retry.maxDelayMs);
  }

  /**
   * Attempts one upstream with retries. A client error, a cancellation or the deadline ends the whole
   * dispatch; an upstream failure ends this upstream's turn once retries are spent or do not fit.
   * `timeUp` gives what to throw when the request's time ran out (or it was cancelled) between calls.
   */
  private async tryUpstream(
    upstream: UpstreamDefinition,
    model: string,
    payload: InferencePayload,
    options: DispatchOptions,
    timeUp: (lastError: unknown) => unknown,
  ): Promise<Attempt> {
    let lastError: unknown;
    for (let attempt = 0; attempt < this.retry.maxAttempts; attempt++) {
      // Work whose deadline has passed is dropped, never started (and never judged against the upstream).
      const remainingMs = options.deadlineAt - this.clock.now();
      if (options.signal.aborted || remainingMs <= 0) throw timeUp(lastError);
      const answer = await this.breakers.acquire(upstream.name, model, isOpenEnded(upstream));
      if (!answer.allowed) {
        this.outcomes.record({ upstream: upstream.name, model, outcome: 'refused', durationMs: 0 });
        return lastError === undefined ? { kind: 'refused', retryInMs: answer.retryInMs } : { kind: 'failed', error: lastError };
      }
      const lease = answer.lease;
      const started = this.clock.now();
      try {
        const body = model === payload.model ? payload.body : { ...payload.body, model };
        const sent = await this.client.send(
          upstream,
          { ...payload, model, body },
          { signal: options.signal, firstByteTimeoutMs: remainingMs, idleTimeoutMs: this.server.streamIdleTimeoutMs },
        );
        if (sent.kind === 'json') {
          const durationMs = this.clock.now() - started;
          this.breakers.onSuccess(lease, durationMs);
          this.outcomes.record({ upstream: upstream.name, model, outcome: 'success', durationMs });
          return { kind: 'served', answer: { ...sent, upstream: upstream.name, model } };
        }
        return { kind: 'served', answer: { ...this.watchStream(sent, lease, upstream.name, model, started, options.signal), upstream: upstream.name, model } };
      } catch (error) {
        this.settleFailure(lease, upstream.name, model, error, this.clock.now() - started);
        if (!isUpstreamFailure(error)) throw error;
        lastError = error;
        if (attempt + 1 >= this.retry.maxAttempts || !options.retriesAllowed) break;
        const plan = planRetry({
          attempt,
          hintMs: (error as BulwarkError).retryAfterMs,
          remainingMs: options.deadlineAt - this.clock.now(),
          baseMs: this.retry.baseDelayMs,
          maxMs: this.retry.maxDelayMs,
          random: this.random,
        });
        // Includes a Retry-After longer than the time left: no wait, the upstream's error stands.
        if (plan.kind === 'give_up') break;
        if (!this.budget.tryWithdraw()) break;
        this.outcomes.retried({ upstream: upstream.name, reason: retryReason(error) });
        await this.sleeper.sleep(plan.delayMs, options.signal).catch(() => {
          throw timeUp(lastError);
        });
      }
    }
    return { kind: 'failed', error: lastError };
  }

  /** Feeds one failed attempt to the breaker and the outcome listeners. */
  private settleFailure(lease: BreakerLease, upstream: string, model: string, error: unknown, durationMs: number): void {
    if (error instanceof RequestTimeoutError) {
      // The request's deadline cut the call off while the upstream still worked: abandoned work. It
      // judges the upstream only when the deadline was the gateway's own: a client that asks for a tight
      // X-Request-Timeout-Ms must not be able to trip the breaker for everyone.
      if (error.timeoutMs >= this.server.requestTimeoutMs) this.breakers.onFailure(lease, durationMs);
      else this.breakers.release(lease);
      this.outcomes.record({ upstream, model, outcome: 'timeout', durationMs, abandoned: true });
    } else if (isUpstreamFailure(error)) {
      this.breakers.onFailure(lease, durationMs, (error as BulwarkError).retryAfterMs);
      this.outcomes.record({ upstream, model, outcome: error instanceof UpstreamTimeoutError ? 'timeout' : 'failure', durationMs });
    } else {
      this.breakers.release(lease);
      this.outcomes.record({ upstream, model, outcome: error instanceof UpstreamClientError ? 'client_error' : 'cancelled', durationMs });
    }
  }

  /**
   * Wraps a committed stream so that its end, whatever it is, settles the breaker and the figures
   * exactly once. A stream's length measures the answer, not the upstream, so its slowness is judged
   * on the time to the first event.
   */
  private watchStream(answer: UpstreamStreamAnswer, lease: BreakerLease, upstream: string, model: string, started: number, signal: AbortSignal): UpstreamStreamAnswer {
    const timeToFirstTokenMs = this.clock.now() - started;
    const rest = settleWhenEnded(answer.rest, signal, (error) => {
      const durationMs = this.clock.now() - started;
      if (error === undefined) {
        this.breakers.onSuccess(lease, timeToFirstTokenMs);
        this.outcomes.record({ upstream, model, outcome: 'success', durationMs, timeToFirstTokenMs });
      } else {
        this.settleFailure(lease, upstream, model, error, durationMs);
      }
    });
    return { ...answer, rest };
  }

  /**
   * What the caller gets when the request is stopped between two calls: a cancellation as is; the
   * deadline as the first upstream failure when there was one (the root cause: it is why the time ran
   * out), else as a timeout.
   */
  private timeUp(options: DispatchOptions, startedAt: number, upstreamError: unknown): unknown {
    const reason: unknown = options.signal.aborted ? options.signal.reason : undefined;
    if (reason !== undefined && !(reason instanceof RequestTimeoutError)) return reason;
    return upstreamError ?? reason ?? new RequestTimeoutError(Math.max(0, Math.round(options.deadlineAt - startedAt)), 'Bulwark was about to call the upstream');
  }

  /** The model, then its fallbacks, each once. */
  private candidateModels(model: string): string[] {
    return [...new Set([model, ...this.registry.fallbacksFor(model)])];
  }

  /** Weighted random order (Efraimidis–Spirakis): heavier upstreams tend to come first. */
  private weightedOrder(upstreams: UpstreamDefinition[]): UpstreamDefinition[] {
    if (upstreams.length < 2) return upstreams;
    return upstreams
      .map((u) => ({ u, key: u.weight > 0 ? Math.pow(this.random.next(), 1 / u.weight) : -1 }))
      .sort((a, b) => b.key - a.key)
      .map((e) => e.u);
  }
}

/** An upstream configured without a model list takes whatever model name a client sends. */
function isOpenEnded(upstream: UpstreamDefinition): boolean {
  return upstream.models.length === 0;
}

function retryReason(error: unknown): string {
  if (error instanceof UpstreamTimeoutError) return 'timeout';
  if (error instanceof UpstreamBadResponseError) return 'bad_response';
  if (error instanceof UpstreamError) return error.upstreamStatus ? `status_${error.upstreamStatus}` : 'connection';
  return 'other';
}
