import { Injectable } from '@nestjs/common';
import { BreakerService } from '../breaker/breaker.service';
import { Clock } from '../common/clock';
import { Sleeper } from '../retry/sleeper';
import { UpstreamLeases } from '../upstream/upstream-leases.service';
import { UpstreamOutcomes } from '../upstream/upstream-outcomes';
import { UpstreamRegistry } from '../upstream/upstream-registry';
import type { InferencePayload, ServedAnswer, UpstreamDefinition } from '../upstream/upstream.types';
import { FirstByteTimes } from './first-byte-times';
import { HedgeBudgetService } from './hedge-budget.service';
import type { RequestRoute } from './route-planner';
import { AttemptTicket, UpstreamAttempt } from './upstream-attempt';

/** The least time left for which an upstream call is still started. */
export const MIN_ATTEMPT_MS = 50;

/** Why the slower of two hedged attempts was stopped: not a failure of its upstream. */
export class HedgeLostError extends Error {
  override readonly name = 'HedgeLostError';
  constructor() {
    super('another attempt of the same request answered first');
  }
}

/** What a hedged attempt needs of its request. */
export interface HedgeContext {
  signal: AbortSignal;
  deadlineAt: number;
  route: RequestRoute;
  /** Called when the hedge's call starts (it is an upstream call like any other). */
  onAttempt?: () => void;
}

interface Leg {
  controller: AbortController;
  result: Promise<ServedAnswer>;
}

/**
 * The attempt step, hedged where UPSTREAMS_FILE says so: when an attempt of a hedged model has sent no
 * byte after the model's p95 time to first byte (within the model's bounds), one more attempt starts on
 * another upstream of the model, with its own breaker lease and bulkhead permit, within the shared
 * hedge budget and never past the deadline. The first to answer wins; the other is aborted at once.
 * Models without `hedge` go straight to the attempt.
 */
@Injectable()
export class HedgedAttempt {
  constructor(
    private readonly attempt: UpstreamAttempt,
    private readonly registry: UpstreamRegistry,
    private readonly breakers: BreakerService,
    private readonly leases: UpstreamLeases,
    private readonly budget: HedgeBudgetService,
    private readonly firstBytes: FirstByteTimes,
    private readonly outcomes: UpstreamOutcomes,
    private readonly clock: Clock,
    private readonly sleeper: Sleeper,
  ) {}

  /** Counts one dispatched request toward the hedge budget. */
  recordCall(): void {
    this.budget.recordCall();
  }

  async run(ticket: AttemptTicket, payload: InferencePayload, context: HedgeContext): Promise<ServedAnswer> {
    const remainingMs = context.deadlineAt - this.clock.now();
    const policy = this.registry.hedgeFor(ticket.model);
    const others = policy ? this.registry.servingModel(ticket.model).filter((u) => u.name !== ticket.upstream.name) : [];
    if (!policy || others.length === 0) return this.attempt.run(ticket, payload, context.signal, remainingMs);
    const p95 = this.firstBytes.p95(ticket.model) ?? policy.maxDelayMs;
    const delayMs = Math.min(policy.maxDelayMs, Math.max(policy.minDelayMs, p95));
    const primary = this.leg(ticket, payload, context.signal, remainingMs);
    if (await this.settlesWithin(primary.result, delayMs, context.signal)) return primary.result;
    if (context.signal.aborted) return primary.result;
    const hedge = await this.startHedge(ticket.model, others, payload, context);
    if (!hedge) {
      this.outcomes.hedged({ model: ticket.model, outcome: 'skipped' });
      return primary.result;
    }
    return this.race(primary, hedge, ticket.model);
  }

  private leg(ticket: AttemptTicket, payload: InferencePayload, signal: AbortSignal, firstByteTimeoutMs: number): Leg {
    const controller = new AbortController();
    const result = this.attempt.run(ticket, payload, AbortSignal.any([signal, controller.signal]), firstByteTimeoutMs);
    // Whoever reads it later handles its failure; until then it must not count as unhandled.
    result.catch(() => undefined);
    return { controller, result };
  }

  /** True when `result` settles within `ms`; false when the time is up or `signal` aborts first. */
  private async settlesWithin(result: Promise<unknown>, ms: number, signal: AbortSignal): Promise<boolean> {
    const stop = new AbortController();
    const settled = result.then(
      () => true,
      () => true,
    );
    const elapsed = this.sleeper.sleep(ms, AbortSignal.any([signal, stop.signal])).then(
      () => false,
      () => false,
    );
    try {
      return await Promise.race([settled, elapsed]);
    } finally {
      stop.abort();
    }
  }

  /** The hedge's call on the best other upstream that takes it now, or undefined (the caller counts a skip). */
  private async startHedge(model: string, others: UpstreamDefinition[], payload: InferencePayload, context: HedgeContext): Promise<Leg | undefined> {
    for (const upstream of await context.route.order(model, others)) {
      if (context.deadlineAt - this.clock.now() <= MIN_ATTEMPT_MS) return undefined;
      const breaker = await this.breakers.acquire(upstream.name, model, upstream.models.length === 0);
      if (!breaker.allowed) continue;
      const permit = await this.leases.tryAcquire(upstream);
      if (!permit) {
        this.breakers.release(breaker.lease);
        continue;
      }
      if (!(await this.budget.tryTake())) {
        permit.release();
        this.breakers.release(breaker.lease);
        return undefined;
      }
      this.outcomes.routed({ upstream: upstream.name, model });
      context.onAttempt?.();
      context.route.started(model, upstream.name);
      const ticket = { upstream, model, lease: breaker.lease, permit, retry: 0 };
      return this.leg(ticket, payload, context.signal, context.deadlineAt - this.clock.now());
    }
    return undefined;
  }

  /** The first leg to answer; the other is aborted at once (or closed, if it answered too). */
  private race(primary: Leg, hedge: Leg, model: string): Promise<ServedAnswer> {
    const legs = [primary, hedge];
    return new Promise<ServedAnswer>((resolve, reject) => {
      let decided = false;
      const errors: unknown[] = [];
      legs.forEach((leg, i) => {
        leg.result.then(
          (answer) => {
            if (decided) return closeAnswer(answer);
            decided = true;
            const loser = legs[1 - i];
            loser.controller.abort(new HedgeLostError());
            loser.result.then(closeAnswer, () => undefined);
            this.outcomes.hedged({ model, outcome: i === 1 ? 'won' : 'lost' });
            resolve(i === 1 ? { ...answer, hedged: true } : answer);
          },
          (error: unknown) => {
            errors[i] = error;
            if (decided || errors.filter((e) => e !== undefined).length < 2) return;
            decided = true;
            this.outcomes.hedged({ model, outcome: 'lost' });
            reject(errors[0]);
          },
        );
      });
    });
  }
}

/** Ends an answer nobody will read: a stream is closed (which settles its attempt as cancelled). */
function closeAnswer(answer: ServedAnswer): void {
  if (answer.kind === 'stream') void answer.rest[Symbol.asyncIterator]().return?.()?.catch(() => undefined);
}
