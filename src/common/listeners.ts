import { Logger } from '@nestjs/common';

/** A listener may be synchronous or return a promise; its result is ignored, a rejection logged. */
export type Listener<T extends unknown[]> = (...args: T) => unknown;

/** What a {@link Listeners} list needs to report a failing listener. */
export interface ListenerErrorLogger {
  error(message: unknown, ...rest: unknown[]): void;
}

/**
 * A list of listeners whose failures stay their own: `emit` calls each listener in the order they were
 * added, and one that throws (or whose promise rejects) is logged, once per failure with its error, while
 * the others still run and the emitter carries on. As resilience4j's event publisher does, so that a
 * failing consumer (metrics, dashboard) never breaks admission, settlement or the breaker.
 */
export class Listeners<T extends unknown[]> {
  private readonly listeners = new Set<Listener<T>>();

  /**
   * @param event names the event in the log line of a failing listener (e.g. `upstream outcome`).
   * @param logger where failures go; a Nest Logger (JSON through nestjs-pino in the app) by default.
   */
  constructor(
    private readonly event: string,
    private readonly logger: ListenerErrorLogger = new Logger('Listeners'),
  ) {}

  /** Adds a listener; returns the function that removes it again. */
  add(listener: Listener<T>): () => void {
    // A wrapper per registration, so the same function added twice is called twice, as with an array.
    const entry: Listener<T> = (...args) => listener(...args);
    this.listeners.add(entry);
    return () => this.listeners.delete(entry);
  }

  get size(): number {
    return this.listeners.size;
  }

  /** Calls every listener with `args`; never throws. */
  emit(...args: T): void {
    for (const listener of this.listeners) {
      try {
        const result = listener(...args);
        if (result instanceof Promise) result.catch((error: unknown) => this.report(error));
      } catch (error) {
        this.report(error);
      }
    }
  }

  private report(error: unknown): void {
    const err = error instanceof Error ? { type: error.name, message: error.message, stack: error.stack } : { message: String(error) };
    try {
      this.logger.error({ event: this.event, err }, `a listener of ${this.event} failed: ${err.message}`);
    } catch {
      // A logger that throws must not turn a listener's failure into the emitter's.
    }
  }
}
