/** What a stop signal asks for, given the ones before it. */
export type StopSignalVerdict =
  /** The first: stop gracefully (drain, then close). */
  | 'stop'
  /** The same request again: a process-group signal and npm's forwarded copy arrive together. */
  | 'repeat'
  /** A real second signal: the operator wants out now. */
  | 'force';

/** Signals within this time of the first count as the same request (npm forwards within milliseconds). */
export const SIGNAL_REPEAT_WINDOW_MS = 1000;

/**
 * Tells a repeated stop signal from a real second one. `timeout`, process managers and Ctrl-C on
 * `npm start | tee` signal the whole process group, and npm forwards the signal it got to Bulwark as
 * well: Bulwark sees two signals a few milliseconds apart for one request to stop. Counting them as two
 * made Bulwark exit at once and leave its embedded Redis behind.
 */
export class StopSignals {
  private firstAt?: number;

  constructor(private readonly repeatWindowMs = SIGNAL_REPEAT_WINDOW_MS) {}

  /** Classifies a signal received at `now` (ms). */
  receive(now: number): StopSignalVerdict {
    if (this.firstAt === undefined) {
      this.firstAt = now;
      return 'stop';
    }
    return now - this.firstAt < this.repeatWindowMs ? 'repeat' : 'force';
  }
}
