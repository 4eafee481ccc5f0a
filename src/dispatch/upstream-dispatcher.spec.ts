import assert from 'node:assert/strict';
import type { RedisService } from '../redis/redis.service';
import { describe, it, before } from 'node:test';
import { Logger } from '@nestjs/common';
import type { BreakerStateStore } from '../breaker/breaker-state.store';
import { BreakerService } from '../breaker/breaker.service';
import { ClusterIdentity } from '../cluster/cluster-identity';
import { ClusterLeases } from '../cluster/cluster-leases.service';
import { ClusterSignals } from '../cluster/cluster-signals.service';
import { FakeClock } from '../common/clock';
import {
  CancelledError,
  CircuitOpenError,
  QueueTimeoutError,
  RequestTimeoutError,
  UpstreamClientError,
  UpstreamError,
  UpstreamRateLimitedError,
  UpstreamTimeoutError,
} from '../common/errors';
import { RandomSource } from '../common/random';
import type { breakerConfig, retryConfig, serverConfig } from '../config/sections';
import { Sleeper } from '../retry/sleeper';
import type { UpstreamCallOptions, UpstreamClient } from '../upstream/upstream-client';
import { UpstreamLeases } from '../upstream/upstream-leases.service';
import { UpstreamOutcome, UpstreamOutcomes } from '../upstream/upstream-outcomes';
import { UpstreamRegistry } from '../upstream/upstream-registry';
import type { InferencePayload, UpstreamAnswer, UpstreamDefinition } from '../upstream/upstream.types';
import { RetryBudgetService } from './retry-budget.service';
import { TracingService } from '../tracing/tracing.service';
import { UpstreamDispatcher } from './upstream-dispatcher';
import type { KvCachePressure } from '../upstream/kv-cache-pressure';
import { FirstByteTimes } from './first-byte-times';
import { HedgeBudgetService } from './hedge-budget.service';
import { HedgedAttempt } from './hedged-attempt';
import { PrefixIndex } from './prefix-index.service';
import { RoutePlanner } from './route-planner';
import { UpstreamAttempt } from './upstream-attempt';

/** One scripted attempt: what the upstream does, and how long it takes on the fake clock. */
type Step =
  | { ok: true; takesMs?: number }
  | { status: number; retryAfterMs?: number; takesMs?: number }
  | { clientStatus: number }
  | { timeout: true; takesMs: number }
  | { cancel: true }
  | { stream: string[]; breakAfter?: boolean };

interface Call {
  upstream: string;
  model: string;
  body: Record<string, unknown>;
  options: UpstreamCallOptions;
}

/** Plays each upstream's script in order; an upstream without steps left answers 200. */
class ScriptedClient {
  readonly calls: Call[] = [];
  constructor(
    private readonly clock: FakeClock,
    private readonly scripts: Record<string, Step[]>,
  ) {}

  async send(upstream: UpstreamDefinition, payload: InferencePayload, options: UpstreamCallOptions): Promise<UpstreamAnswer> {
    this.calls.push({ upstream: upstream.name, model: payload.model, body: payload.body, options });
    const step = this.scripts[upstream.name]?.shift() ?? { ok: true };
    if ('takesMs' in step && step.takesMs) this.clock.advance(step.takesMs);
    if ('ok' in step) return { kind: 'json', status: 200, body: { model: payload.model, from: upstream.name } };
    if ('status' in step) throw new UpstreamError(`${upstream.name} answered ${step.status}`, step.status, { retryAfterMs: step.retryAfterMs });
    if ('clientStatus' in step) throw new UpstreamClientError(step.clientStatus, { message: 'prompt too long' });
    if ('timeout' in step) throw new UpstreamTimeoutError(`${upstream.name} timed out`);
    if ('cancel' in step) throw new CancelledError('client');
    const [first, ...rest] = step.stream;
    const breakAfter = step.breakAfter;
    return {
      kind: 'stream',
      status: 200,
      first: [first],
      rest: (async function* () {
        yield* rest;
        if (breakAfter) throw new UpstreamError(`${upstream.name} closed the stream before [DONE]`);
      })(),
    };
  }
}

