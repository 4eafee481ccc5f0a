/**
 * Batches a stream's chunks for relaying through Redis: one round trip per batch, flushed when it holds
 * `maxBytes` or its first chunk is `maxDelayMs` old. Batches are sent in order, and the producer waits
 * (backpressure) while more than `maxInFlight` batches are on their way.
 */
export class StreamBatcher {
  private batch: string[] = [];
  private bytes = 0;
  private timer?: NodeJS.Timeout;
  private chain: Promise<void> = Promise.resolve();
  private inFlight = 0;
  private failure: { error: unknown } | undefined;

  constructor(
    private readonly send: (chunks: string[]) => Promise<void>,
    private readonly options: { maxBytes: number; maxDelayMs: number; maxInFlight: number } = { maxBytes: 16 * 1024, maxDelayMs: 5, maxInFlight: 2 },
  ) {}

  /** Adds a chunk; resolves once the producer may go on. Rejects when an earlier batch failed. */
  async push(data: string): Promise<void> {
    this.throwIfFailed();
    this.batch.push(data);
    this.bytes += data.length;
    if (this.bytes >= this.options.maxBytes) {
      this.dispatch();
    } else {
      this.timer ??= setTimeout(() => this.dispatch(), this.options.maxDelayMs);
    }
    while (this.inFlight > this.options.maxInFlight) await this.chain.catch(() => undefined);
    this.throwIfFailed();
  }

  /** Sends what is batched and waits for every batch to be delivered. */
  async flush(): Promise<void> {
    this.dispatch();
    await this.chain;
    this.throwIfFailed();
  }

  private throwIfFailed(): void {
    const failure = this.failure as { error: unknown } | undefined;
    if (failure) throw failure.error;
  }

  private dispatch(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.batch.length === 0) return;
    const chunks = this.batch;
    this.batch = [];
    this.bytes = 0;
    this.inFlight++;
    this.chain = this.chain
      .then(() => (this.failure ? undefined : this.send(chunks)))
      .catch((error: unknown) => {
        this.failure ??= { error };
      })
      .finally(() => this.inFlight--);
  }
}
