import { Inject, Injectable, Logger } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { BreakerService } from '../breaker/breaker.service';
import { Clock } from '../common/clock';
import {
  BulwarkError,
  CircuitOpenError,
  NotFoundError,
  QueueTimeoutError,
  RequestTimeoutError,
  UpstreamBadResponseError,
  UpstreamError,
  UpstreamRateLimitedError,
  UpstreamTimeoutError,
} from '../common/errors';
import { RandomSource } from '../common/random';
import { retryConfig } from '../config/sections';
import { planRetry } from '../retry/backoff';
import { Sleeper } from '../retry/sleeper';
import { UpstreamLeases, UpstreamPermit } from '../upstream/upstream-leases.service';
import { UpstreamOutcomes } from '../upstream/upstream-outcomes';
import { UpstreamRegistry } from '../upstream/upstream-registry';
import type { InferencePayload, ServedAnswer, UpstreamDefinition } from '../upstream/upstream.types';
import { HedgedAttempt, MIN_ATTEMPT_MS } from './hedged-attempt';
import { RetryBudgetService } from './retry-budget.service';
import { RequestRoute, RoutePlanner } from './route-planner';
import { isUpstreamFailure } from './upstream-attempt';

export { isUpstreamFailure };

export interface DispatchOptions {
  /** Aborts everything: its reason (a typed error) is what the caller gets. */
  signal: AbortSignal;
  deadlineAt: number;
  /** False in the degraded strategy: one attempt per upstream, no backoff. */
  retriesAllowed: boolean;
  /** Called before each upstream call (retries, hedges and fallbacks included). */
  onAttempt?: () => void;
}

type Attempt =
  | { kind: 'served'; answer: ServedAnswer }
  | { kind: 'refused'; retryInMs: number }
  | { kind: 'failed'; error: unknown }
  /** The upstream is at its maxConcurrency on every instance together. */
  | { kind: 'full' };

/**
 * Sends one request upstream as a pipeline of steps, keeping callers and upstreams healthy: route (the
 * {@link RoutePlanner}: least loaded, weighted, or prefix-aware) → per upstream+model breaker → each
 * upstream's `maxConcurrency` as a bulkhead permit across instances (when every upstream of the model is
 * at its cap, the request waits for a permit, within its deadline) → the attempt ({@link HedgedAttempt},
 * hedged where configured) → retries with full-jitter backoff inside the retry budget and the deadline
 * → the model's fallbacks. All of it happens before the first byte reaches the caller; afterwards a
 * failure ends the stream. When nothing serves, the caller gets the first upstream failure (the root
 * cause), or `circuit_open` when every candidate was shut off.
 */
@Injectable()
export class UpstreamDispatcher {
  private readonly logger = new Logger(UpstreamDispatcher.name);

