import { Injectable, Logger } from '@nestjs/common';
import { settleWithin } from './deadline';
import { Listeners } from './listeners';

/**
 * The instance's life-cycle state, its in-flight HTTP requests and the queued work its worker runs.
 * Draining starts on SIGTERM: the readiness probe fails, new work is refused, and in-flight work gets the
 * grace period to finish; what is still running when it ends is handed back (see `endGrace`).
 */
@Injectable()
export class ShutdownService {
  private readonly logger = new Logger(ShutdownService.name);
  private state: 'serving' | 'draining' = 'serving';
  private inflight = 0;
  private work = 0;
  private idleWaiters: (() => void)[] = [];
  private readonly drainListeners = new Listeners<[]>('drain', this.logger);
  private readonly graceOverListeners: (() => Promise<void>)[] = [];

  /** Called once when draining starts (e.g. workers stop taking new jobs). */
  onDrain(listener: () => void): void {
    this.drainListeners.add(listener);
  }

  /** Called when the grace period is over with work still running: stop it and hand it back. */
  onGraceOver(listener: () => Promise<void>): void {
    this.graceOverListeners.push(listener);
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
    this.wakeIfIdle();
  }

  /** Counts a piece of queued work (a job run by this instance's worker) until the returned call. */
  trackWork(): () => void {
    this.work++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.work--;
      this.wakeIfIdle();
    };
  }

  private wakeIfIdle(): void {
    if (this.inflight === 0 && this.work === 0) {
      for (const wake of this.idleWaiters.splice(0)) wake();
    }
  }

  beginDrain(): void {
    if (this.state === 'draining') return;
    this.state = 'draining';
    this.logger.log(`draining: refusing new work, ${this.inflight} request(s) and ${this.work} job(s) in flight`);
    this.drainListeners.emit();
  }

  /** Resolves true when no request or job is in flight, false when `graceMs` passed first. */
  async waitForIdle(graceMs: number): Promise<boolean> {
    if (this.inflight === 0 && this.work === 0) return true;
    return settleWithin(new Promise<boolean>((resolve) => this.idleWaiters.push(() => resolve(true))), graceMs, false);
  }

  /** The grace period is over: every listener stops and hands back what it still runs. */
  async endGrace(): Promise<void> {
    await Promise.allSettled(this.graceOverListeners.map((listener) => listener()));
  }
}
