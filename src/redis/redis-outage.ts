/** Where {@link RedisOutageLog} writes its two lines. */
export interface OutageLogger {
  warn(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
}

/**
 * Turns the many connections' reconnect noise into one line per outage transition: `Redis connection
 * lost` when the first connection drops while all were up, `Redis connection back` (with the outage's
 * length) once every connection that dropped is ready again. Errors while already down are counted,
 * not logged.
 */
export class RedisOutageLog {
  private readonly down = new Set<string>();
  private since = 0;
  private errors = 0;

  constructor(
    private readonly logger: OutageLogger,
    private readonly now: () => number = Date.now,
  ) {}

  get outage(): boolean {
    return this.down.size > 0;
  }

  /** `connection` lost its link (closed, or a connect attempt failed) for `reason`. */
  lost(connection: string, reason: string): void {
    this.errors++;
    if (this.down.has(connection)) return;
    this.down.add(connection);
    if (this.down.size > 1) return;
    this.since = this.now();
    this.errors = 1;
    this.logger.warn({ event: 'redis_connection_lost', connection, reason }, 'Redis connection lost: new work is refused until it answers');
  }

  /** `connection` is ready again. */
  back(connection: string): void {
    if (!this.down.delete(connection) || this.down.size > 0) return;
    this.logger.info({ event: 'redis_connection_back', downMs: this.now() - this.since, failedAttempts: this.errors }, 'Redis connection back');
  }
}