  constructor(
    private readonly registry: UpstreamRegistry,
    private readonly router: RoutePlanner,
    private readonly breakers: BreakerService,
    private readonly leases: UpstreamLeases,
    private readonly attempt: HedgedAttempt,
    private readonly budget: RetryBudgetService,
    private readonly outcomes: UpstreamOutcomes,
    private readonly clock: Clock,
    private readonly random: RandomSource,
    private readonly sleeper: Sleeper,
    @Inject(retryConfig.KEY) private readonly retry: ConfigType<typeof retryConfig>,
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

  /**
   * Serves the request from the model's upstreams or its fallbacks. An upstream that kept answering 429
   * through the retries becomes `upstream_rate_limited`, so that the caller backs off.
   */
  async dispatch(payload: InferencePayload, options: DispatchOptions): Promise<ServedAnswer> {
    const route = this.router.forRequest(payload);
    const answer = await this.serve(payload, options, route)
      .catch((error: unknown) => {
        throw this.rateLimited(error, options) ?? error;
      })
      .finally(() => route.done());
    if (answer.model !== payload.model) {
      this.outcomes.fellBack({ from: payload.model, to: answer.model, upstream: answer.upstream });
      this.logger.warn({ from: payload.model, to: answer.model, upstream: answer.upstream }, `fallback: model ${answer.model} answered for ${payload.model}`);
    }
    return answer;
  }

  private async serve(payload: InferencePayload, options: DispatchOptions, route: RequestRoute): Promise<ServedAnswer> {
    if (!this.registry.knows(payload.model)) {
      throw new NotFoundError('model_not_found', `The model \`${payload.model}\` does not exist`, 'model');
    }
    const startedAt = this.clock.now();
    this.budget.recordRequest();
    this.attempt.recordCall();
    let attempted = false;
    const counted: DispatchOptions = {
      ...options,
      onAttempt: () => {
        attempted = true;
        options.onAttempt?.();
      },
    };
    let firstError: unknown;
    let soonestRetryMs = Number.POSITIVE_INFINITY;
    for (const model of this.candidateModels(payload.model)) {
      let pending = this.registry.servingModel(model);
      while (pending.length > 0) {
        const full: UpstreamDefinition[] = [];
        for (const upstream of await route.order(model, pending)) {
          const result = await this.tryUpstream(upstream, model, payload, counted, route, (own) => this.timeUp(options, startedAt, firstError ?? own, attempted));
          if (result.kind === 'served') return result.answer;
          if (result.kind === 'full') full.push(upstream);
          else if (result.kind === 'refused') soonestRetryMs = Math.min(soonestRetryMs, result.retryInMs);
          else firstError ??= result.error;
        }
        if (full.length === 0) break;
        // The upstreams left are all at their cap: wait here (visibly, within the deadline) for a
        // permit rather than inside the HTTP client's pool, then try them again.
        if (options.signal.aborted || this.clock.now() >= options.deadlineAt) throw this.timeUp(options, startedAt, firstError, attempted);
        await this.leases.waitForPermit(full, model, options.signal, options.deadlineAt);
        pending = full;
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
    route: RequestRoute,
    timeUp: (lastError: unknown) => unknown,
  ): Promise<Attempt> {
    let lastError: unknown;
    for (let attempt = 0; attempt < this.retry.maxAttempts; attempt++) {
      const remainingMs = options.deadlineAt - this.clock.now();
      // Work whose deadline has passed, or is about to, is dropped, never started: a call with a few
      // milliseconds left cannot answer, and only leaves the upstream with abandoned work.
      if (options.signal.aborted || remainingMs <= MIN_ATTEMPT_MS) throw timeUp(lastError);
      const answer = await this.breakers.acquire(upstream.name, model, isOpenEnded(upstream));
      if (!answer.allowed) {
        this.outcomes.record({ upstream: upstream.name, model, outcome: 'refused', durationMs: 0 });
        return lastError === undefined ? { kind: 'refused', retryInMs: answer.retryInMs } : { kind: 'failed', error: lastError };
      }
      const lease = answer.lease;
      // A first attempt that finds the upstream full lets the dispatch try the others; a retry waits its turn.
      const permit = await this.permitFor(upstream, model, attempt > 0, options);
      if (!permit) {
        this.breakers.release(lease);
        if (attempt === 0) return { kind: 'full' };
        throw timeUp(lastError);
      }
      this.outcomes.routed({ upstream: upstream.name, model });
      options.onAttempt?.();
      route.started(model, upstream.name);
      try {
        const ticket = { upstream, model, lease, permit, retry: attempt };
        const answer = await this.attempt.run(ticket, payload, { signal: options.signal, deadlineAt: options.deadlineAt, route, onAttempt: options.onAttempt });
        return { kind: 'served', answer };
      } catch (error) {
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

  /**
   * A permit for one attempt to `upstream`; with `wait`, waits for one (woken by releases, within the
   * deadline) instead of giving up at once. Undefined when none came.
   */
  private async permitFor(upstream: UpstreamDefinition, model: string, wait: boolean, options: DispatchOptions): Promise<UpstreamPermit | undefined> {
    let permit = await this.leases.tryAcquire(upstream);
    while (!permit && wait && !options.signal.aborted && this.clock.now() < options.deadlineAt) {
      await this.leases.waitForPermit([upstream], model, options.signal, options.deadlineAt);
      permit = await this.leases.tryAcquire(upstream);
    }
    return permit;
  }

  /**
   * What the caller gets when the request is stopped between two calls: a cancellation as is; the
   * deadline as the first upstream failure when there was one (the root cause: it is why the time ran
   * out), as `queue_timeout` when the upstream was never called, else as a timeout.
   */
  private timeUp(options: DispatchOptions, startedAt: number, upstreamError: unknown, attempted: boolean): unknown {
    const reason: unknown = options.signal.aborted ? options.signal.reason : undefined;
    if (reason !== undefined && !(reason instanceof RequestTimeoutError)) return reason;
    if (upstreamError !== undefined) return upstreamError;
    if (!attempted) return new QueueTimeoutError(Math.max(0, this.clock.now() - startedAt));
    return reason ?? new RequestTimeoutError(Math.max(0, Math.round(options.deadlineAt - startedAt)), 'Bulwark was about to call the upstream');
  }

  /** An upstream 429 as `upstream_rate_limited`, its Retry-After bounded by the request's remaining deadline. */
  private rateLimited(error: unknown, options: DispatchOptions): UpstreamRateLimitedError | undefined {
    if (!(error instanceof UpstreamError) || error.upstreamStatus !== 429) return undefined;
    const remainingMs = Math.max(0, options.deadlineAt - this.clock.now());
    const retryAfterMs = Math.min(error.retryAfterMs ?? this.retry.baseDelayMs, remainingMs);
    return new UpstreamRateLimitedError(`${error.message} (the upstream is rate limiting requests)`, retryAfterMs, error);
  }

  /** The model, then its fallbacks, each once. */
  private candidateModels(model: string): string[] {
    return [...new Set([model, ...this.registry.fallbacksFor(model)])];
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
