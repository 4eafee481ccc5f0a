import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { settleWithin } from '../common/deadline';
import { RestartBackoff } from './restart-backoff';

/** How the first start of every worker ended. */
export type FleetStart =
  | { ok: true; port: number }
  /** A worker exited before it ever listened: the start failed (`code` is its exit code, null if signalled). */
  | { ok: false; code: number | null; signal: string | null };

interface Member {
  worker: Worker;
  startedAt: number;
  listening: boolean;
}

/**
 * The gateway workers of a cluster primary: forks them (they share the listening socket through
 * `node:cluster`), replaces one that dies (after a {@link RestartBackoff} delay), and stops them all.
 */
export class WorkerFleet {
  private readonly members = new Map<number, Member>();
  private readonly restarts = new Set<NodeJS.Timeout>();
  private stopping = false;
  private onEmpty?: () => void;
  private starting?: { listened: number; settle: (outcome: FleetStart) => void };

  constructor(
    private readonly size: number,
    /** On top of the primary's environment, for every worker (the handover). */
    private readonly workerEnv: Record<string, string>,
    private readonly logger: Logger,
    private readonly backoff = new RestartBackoff(),
  ) {}

  /** Pids of the workers running now. */
  get pids(): number[] {
    return [...this.members.values()].map((m) => m.worker.process.pid!).filter((pid) => pid !== undefined);
  }

  /** Forks every worker; settles once each has listened, or as soon as one exits before listening. */
  start(): Promise<FleetStart> {
    return new Promise((settle) => {
      this.starting = { listened: 0, settle };
      for (let i = 0; i < this.size; i++) this.fork();
    });
  }

  /**
   * Asks every worker to stop with `signal` (each drains within its SHUTDOWN_GRACE_MS, as a single
   * instance does) and waits until all have exited, at most `boundMs`; kills those still running then.
   * Resolves true when every worker exited by itself.
   */
  async stop(signal: NodeJS.Signals, boundMs: number): Promise<boolean> {
    this.stopping = true;
    for (const timer of this.restarts) clearTimeout(timer);
    this.restarts.clear();
    this.signal(signal);
    if (await this.untilEmpty(boundMs)) return true;
    this.logger.error({ workers: this.pids, boundMs }, 'workers did not stop in time: killing them');
    this.signal('SIGKILL');
    await this.untilEmpty(2000);
    return false;
  }

  /** Sends `signal` to every worker running now. */
  signal(signal: NodeJS.Signals): void {
    for (const { worker } of this.members.values()) worker.process.kill(signal);
  }

  private untilEmpty(boundMs: number): Promise<boolean> {
    if (this.members.size === 0) return Promise.resolve(true);
    const empty = new Promise<boolean>((resolve) => (this.onEmpty = () => resolve(true)));
    return settleWithin(empty, boundMs, false);
  }

  private fork(): void {
    const worker = cluster.fork(this.workerEnv);
    const member: Member = { worker, startedAt: Date.now(), listening: false };
    this.members.set(worker.id, member);
    worker.once('listening', (address: { port: number }) => {
      member.listening = true;
      this.logger.debug({ workerPid: worker.process.pid, port: address.port }, 'worker listening');
      const starting = this.starting;
      if (starting && ++starting.listened === this.size) {
        this.starting = undefined;
        starting.settle({ ok: true, port: address.port });
      }
    });
    worker.once('exit', (code: number | null, signal: string | null) => this.exited(member, code, signal));
  }

  private exited(member: Member, code: number | null, signal: string | null): void {
    this.members.delete(member.worker.id);
    const workerPid = member.worker.process.pid;
    if (this.stopping) {
      this.logger.info({ workerPid, code, signal }, 'worker stopped');
      if (this.members.size === 0) this.onEmpty?.();
      return;
    }
    if (this.starting && !member.listening) {
      const starting = this.starting;
      this.starting = undefined;
      starting.settle({ ok: false, code, signal });
      return;
    }
    const delayMs = this.backoff.delayAfter(Date.now() - member.startedAt);
    this.logger.error({ workerPid, code, signal, restartInMs: delayMs }, 'a worker exited: starting another in its place');
    const timer = setTimeout(() => {
      this.restarts.delete(timer);
      if (!this.stopping) this.fork();
    }, delayMs);
    this.restarts.add(timer);
  }
}
