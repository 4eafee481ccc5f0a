import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { setTimeout as sleep } from 'node:timers/promises';
import { BreakerService } from '../breaker/breaker.service';
import { Clock } from '../common/clock';
import {
  BulwarkError,
  CancelledError,
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
import { RetryBudgetService } from './retry-budget.service';
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

/** Upstream failures count against the breaker; client mistakes and cancellations do not. */
export function isUpstreamFailure(error: unknown): boolean {
  return error instanceof UpstreamError || error instanceof UpstreamTimeoutError || error instanceof UpstreamBadResponseError;
}

/**
 * Sends one request upstream, keeping callers and upstreams healthy: per upstream+model breakers,
 * retries with full-jitter backoff inside the retry budget and the deadline, weighted choice among
 * upstreams serving the model, then the model's fallbacks. All of it happens before the first byte
 * reaches the caller; afterwards a failure ends the stream.
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
    @Inject(retryConfig.KEY) private readonly retry: ConfigType<typeof retryConfig>,
    @Inject(serverConfig.KEY) private readonly server: ConfigType<typeof serverConfig>,
  ) {}

  /**
   * Whether any upstream (of the model or its fallbacks) may take the model now, from the in-memory
   * breakers only. When none can, `retryInMs` is the time to the soonest probe.
   */
  availability(model: string): { available: true } | { available: false; retryInMs: number } {
    let soonest = Number.POSITIVE_INFINITY;
    for (const candidate of [model, ...this.registry.fallbacksFor(model)]) {
      for (const upstream of this.registry.servingModel(candidate)) {
        if (!this.breakers.isOpen(upstream.name, candidate)) return { available: true };
        soonest = Math.min(soonest, this.breakers.retryInMs(upstream.name, candidate));
      }
    }
    return Number.isFinite(soonest) ? { available: false, retryInMs: soonest } : { available: true };
  }

  async dispatch(payload: InferencePayload, options: DispatchOptions): Promise<ServedAnswer> {
    const models = [payload.model, ...this.registry.fallbacksFor(payload.model)];
    if (!this.registry.knows(payload.model)) {
      throw new NotFoundError('model_not_found', `The model \`${payload.model}\` does not exist`, 'model');
    }
    this.budget.recordRequest();
    let firstError: unknown;
    let soonestRetryMs = Number.POSITIVE_INFINITY;
    for (const model of models) {
      for (const upstream of this.weightedOrder(this.registry.servingModel(model))) {
        const result = await this.tryUpstream(upstream, model, payload, options);
        if (result.kind === 'served') return result.answer;
        if (result.kind === 'refused') soonestRetryMs = Math.min(soonestRetryMs, result.retryInMs);
        else firstError ??= result.error;
      }
    }
    if (firstError !== undefined) throw firstError;
    throw new CircuitOpenError(payload.model, Number.isFinite(soonestRetryMs) ? soonestRetryMs : this.retry.maxDelayMs);
  }

  /** Attempts one upstream with retries; a client error or a cancellation ends the whole dispatch. */
  private async tryUpstream(
    upstream: UpstreamDefinition,
    model: string,
    payload: InferencePayload,
    options: DispatchOptions,
  ): Promise<{ kind: 'served'; answer: ServedAnswer } | { kind: 'refused'; retryInMs: number } | { kind: 'failed'; error: unknown }> {
    let lastError: unknown;
    for (let attempt = 0; attempt < this.retry.maxAttempts; attempt++) {
      if (options.signal.aborted) throw options.signal.reason;
      const permit = this.breakers.tryAcquire(upstream.name, model);
      if (!permit.allowed) {
        this.outcomes.record({ upstream: upstream.name, model, outcome: 'refused', durationMs: 0 });
        return lastError === undefined ? { kind: 'refused', retryInMs: permit.retryInMs } : { kind: 'failed', error: lastError };
      }
      const started = this.clock.now();
      try {
        const answer = await this.client.send(
          upstream,
          { ...payload, model, body: model === payload.model ? payload.body : { ...payload.body, model } },
          { signal: options.signal, firstByteTimeoutMs: Math.max(1, options.deadlineAt - started), idleTimeoutMs: this.server.streamIdleTimeoutMs },
        );
        if (answer.kind === 'json') {
          const durationMs = this.clock.now() - started;
          this.breakers.onSuccess(upstream.name, model, durationMs);
          this.outcomes.record({ upstream: upstream.name, model, outcome: 'success', durationMs });
          return { kind: 'served', answer: { ...answer, upstream: upstream.name, model } };
        }
        return { kind: 'served', answer: { ...this.watchStream(answer, upstream.name, model, started, options.signal), upstream: upstream.name, model } };
      } catch (error) {
        const durationMs = this.clock.now() - started;
        this.settleFailure(upstream.name, model, error, durationMs);
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
        // A hint longer than the deadline: the upstream said it cannot serve in time, so say so at once.
        if (plan.kind === 'give_up') {
          if (plan.reason === 'hint_exceeds_deadline') throw error;
          break;
        }
        if (!this.budget.tryWithdraw()) break;
        this.outcomes.retried({ upstream: upstream.name, reason: retryReason(error) });
        await sleep(plan.delayMs, undefined, { signal: options.signal }).catch(() => {
          throw options.signal.reason;
        });
      }
    }
    return { kind: 'failed', error: lastError };
  }

  /** Feeds one failed attempt to the breaker and the outcome listeners. */
  private settleFailure(upstream: string, model: string, error: unknown, durationMs: number): void {
    if (error instanceof RequestTimeoutError) {
      // The request's deadline cut the call off while the upstream still worked: it is abandoned.
      this.breakers.onFailure(upstream, model, durationMs);
      this.outcomes.record({ upstream, model, outcome: 'timeout', durationMs, abandoned: true });
    } else if (isUpstreamFailure(error)) {
      this.breakers.onFailure(upstream, model, durationMs, (error as BulwarkError).retryAfterMs);
      this.outcomes.record({ upstream, model, outcome: error instanceof UpstreamTimeoutError ? 'timeout' : 'failure', durationMs });
    } else {
      this.breakers.release(upstream, model);
      this.outcomes.record({ upstream, model, outcome: error instanceof UpstreamClientError ? 'client_error' : 'cancelled', durationMs });
    }
  }

  /** Wraps a committed stream so that its end, whatever it is, settles the breaker and the figures. */
  private watchStream(answer: UpstreamStreamAnswer, upstream: string, model: string, started: number, signal: AbortSignal): UpstreamStreamAnswer {
    const timeToFirstTokenMs = this.clock.now() - started;
    const settle = (error?: unknown) => {
      const durationMs = this.clock.now() - started;
      if (error === undefined) {
        this.breakers.onSuccess(upstream, model, durationMs);
        this.outcomes.record({ upstream, model, outcome: 'success', durationMs, timeToFirstTokenMs });
      } else {
        this.settleFailure(upstream, model, signal.aborted ? signal.reason : error, durationMs);
      }
    };
    const rest = answer.rest;
    return {
      ...answer,
      rest: {
        async *[Symbol.asyncIterator]() {
          let settled = false;
          try {
            for await (const data of rest) yield data;
            settled = true;
            settle();
          } catch (error) {
            settled = true;
            settle(error);
            throw signal.aborted ? signal.reason : error;
          } finally {
            // The consumer stopped reading (client gone): neither success nor failure.
            if (!settled) settle(new CancelledError('client'));
          }
        },
      },
    };
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

function retryReason(error: unknown): string {
  if (error instanceof UpstreamTimeoutError) return 'timeout';
  if (error instanceof UpstreamBadResponseError) return 'bad_response';
  if (error instanceof UpstreamError) return error.upstreamStatus ? `status_${error.upstreamStatus}` : 'connection';
  return 'other';
}
