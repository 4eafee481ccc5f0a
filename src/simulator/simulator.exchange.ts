import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * One in-progress /v1 request. Owns every timer and wait started on its behalf so that a
 * client abort or a simulator stop can cancel them all at once.
 */
export class Exchange {
  /** Set once the response closed (finished, aborted or destroyed); nothing may be written after. */
  closed = false;
  /** The simulator itself cut the connection (reset fault, stop), so the close is no client abort. */
  serverClosed = false;
  state: 'idle' | 'waiting' | 'running' = 'idle';
  model: string | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly wakers = new Set<(alive: boolean) => void>();

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
  ) {}

  /** Resolves true after `ms`, or false as soon as the exchange is shut down. */
  delay(ms: number): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    if (ms <= 0) return Promise.resolve(true);
    return this.park((wake) => {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        wake(true);
      }, ms);
      this.timers.add(timer);
    });
  }

  /** Waits until `arm`'s wake callback is called, or resolves false on shutdown. */
  park(arm: (wake: (alive: boolean) => void) => void): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const wake = (alive: boolean): void => {
        if (!this.wakers.delete(wake)) return;
        resolve(alive && !this.closed);
      };
      this.wakers.add(wake);
      arm(wake);
    });
  }

  /** Writes unless the response is already gone; returns whether the exchange is still alive. */
  write(chunk: string): boolean {
    if (this.closed || this.res.destroyed) return false;
    this.res.write(chunk);
    return true;
  }

  shutdown(): void {
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const wake of [...this.wakers]) wake(false);
  }
}

/** FIFO admission of exchanges into a bounded number of running slots (0 = unlimited). */
export class CapacityGate {
  private running = 0;
  private readonly queue: Array<{ exchange: Exchange; wake: (alive: boolean) => void }> = [];

  constructor(
    private capacity: number,
    private readonly onRunningChanged: (running: number) => void,
  ) {}

  get runningCount(): number {
    return this.running;
  }

  get waitingCount(): number {
    return this.queue.length;
  }

  setCapacity(capacity: number): void {
    this.capacity = capacity;
    this.pump();
  }

  /** Resolves true once the exchange holds a slot, false if it closed while waiting. */
  acquire(exchange: Exchange): Promise<boolean> {
    if (this.queue.length === 0 && this.hasRoom()) {
      this.start(exchange);
      return Promise.resolve(true);
    }
    exchange.state = 'waiting';
    return exchange.park((wake) => this.queue.push({ exchange, wake }));
  }

  /** Gives back the exchange's slot or queue place, whichever it holds. */
  leave(exchange: Exchange): void {
    if (exchange.state === 'running') {
      this.running--;
      this.onRunningChanged(this.running);
    } else if (exchange.state === 'waiting') {
      const index = this.queue.findIndex((entry) => entry.exchange === exchange);
      if (index >= 0) this.queue.splice(index, 1);
    }
    exchange.state = 'idle';
    this.pump();
  }

  private hasRoom(): boolean {
    return this.capacity <= 0 || this.running < this.capacity;
  }

  private start(exchange: Exchange): void {
    exchange.state = 'running';
    this.running++;
    this.onRunningChanged(this.running);
  }

  private pump(): void {
    while (this.queue.length > 0 && this.hasRoom()) {
      const next = this.queue.shift()!;
      this.start(next.exchange);
      next.wake(true);
    }
  }
}