/** Waits by moving the fake clock; records every wait. */
class FakeSleeper extends Sleeper {
  readonly waits: number[] = [];
  constructor(private readonly clock: FakeClock) {
    super();
  }
  async sleep(ms: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw signal.reason;
    this.waits.push(ms);
    this.clock.advance(ms);
  }
}

class FixedRandom extends RandomSource {
  constructor(private readonly value = 0.5) {
    super();
  }
  next(): number {
    return this.value;
  }
}

/** Redis that is away: upstream leases stay local to this instance. */
const LOCAL_REDIS = { client: { status: 'end' } } as unknown as RedisService;

/** Shared state that is never written: breakers stay local, and this lone instance always wins the probe permit. */
const LOCAL_STORE = {
  onNotice: () => undefined,
  onResync: () => undefined,
  start: async () => undefined,
  writeOpen: async () => false,
  writeClosed: async () => false,
  claimProbe: async () => true,
  isOpen: async () => false,
  readOpen: async () => [],
} as unknown as BreakerStateStore;

// prettier-ignore
const BREAKER: ReturnType<typeof breakerConfig> = {
  windowSize: 10, minCalls: 4, failureRatio: 0.5, windowMs: 60_000, cooldownMs: 1_000,
  halfOpenProbes: 1, slowCallMs: 5_000, slowCallRatio: 2, probeRoundMs: 5_000,
};
const RETRY: ReturnType<typeof retryConfig> = { maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 1_000, budgetRatio: 0.2 };

function upstream(name: string, models: string[], weight = 1): UpstreamDefinition {
  return { name, baseUrl: `http://${name}.test/v1`, models, weight };
}

interface SetupOptions {
  upstreams?: UpstreamDefinition[];
  fallbacks?: Record<string, string[]>;
  scripts?: Record<string, Step[]>;
  retry?: Partial<ReturnType<typeof retryConfig>>;
  breaker?: Partial<ReturnType<typeof breakerConfig>>;
  routing?: 'least-loaded' | 'weighted' | 'prefix-aware';
}

