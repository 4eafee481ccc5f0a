import { Injectable } from '@nestjs/common';
import { settleWithin } from '../common/deadline';
import { RESPONSE_STATUSES, ResponseStatus, ResponseStore } from './response-store';

/** Longest a refresh waits for Redis before the last figures stand. */
const REFRESH_TIMEOUT_MS = 500;
/** Figures younger than this are not read again. */
const FRESH_MS = 1000;

/**
 * Background responses by status across the cluster (queued and in_progress now; completed, failed,
 * cancelled and incomplete reached so far), for the metrics and the dashboard: read from Redis at most
 * once a second, the last figures kept when Redis does not answer.
 */
@Injectable()
export class ResponseFigures {
  private last = Object.fromEntries(RESPONSE_STATUSES.map((s) => [s, 0])) as Record<ResponseStatus, number>;
  private readAt = 0;
  private reading?: Promise<void>;

  constructor(private readonly store: ResponseStore) {}

  snapshot(): Readonly<Record<ResponseStatus, number>> {
    return this.last;
  }

  /** Reads the figures again unless they are fresh; never throws. */
  refresh(now = Date.now()): Promise<void> {
    if (now - this.readAt < FRESH_MS) return Promise.resolve();
    this.reading ??= settleWithin(this.store.counts(), REFRESH_TIMEOUT_MS, undefined)
      .then((counts) => {
        if (counts) {
          this.last = counts;
          this.readAt = Date.now();
        }
      })
      .finally(() => (this.reading = undefined));
    return this.reading;
  }
}
