import { Injectable, Logger } from '@nestjs/common';
import { Listeners } from './listeners';

/**
 * The instance's life-cycle state and its in-flight HTTP requests. Draining starts on SIGTERM: the
 * readiness probe fails, new work is refused, and in-flight work gets the grace period to finish.
 */
@Injectable()
export class ShutdownService {
  private readonly logger = new Logger(ShutdownService.name);
  private state: 'serving' | 'draining' = 'serving';
  private inflight = 0;
  private idleWaiters: (() => void)[] = [];
  private readonly drainListeners = new Listeners<[]>('drain', this.logger);

  /** Called once when draining starts (e.g. workers stop taking new jobs). */
  onDrain(listener: () => void): void {
    this.drainListeners.add(listener);
  }

  get draining(): boolean {
    return this.state === 'draining';
  }

  get inflightRequests(): number {
    return this.inflight;
  }

  requestStarted(): void {
    this.inflight++;
  }

  requestEnded(): void {
    this.inflight = Math.max(0, this.inflight - 1);
    if (this.inflight === 0) {
      for (const wake of this.idleWaiters.splice(0)) wake();
    }
  }

  beginDrain(): void {
    if (this.state === 'draining') return;
    this.state = 'draining';
    this.logger.log(`draining: refusing new work, ${this.inflight} request(s) in flight`);
    this.drainListeners.emit();
  }

  /** Resolves true when no request is in flight, false when `graceMs` passed first. */
  async waitForIdle(graceMs: number): Promise<boolean> {
    if (this.inflight === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const idle = await Promise.race([
      new Promise<boolean>((resolve) => this.idleWaiters.push(() => resolve(true))),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), graceMs))),
    ]);
    clearTimeout(timer);
    return idle;
  }
}
