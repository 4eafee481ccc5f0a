import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BreakerService } from '../breaker/breaker.service';
import { FakeClock } from '../common/clock';
import { Sleeper } from '../retry/sleeper';
import type { UpstreamLeases } from '../upstream/upstream-leases.service';
import { HedgeEvent, UpstreamOutcomes } from '../upstream/upstream-outcomes';
import { UpstreamRegistry } from '../upstream/upstream-registry';
import type { InferencePayload, ServedAnswer, UpstreamDefinition } from '../upstream/upstream.types';
import { FirstByteTimes } from './first-byte-times';
import type { HedgeBudgetService } from './hedge-budget.service';
import { HedgedAttempt, HedgeLostError } from './hedged-attempt';
import type { RequestRoute } from './route-planner';
import type { AttemptTicket, UpstreamAttempt } from './upstream-attempt';

const upstream = (name: string): UpstreamDefinition => ({ name, baseUrl: `http://${name}.test/v1`, models: ['m'], weight: 1 });
const PAYLOAD: InferencePayload = { path: '/chat/completions', model: 'm', body: { model: 'm', messages: [] }, stream: false };

/** A sleeper whose waits end when the test says so. */
class ManualSleeper extends Sleeper {
  private wakes: (() => void)[] = [];
  delays: number[] = [];
  sleep(ms: number, signal: AbortSignal): Promise<void> {
    this.delays.push(ms);
    return new Promise((resolve, reject) => {
      this.wakes.push(resolve);
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    });
  }
  fire(): void {
    for (const wake of this.wakes.splice(0)) wake();
  }
}

/** Attempts that answer when the test says so, and remember how they were aborted. */
function scriptedAttempts() {
  const calls: { upstream: string; answer(): void; aborted?: unknown }[] = [];
  const attempt = {
    run: (ticket: AttemptTicket, _payload: InferencePayload, signal: AbortSignal) =>
      new Promise<ServedAnswer>((resolve, reject) => {
        const call: (typeof calls)[number] = {
          upstream: ticket.upstream.name,
          answer: () => resolve({ kind: 'json', status: 200, body: { from: ticket.upstream.name }, upstream: ticket.upstream.name, model: ticket.model }),
        };
        signal.addEventListener('abort', () => {
          call.aborted = signal.reason;
          reject(signal.reason);
        });
        calls.push(call);
      }),
  } as unknown as UpstreamAttempt;
  return { attempt, calls };
}

function setup(options: { budget?: boolean; hedge?: boolean } = {}) {
  const clock = new FakeClock();
  const registry = new UpstreamRegistry({
    upstreams: [upstream('a'), upstream('b')],
    fallbacks: {},
    ...(options.hedge === false ? {} : { hedge: { m: { minDelayMs: 100, maxDelayMs: 400 } } }),
  });
  const { attempt, calls } = scriptedAttempts();
  const breakers = { acquire: async () => ({ allowed: true, lease: {} }), release: () => undefined } as unknown as BreakerService;
  let permits = 0;
  const leases = { tryAcquire: async () => ({ release: () => permits-- }) } as unknown as UpstreamLeases;
  const budget = { tryTake: async () => options.budget ?? true, recordCall: () => undefined } as unknown as HedgeBudgetService;
  const outcomes = new UpstreamOutcomes();
  const hedges: HedgeEvent[] = [];
  outcomes.onHedge((event) => hedges.push(event));
  const sleeper = new ManualSleeper();
  const firstBytes = new FirstByteTimes();
  const hedged = new HedgedAttempt(attempt, registry, breakers, leases, budget, firstBytes, outcomes, clock, sleeper);
  const route: RequestRoute = { order: async (_m, list) => [...list], started: () => undefined, done: () => undefined };
  const ticket: AttemptTicket = { upstream: upstream('a'), model: 'm', lease: {} as never, permit: { release: () => permits-- }, retry: 0 };
  const run = (deadlineInMs = 10_000) => hedged.run(ticket, PAYLOAD, { signal: new AbortController().signal, deadlineAt: clock.now() + deadlineInMs, route });
  return { run, calls, hedges, sleeper, firstBytes, clock };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('HedgedAttempt', () => {
  it('starts no hedge when the first attempt answers within the delay', async () => {
    const { run, calls, hedges } = setup();
    const answer = run();
    await tick();
    calls[0].answer();
    assert.equal((await answer).upstream, 'a');
    assert.equal(calls.length, 1);
    assert.deepEqual(hedges, []);
  });

  it('after the delay starts one hedge on another upstream; the first to answer wins and the other is aborted', async () => {
    const { run, calls, hedges, sleeper } = setup();
    const answer = run();
    await tick();
    sleeper.fire();
    for (let i = 0; i < 5 && calls.length < 2; i++) await tick();
    assert.deepEqual(calls.map((c) => c.upstream), ['a', 'b'], 'the hedge goes to the other upstream');
    calls[1].answer();
    const served = await answer;
    assert.deepEqual([served.upstream, served.hedged], ['b', true]);
    assert.ok(calls[0].aborted instanceof HedgeLostError, 'the slower call is aborted at once');
    assert.deepEqual(hedges, [{ model: 'm', outcome: 'won' }]);
  });

  it('counts a hedge that the first attempt beats as lost, and aborts the hedge', async () => {
    const { run, calls, hedges, sleeper } = setup();
    const answer = run();
    await tick();
    sleeper.fire();
    for (let i = 0; i < 5 && calls.length < 2; i++) await tick();
    calls[0].answer();
    const served = await answer;
    assert.equal(served.upstream, 'a');
    assert.equal(served.hedged, undefined);
    assert.ok(calls[1].aborted instanceof HedgeLostError);
    assert.deepEqual(hedges, [{ model: 'm', outcome: 'lost' }]);
  });

  it('skips the hedge when the budget refuses it or the deadline is too close, and waits for the first attempt', async () => {
    for (const variant of [{ budget: false, deadline: 10_000 }, { budget: true, deadline: 40 }]) {
      const { run, calls, hedges, sleeper } = setup({ budget: variant.budget });
      const answer = run(variant.deadline);
      await tick();
      sleeper.fire();
      for (let i = 0; i < 5; i++) await tick();
      assert.equal(calls.length, 1);
      assert.deepEqual(hedges, [{ model: 'm', outcome: 'skipped' }]);
      calls[0].answer();
      assert.equal((await answer).upstream, 'a');
    }
  });

  it('waits the p95 time to first byte of the model, within its bounds, and does not hedge models without a hedge entry', async () => {
    const { run, calls, sleeper, firstBytes } = setup();
    for (let i = 0; i < 20; i++) firstBytes.record('m', 250);
    const answer = run();
    await tick();
    assert.deepEqual(sleeper.delays, [250]);
    calls[0].answer();
    await answer;
    for (let i = 0; i < 200; i++) firstBytes.record('m', 5);
    void run();
    await tick();
    assert.equal(sleeper.delays[1], 100, 'never below minDelayMs');
    const plain = setup({ hedge: false });
    void plain.run();
    await tick();
    assert.deepEqual(plain.sleeper.delays, []);
  });
});
