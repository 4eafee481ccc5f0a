import { Injectable } from '@nestjs/common';

export type UpstreamOutcomeKind = 'success' | 'failure' | 'timeout' | 'client_error' | 'cancelled' | 'refused';

/** One finished attempt against one upstream. */
export interface UpstreamOutcome {
  upstream: string;
  model: string;
  outcome: UpstreamOutcomeKind;
  durationMs: number;
  /** Time to the first streamed event, for streams that produced one. */
  timeToFirstTokenMs?: number;
  /** Output tokens of a successful answer (`usage.completion_tokens`, or streamed chunks counted). */
  completionTokens?: number;
  /** The call outlived its deadline and was cut off while the upstream still worked. */
  abandoned?: boolean;
}

export interface RetryEvent {
  upstream: string;
  reason: string;
}

/** A fallback model answered instead of the one asked for. */
export interface FallbackEvent {
  from: string;
  to: string;
  upstream: string;
}

/** One attempt sent to an upstream: the router's choice. */
export interface RoutedEvent {
  upstream: string;
  model: string;
}

type Listener<T> = (event: T) => void;

/**
 * Where the dispatcher reports what happened upstream. Metrics, adaptive figures and health listen;
 * the dispatcher knows none of them.
 */
@Injectable()
export class UpstreamOutcomes {
  private readonly outcomeListeners: Listener<UpstreamOutcome>[] = [];
  private readonly retryListeners: Listener<RetryEvent>[] = [];
  private readonly fallbackListeners: Listener<FallbackEvent>[] = [];
  private readonly routedListeners: Listener<RoutedEvent>[] = [];

  onOutcome(listener: Listener<UpstreamOutcome>): void {
    this.outcomeListeners.push(listener);
  }

  onRetry(listener: Listener<RetryEvent>): void {
    this.retryListeners.push(listener);
  }

  onFallback(listener: Listener<FallbackEvent>): void {
    this.fallbackListeners.push(listener);
  }

  onRouted(listener: Listener<RoutedEvent>): void {
    this.routedListeners.push(listener);
  }

  routed(event: RoutedEvent): void {
    for (const listener of this.routedListeners) listener(event);
  }

  record(event: UpstreamOutcome): void {
    for (const listener of this.outcomeListeners) listener(event);
  }

  retried(event: RetryEvent): void {
    for (const listener of this.retryListeners) listener(event);
  }

  fellBack(event: FallbackEvent): void {
    for (const listener of this.fallbackListeners) listener(event);
  }
}
