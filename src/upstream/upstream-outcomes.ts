import { Injectable, Logger } from '@nestjs/common';
import { Listeners } from '../common/listeners';

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

/** A hedge's fate: it answered first (`won`), the first attempt did (`lost`), or none could start (`skipped`: budget, deadline, no other upstream). */
export interface HedgeEvent {
  model: string;
  outcome: 'won' | 'lost' | 'skipped';
}

type Listener<T> = (event: T) => unknown;

/**
 * Where the dispatcher reports what happened upstream. Metrics, adaptive figures and health listen;
 * the dispatcher knows none of them, and a failing listener never breaks it.
 */
@Injectable()
export class UpstreamOutcomes {
  private readonly logger = new Logger(UpstreamOutcomes.name);
  private readonly outcomeListeners = new Listeners<[UpstreamOutcome]>('upstream outcome', this.logger);
  private readonly retryListeners = new Listeners<[RetryEvent]>('retry', this.logger);
  private readonly fallbackListeners = new Listeners<[FallbackEvent]>('fallback', this.logger);
  private readonly routedListeners = new Listeners<[RoutedEvent]>('routing', this.logger);
  private readonly hedgeListeners = new Listeners<[HedgeEvent]>('hedge', this.logger);

  onHedge(listener: Listener<HedgeEvent>): void {
    this.hedgeListeners.add(listener);
  }

  hedged(event: HedgeEvent): void {
    this.hedgeListeners.emit(event);
  }

  onOutcome(listener: Listener<UpstreamOutcome>): void {
    this.outcomeListeners.add(listener);
  }

  onRetry(listener: Listener<RetryEvent>): void {
    this.retryListeners.add(listener);
  }

  onFallback(listener: Listener<FallbackEvent>): void {
    this.fallbackListeners.add(listener);
  }

  onRouted(listener: Listener<RoutedEvent>): void {
    this.routedListeners.add(listener);
  }

  record(event: UpstreamOutcome): void {
    this.outcomeListeners.emit(event);
  }

  retried(event: RetryEvent): void {
    this.retryListeners.emit(event);
  }

  fellBack(event: FallbackEvent): void {
    this.fallbackListeners.emit(event);
  }

  routed(event: RoutedEvent): void {
    this.routedListeners.emit(event);
  }
}
