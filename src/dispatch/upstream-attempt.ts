import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import type { Span } from '@opentelemetry/api';
import { BreakerLease, BreakerService } from '../breaker/breaker.service';
import { Clock } from '../common/clock';
import { BulwarkError, RequestTimeoutError, UpstreamBadResponseError, UpstreamClientError, UpstreamError, UpstreamTimeoutError } from '../common/errors';
import { serverConfig } from '../config/sections';
import { TracingService } from '../tracing/tracing.service';
import { endAttemptSpan, startAttemptSpan } from '../tracing/upstream-attempt-span';
import { completionTokensOf, countedEvents, StreamTokenCounter } from '../upstream/completion-tokens';
import { UpstreamClient } from '../upstream/upstream-client';
import type { UpstreamPermit } from '../upstream/upstream-leases.service';
import { UpstreamOutcomes } from '../upstream/upstream-outcomes';
import type { InferencePayload, ServedAnswer, UpstreamDefinition, UpstreamStreamAnswer } from '../upstream/upstream.types';
import { FirstByteTimes } from './first-byte-times';
import { settleWhenEnded } from './settled-stream';

/**
 * Upstream failures count against the breaker and may be retried: connection errors, 429 and 5xx,
 * timeouts, unparseable answers. Client mistakes (the upstream's other 4xx) and cancellations do not.
 */
export function isUpstreamFailure(error: unknown): boolean {
  return error instanceof UpstreamError || error instanceof UpstreamTimeoutError || error instanceof UpstreamBadResponseError;
}

/** What one attempt holds before it is sent: where, which model, its breaker lease and bulkhead permit. */
export interface AttemptTicket {
  upstream: UpstreamDefinition;
  model: string;
  lease: BreakerLease;
  permit: UpstreamPermit;
  /** 0 for the first attempt on this upstream, then 1, 2… for its retries. */
  retry: number;
}

/**
 * The attempt step: sends one call to one upstream and settles it exactly once, whatever its end (the
 * breaker lease, the bulkhead permit, the outcome listeners, the trace span); a stream settles when it
 * ends. Records the time to first byte of every answered attempt for the hedge delay.
 */
@Injectable()
export class UpstreamAttempt {
  constructor(
    private readonly client: UpstreamClient,
    private readonly breakers: BreakerService,
    private readonly outcomes: UpstreamOutcomes,
    private readonly clock: Clock,
    private readonly tracing: TracingService,
    @Inject(serverConfig.KEY) private readonly server: Pick<ConfigType<typeof serverConfig>, 'streamIdleTimeoutMs' | 'requestTimeoutMs'>,
    private readonly firstBytes: FirstByteTimes,
  ) {}

  /** Sends the attempt; the answer, or the attempt's error once it is settled. */
  async run(ticket: AttemptTicket, payload: InferencePayload, signal: AbortSignal, firstByteTimeoutMs: number): Promise<ServedAnswer> {
    const { upstream, model, lease, permit } = ticket;
    const started = this.clock.now();
    const span = startAttemptSpan(this.tracing, { upstream: upstream.name, model, requestedModel: payload.model, retry: ticket.retry });
    try {
      const body = model === payload.model ? payload.body : { ...payload.body, model };
      const sent = await this.tracing.withSpan(span, () =>
        this.client.send(upstream, { ...payload, model, body }, { signal, firstByteTimeoutMs, idleTimeoutMs: this.server.streamIdleTimeoutMs }),
      );
      this.firstBytes.record(model, this.clock.now() - started);
      if (sent.kind === 'json') {
        permit.release();
        const durationMs = this.clock.now() - started;
        this.breakers.onSuccess(lease, durationMs);
        this.outcomes.record({ upstream: upstream.name, model, outcome: 'success', durationMs, completionTokens: completionTokensOf(sent.body) });
        endAttemptSpan(span, { status: sent.status });
        return { ...sent, upstream: upstream.name, model };
      }
      return { ...this.watchStream(sent, ticket, started, signal, span), upstream: upstream.name, model };
    } catch (error) {
      permit.release();
      endAttemptSpan(span, { error });
      this.settleFailure(lease, upstream.name, model, error, this.clock.now() - started);
      throw error;
    }
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
  private watchStream(answer: UpstreamStreamAnswer, ticket: AttemptTicket, started: number, signal: AbortSignal, span: Span): UpstreamStreamAnswer {
    const { lease, permit, model } = ticket;
    const upstream = ticket.upstream.name;
    const timeToFirstTokenMs = this.clock.now() - started;
    const tokens = new StreamTokenCounter();
    for (const event of answer.first) tokens.observe(event);
    const rest = settleWhenEnded(countedEvents(answer.rest, tokens), signal, (error) => {
      permit.release();
      endAttemptSpan(span, { status: answer.status, error });
      const durationMs = this.clock.now() - started;
      if (error === undefined) {
        this.breakers.onSuccess(lease, timeToFirstTokenMs);
        this.outcomes.record({ upstream, model, outcome: 'success', durationMs, timeToFirstTokenMs, completionTokens: tokens.tokens });
      } else {
        this.settleFailure(lease, upstream, model, error, durationMs);
      }
    });
    return { ...answer, rest };
  }
}
