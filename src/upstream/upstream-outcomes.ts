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
  /** The call outlived its deadline and was cut off while the upstream still worked. */
  abandoned?: boolean;
}

export interface RetryEvent {
  upstream: string;
  reason: string;
}

type Listener<T> = (event: T) => unknown;

/**
 * Where the dispatcher reports what happened upstream. Metrics, adaptive figures and health listen;
 * the dispatcher knows none of them.
 */
@Injectable()
export class UpstreamOutcomes {
  private readonly logger = new Logger(UpstreamOutcomes.name);
  private readonly outcomeListeners = new Listeners<[UpstreamOutcome]>('upstream outcome', this.logger);
  private readonly retryListeners = new Listeners<[RetryEvent]>('retry', this.logger);

  onOutcome(listener: Listener<UpstreamOutcome>): void {
    this.outcomeListeners.add(listener);
  }

  onRetry(listener: Listener<RetryEvent>): void {
    this.retryListeners.add(listener);
  }

  record(event: UpstreamOutcome): void {
    this.outcomeListeners.emit(event);
  }

  retried(event: RetryEvent): void {
    this.retryListeners.emit(event);
  }
}