function setup(options: SetupOptions = {}) {
  const clock = new FakeClock();
  const registry = new UpstreamRegistry({ upstreams: options.upstreams ?? [upstream('a', ['m'])], fallbacks: options.fallbacks ?? {} });
  const client = new ScriptedClient(clock, options.scripts ?? {});
  const breakerSettings = { ...BREAKER, ...options.breaker };
  const breakers = new BreakerService(breakerSettings, LOCAL_STORE, clock);
  const retry = { ...RETRY, ...options.retry };
  const budget = new RetryBudgetService(retry, clock);
  const outcomes = new UpstreamOutcomes();
  const recorded: UpstreamOutcome[] = [];
  outcomes.onOutcome((event) => recorded.push(event));
  const retries: string[] = [];
  outcomes.onRetry((event) => retries.push(`${event.upstream}:${event.reason}`));
  const fallbacks: string[] = [];
  outcomes.onFallback((event) => fallbacks.push(`${event.from}->${event.to}@${event.upstream}`));
  const sleeper = new FakeSleeper(clock);
  const server = { streamIdleTimeoutMs: 1_000 } as ReturnType<typeof serverConfig>;
  const random = new FixedRandom();
  const routing = options.routing ?? 'weighted';
  // Redis is away here: a capped upstream is bounded by this instance's own permits.
  const leases = new UpstreamLeases(
    LOCAL_REDIS,
    registry,
    { routing },
    clock,
    new ClusterLeases(LOCAL_REDIS, new ClusterIdentity(), { lockMs: 5_000 }),
    new ClusterSignals(LOCAL_REDIS, clock),
  );
  const firstBytes = new FirstByteTimes();
  const noPressure = { pressured: () => false } as unknown as KvCachePressure;
  const router = new RoutePlanner(leases, noPressure, new PrefixIndex(LOCAL_REDIS, clock, { indexMaxBlocks: 1000, indexTtlMs: 60_000 }), random, {
    mode: routing,
    blockChars: 64,
    loadEpsilon: 0.25,
  });
  const tracing = new TracingService({ enabled: false, serviceName: 'test' });
  const attempt = new UpstreamAttempt(client as unknown as UpstreamClient, breakers, outcomes, clock, tracing, server, firstBytes);
  const hedged = new HedgedAttempt(attempt, registry, breakers, leases, new HedgeBudgetService(LOCAL_REDIS, clock, { hedgeBudgetRatio: 0.05 }), firstBytes, outcomes, clock, sleeper);
  const dispatcher = new UpstreamDispatcher(registry, router, breakers, leases, hedged, budget, outcomes, clock, random, sleeper, retry);
  const routed: string[] = [];
  outcomes.onRouted((event) => routed.push(event.upstream));
  const controller = new AbortController();
  const dispatch = (model = 'm', extra: { deadlineInMs?: number; retriesAllowed?: boolean; stream?: boolean } = {}) =>
    dispatcher.dispatch(
      { path: '/chat/completions', model, body: { model, messages: [] }, stream: extra.stream ?? false },
      { signal: controller.signal, deadlineAt: clock.now() + (extra.deadlineInMs ?? 10_000), retriesAllowed: extra.retriesAllowed ?? true },
    );
  /** Opens a breaker by scripted failures of calls that never reach any client. */
  const trip = (upstreamName: string, model: string) => {
    for (let i = 0; i < breakerSettings.minCalls; i++) {
      const answer = breakers.tryAcquire(upstreamName, model);
      assert.ok(answer.allowed);
      breakers.onFailure(answer.lease, 10);
    }
    assert.equal(breakers.isOpen(upstreamName, model), true);
  };
  return { clock, client, breakers, budget, sleeper, dispatcher, dispatch, controller, recorded, retries, fallbacks, trip, routed };
}

