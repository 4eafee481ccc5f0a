import type { Logger } from '@nestjs/common';

/**
 * Listeners of one kind of event, each called in isolation: one that throws is logged and the others
 * still run, so a failing consumer (metrics, dashboard) never breaks the producer.
 */
export class ListenerList<T> {
  private readonly listeners: ((event: T) => void)[] = [];

  constructor(
    private readonly logger: Pick<Logger, 'warn'>,
    private readonly what: string,
  ) {}

  add(listener: (event: T) => void): void {
    this.listeners.push(listener);
  }

  emit(event: T): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (error) {
        this.logger.warn(`${this.what} listener failed: ${(error as Error).message}`);
      }
    }
  }
}