describe('UpstreamDispatcher', () => {
  before(() => Logger.overrideLogger(false));

  describe('retries', () => {
    it('retries a 503 after a full-jitter wait, then serves', async () => {
      const t = setup({ scripts: { a: [{ status: 503 }, { ok: true }] } });
      const answer = await t.dispatch();
      assert.equal(answer.upstream, 'a');
      assert.equal(t.client.calls.length, 2);
      assert.deepEqual(t.sleeper.waits, [50], 'random 0.5 × base 100 × 2^0');
      assert.deepEqual(t.retries, ['a:status_503']);
      assert.deepEqual(
        t.recorded.map((o) => o.outcome),
        ['failure', 'success'],
      );
      const view = t.breakers.get('a:m');
      assert.equal(view?.calls, 2);
      assert.equal(view?.failures, 1);
    });

    it('stops after RETRY_MAX_ATTEMPTS attempts and reports the upstream error', async () => {
      const t = setup({ scripts: { a: [{ status: 502 }, { status: 502 }, { status: 502 }, { ok: true }] }, retry: { maxAttempts: 3 } });
      await assert.rejects(t.dispatch(), (e: unknown) => e instanceof UpstreamError && e.upstreamStatus === 502);
      assert.equal(t.client.calls.length, 3);
      assert.deepEqual(t.sleeper.waits, [50, 100], 'exponential envelope: 100·2^0, 100·2^1, halved by the draw');
    });

    it('stops retrying once its own failures open the breaker', async () => {
      const t = setup({ scripts: { a: [{ status: 503 }, { status: 503 }, { ok: true }] }, breaker: { minCalls: 2 } });
      await assert.rejects(t.dispatch(), (e: unknown) => e instanceof UpstreamError && e.upstreamStatus === 503);
      assert.equal(t.client.calls.length, 2);
      assert.equal(t.breakers.get('a:m')?.state, 'open');
    });

    it('does not retry a client error (400) and does not count it against the breaker', async () => {
      const t = setup({ scripts: { a: [{ clientStatus: 400 }, { clientStatus: 400 }, { clientStatus: 400 }] } });
      for (let i = 0; i < 3; i++) {
        await assert.rejects(t.dispatch(), (e: unknown) => e instanceof UpstreamClientError && e.status === 400);
      }
      assert.equal(t.client.calls.length, 3, 'one call per request');
      assert.equal(t.sleeper.waits.length, 0);
      const view = t.breakers.get('a:m');
      assert.equal(view?.state, 'closed');
      assert.equal(view?.calls, 0, 'client errors are not outcomes of the upstream');
    });

    it('honours a Retry-After that fits the deadline', async () => {
      const t = setup({ scripts: { a: [{ status: 429, retryAfterMs: 1_000 }, { ok: true }] } });
      const answer = await t.dispatch('m', { deadlineInMs: 5_000 });
      assert.equal(answer.upstream, 'a');
      assert.deepEqual(t.sleeper.waits, [1_000], 'the hint, not the backoff');
    });

    it('fails at once with upstream_rate_limited when the Retry-After is longer than the deadline, its delay bounded by the deadline', async () => {
      const t = setup({ scripts: { a: [{ status: 429, retryAfterMs: 5_000 }, { ok: true }] } });
      await assert.rejects(
        t.dispatch('m', { deadlineInMs: 3_000 }),
        (e: unknown) => e instanceof UpstreamRateLimitedError && e.code === 'upstream_rate_limited' && e.retryAfterMs === 3_000,
      );
      assert.equal(t.client.calls.length, 1);
      assert.deepEqual(t.sleeper.waits, []);
    });

    it('does not retry when the retry budget is spent', async () => {
      const t = setup({ scripts: { a: [{ status: 503 }, { ok: true }] }, retry: { budgetRatio: 0 } });
      while (t.budget.tryWithdraw()); // the floor of 1 retry/s over 10 s, used up by earlier retries
      await assert.rejects(t.dispatch(), (e: unknown) => e instanceof UpstreamError && e.upstreamStatus === 503);
      assert.equal(t.client.calls.length, 1);
      assert.deepEqual(t.retries, []);
    });

    it('does not retry in the degraded strategy', async () => {
      const t = setup({ scripts: { a: [{ status: 503 }, { ok: true }] } });
      await assert.rejects(t.dispatch('m', { retriesAllowed: false }), UpstreamError);
      assert.equal(t.client.calls.length, 1);
    });

    it('gives up retrying when the backoff does not fit before the deadline', async () => {
      const t = setup({ scripts: { a: [{ status: 503, takesMs: 980 }, { ok: true }] } });
      await assert.rejects(t.dispatch('m', { deadlineInMs: 1_000 }), (e: unknown) => e instanceof UpstreamError && e.upstreamStatus === 503);
      assert.equal(t.client.calls.length, 1, 'a 50 ms wait does not fit in the 20 ms left');
    });

    it("bounds each attempt's time to first byte by the time left", async () => {
      const t = setup({ scripts: { a: [{ status: 503, takesMs: 400 }, { ok: true }] } });
      await t.dispatch('m', { deadlineInMs: 2_000 });
      assert.deepEqual(
        t.client.calls.map((c) => c.options.firstByteTimeoutMs),
        [2_000, 1_550],
      );
      assert.equal(t.client.calls[0].options.idleTimeoutMs, 1_000);
    });
  });

  describe('fallbacks', () => {
    const twoModels = () => ({
      upstreams: [upstream('a', ['m']), upstream('b', ['fb'])],
      fallbacks: { m: ['fb'] },
    });

    it("serves from the fallback model when the primary's breaker is open, without calling the primary", async () => {
      const t = setup(twoModels());
      t.trip('a', 'm');
      const answer = await t.dispatch('m');
      assert.equal(answer.upstream, 'b');
      assert.equal(answer.model, 'fb');
      assert.deepEqual(
        t.client.calls.map((c) => [c.upstream, c.model, c.body.model]),
        [['b', 'fb', 'fb']],
      );
    });

    it('reports a fallback that answered, and none when the model itself answered', async () => {
      const direct = setup(twoModels());
      await direct.dispatch('m');
      assert.deepEqual(direct.fallbacks, []);
      const t = setup(twoModels());
      t.trip('a', 'm');
      await t.dispatch('m');
      assert.deepEqual(t.fallbacks, ['m->fb@b']);
    });

    it("keeps the upstream's Retry-After when a 429 outlasts the retries within the deadline", async () => {
      const t = setup({ scripts: { a: [{ status: 429, retryAfterMs: 1_000 }, { status: 429, retryAfterMs: 1_000 }, { status: 429, retryAfterMs: 2_000 }] } });
      await assert.rejects(t.dispatch('m', { deadlineInMs: 10_000 }), (e: unknown) => e instanceof UpstreamRateLimitedError && e.retryAfterMs === 2_000);
      assert.equal(t.client.calls.length, 3);
    });

    it('falls back once retries on the primary are spent', async () => {
      const t = setup({ ...twoModels(), scripts: { a: [{ status: 500 }, { status: 500 }, { status: 500 }] } });
      const answer = await t.dispatch('m');
      assert.equal(answer.upstream, 'b');
      assert.deepEqual(
        t.client.calls.map((c) => c.upstream),
        ['a', 'a', 'a', 'b'],
      );
    });

    it('reports the first error, not the last', async () => {
      const t = setup({ ...twoModels(), scripts: { a: [{ status: 503 }], b: [{ status: 500 }] }, retry: { maxAttempts: 1 } });
      await assert.rejects(t.dispatch('m'), (e: unknown) => e instanceof UpstreamError && e.upstreamStatus === 503);
      assert.equal(t.client.calls.length, 2);
    });

    it('skips an open upstream among several serving the model', async () => {
      const t = setup({ upstreams: [upstream('a', ['m'], 5), upstream('b', ['m'], 1)] });
      t.trip('a', 'm');
      const answer = await t.dispatch('m');
      assert.equal(answer.upstream, 'b');
      assert.deepEqual(
        t.client.calls.map((c) => c.upstream),
        ['b'],
      );
    });

    it('answers circuit_open with the soonest probe time when every candidate is open', async () => {
      const t = setup(twoModels());
      t.trip('a', 'm');
      t.clock.advance(400);
      t.trip('b', 'fb');
      assert.deepEqual(t.dispatcher.availability('m'), { available: false, retryInMs: 600 });
      await assert.rejects(t.dispatch('m'), (e: unknown) => e instanceof CircuitOpenError && e.retryAfterMs === 600);
      assert.equal(t.client.calls.length, 0);
    });

    it('tries a fallback after a Retry-After that does not fit, and still reports the first error if all fail', async () => {
      const t = setup({ ...twoModels(), scripts: { a: [{ status: 429, retryAfterMs: 60_000 }], b: [{ status: 503 }, { status: 503 }, { status: 503 }] } });
      await assert.rejects(t.dispatch('m'), (e: unknown) => e instanceof UpstreamRateLimitedError && e.cause instanceof UpstreamError && e.cause.upstreamStatus === 429);
      assert.deepEqual(
        t.client.calls.map((c) => c.upstream),
        ['a', 'b', 'b', 'b'],
      );
    });
  });

  describe('what the breaker counts', () => {
    it('does not count cancellations, and a cancelled probe frees its slot', async () => {
      const t = setup({ scripts: { a: [{ cancel: true }] } });
      t.trip('a', 'm');
      t.clock.advance(BREAKER.cooldownMs);
      await assert.rejects(t.dispatch(), CancelledError);
      assert.equal(t.breakers.get('a:m')?.state, 'half_open');
      assert.equal(t.breakers.get('a:m')?.probesInFlight, 0);
      const answer = await t.dispatch();
      assert.equal(answer.upstream, 'a', 'the freed slot lets the next probe through');
      assert.equal(t.breakers.get('a:m')?.state, 'closed');
    });

    it('counts timeouts and connection errors', async () => {
      const t = setup({ scripts: { a: [{ timeout: true, takesMs: 100 }, { status: 503 }] }, retry: { maxAttempts: 1 }, breaker: { minCalls: 2 } });
      await assert.rejects(t.dispatch(), UpstreamTimeoutError);
      await assert.rejects(t.dispatch(), UpstreamError);
      assert.equal(t.breakers.get('a:m')?.state, 'open');
    });

    it('drops work whose deadline has passed without calling or judging the upstream (queue_timeout: never called)', async () => {
      const t = setup();
      await assert.rejects(t.dispatch('m', { deadlineInMs: 0 }), QueueTimeoutError);
      assert.equal(t.client.calls.length, 0);
      assert.equal(t.breakers.get('a:m')?.calls ?? 0, 0);
    });

    it('stops between retries when the request is cancelled', async () => {
      const t = setup({ scripts: { a: [{ status: 503 }, { ok: true }] } });
      t.sleeper.sleep = async () => {
        t.controller.abort(new CancelledError('job_cancel'));
        throw t.controller.signal.reason;
      };
      await assert.rejects(t.dispatch(), (e: unknown) => e instanceof CancelledError && e.by === 'job_cancel');
      assert.equal(t.client.calls.length, 1);
    });
  });

  describe('streams', () => {
    it('judges a committed stream when it ends, and never retries after the first byte', async () => {
      const t = setup({ scripts: { a: [{ stream: ['1', '2'], breakAfter: true }] } });
      const answer = await t.dispatch('m', { stream: true });
      assert.equal(answer.kind, 'stream');
      if (answer.kind !== 'stream') return;
      assert.deepEqual(answer.first, ['1']);
      const seen: string[] = [];
      await assert.rejects(async () => {
        for await (const data of answer.rest) seen.push(data);
      }, UpstreamError);
      assert.deepEqual(seen, ['2']);
      assert.equal(t.client.calls.length, 1);
      assert.equal(t.breakers.get('a:m')?.failures, 1);
    });

    it('frees the probe slot of a stream whose reader gives up, even before reading', async () => {
      const t = setup({ scripts: { a: [{ stream: ['1', '2', '3'] }] } });
      t.trip('a', 'm');
      t.clock.advance(BREAKER.cooldownMs);
      const answer = await t.dispatch('m', { stream: true });
      assert.equal(t.breakers.get('a:m')?.probesInFlight, 1);
      if (answer.kind !== 'stream') assert.fail('expected a stream');
      await answer.rest[Symbol.asyncIterator]().return?.();
      assert.equal(t.breakers.get('a:m')?.probesInFlight, 0);
      assert.equal(t.breakers.get('a:m')?.state, 'half_open', 'a reader that left judges nothing');
    });

    it('settles a stream nobody reads when the request is aborted', async () => {
      const t = setup({ scripts: { a: [{ stream: ['1', '2'] }] } });
      t.trip('a', 'm');
      t.clock.advance(BREAKER.cooldownMs);
      await t.dispatch('m', { stream: true });
      t.controller.abort(new CancelledError('client'));
      assert.equal(t.breakers.get('a:m')?.probesInFlight, 0);
    });

    it('closes the breaker when a probing stream completes', async () => {
      const t = setup({ scripts: { a: [{ stream: ['1', '2'] }] } });
      t.trip('a', 'm');
      t.clock.advance(BREAKER.cooldownMs);
      const answer = await t.dispatch('m', { stream: true });
      if (answer.kind !== 'stream') assert.fail('expected a stream');
      for await (const _ of answer.rest);
      assert.equal(t.breakers.get('a:m')?.state, 'closed');
    });
  });

  describe('routing and bulkheads', () => {
    it('sends each attempt to the least loaded upstream: an open stream counts as load', async () => {
      const t = setup({ upstreams: [upstream('a', ['m']), upstream('b', ['m'])], routing: 'least-loaded', scripts: { a: [{ stream: ['1', '2'] }], b: [{ stream: ['1', '2'] }] } });
      const first = await t.dispatch('m', { stream: true });
      const second = await t.dispatch('m', { stream: true });
      assert.notEqual(first.upstream, second.upstream, 'the busy upstream is not chosen again');
      assert.deepEqual([...t.routed].sort(), ['a', 'b']);
    });

    it('never sends an upstream more than its maxConcurrency: the next request waits for a permit, then goes', async () => {
      const capped = { ...upstream('a', ['m']), maxConcurrency: 1 };
      const t = setup({ upstreams: [capped], scripts: { a: [{ stream: ['1', '2'] }, { ok: true }] } });
      const holding = await t.dispatch('m', { stream: true });
      let served = false;
      const waiting = t.dispatch('m').then((answer) => {
        served = true;
        return answer;
      });
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(t.client.calls.length, 1, 'no second call while the permit is held');
      assert.equal(served, false);
      if (holding.kind !== 'stream') assert.fail('expected a stream');
      for await (const _ of holding.rest);
      const answer = await waiting;
      assert.equal(answer.upstream, 'a');
      assert.equal(t.client.calls.length, 2);
    });

    it('a waiting request gives up at its deadline with a timeout, never calling the full upstream', async () => {
      const capped = { ...upstream('a', ['m']), maxConcurrency: 1 };
      const t = setup({ upstreams: [capped], scripts: { a: [{ stream: ['1', '2'] }] } });
      await t.dispatch('m', { stream: true });
      const waiting = t.dispatch('m', { deadlineInMs: 1000 });
      t.clock.advance(1000);
      await assert.rejects(waiting, QueueTimeoutError);
      assert.equal(t.client.calls.length, 1);
    });

    it('retries keep working under a cap; the next request waits for the permit the retry holds', async () => {
      const capped = { ...upstream('a', ['m']), maxConcurrency: 1 };
      const t = setup({ upstreams: [capped], scripts: { a: [{ status: 503 }, { stream: ['1', '2'] }, { ok: true }] } });
      // The first request fails once, then its retry holds the only permit with an open stream.
      const first = await t.dispatch('m', { stream: true });
      assert.equal(t.client.calls.length, 2);
      if (first.kind !== 'stream') assert.fail('expected a stream');
      const second = t.dispatch('m');
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(t.client.calls.length, 2);
      for await (const _ of first.rest);
      assert.equal((await second).upstream, 'a');
      assert.equal(t.client.calls.length, 3);
    });

    it('moves to a free upstream rather than wait when only one is at its cap', async () => {
      const t = setup({
        upstreams: [{ ...upstream('a', ['m']), maxConcurrency: 1 }, upstream('b', ['m'])],
        routing: 'least-loaded',
        scripts: { a: [{ stream: ['1', '2'] }], b: [{ stream: ['1', '2'] }, { ok: true }] },
      });
      const upstreams = [(await t.dispatch('m', { stream: true })).upstream, (await t.dispatch('m', { stream: true })).upstream, (await t.dispatch('m')).upstream];
      assert.equal(upstreams.filter((u) => u === 'a').length, 1, JSON.stringify(upstreams));
    });
  });

  it('keys client-named models of an open-ended upstream under a bounded set of breakers', async () => {
    const t = setup({ upstreams: [upstream('primary', [])] });
    for (let i = 0; i < 40; i++) await t.dispatch(`made-up-${i}`);
    assert.ok(t.breakers.list().length <= 33);
  });
});
