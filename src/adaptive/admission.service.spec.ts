import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Logger } from '@nestjs/common';
import { FakeClock } from '../common/clock';
import { BulwarkError } from '../common/errors';
import { SeededRandomSource } from '../common/random';
import type { UpstreamDispatcher } from '../dispatch/upstream-dispatcher';
import type { QueueFigures, QueueSnapshot } from '../queue/queue-figures.service';
import type { QueueService } from '../queue/queue.service';
import type { UpstreamRegistry } from '../upstream/upstream-registry';
import type { AdaptiveService } from './adaptive.service';
import { AdmissionRequest, AdmissionService, RejectionReason } from './admission.service';
import type { Priority } from '../common/priority';
import type { ServiceTimes } from './service-times.service';
import { strategyEffects } from './strategy-effects';
import type { Strategy } from './health-score';

const MAX_QUEUE = 10;
const SLOTS = 2;

/** The figures and states the decision reads; each test changes only what its rule needs. */
interface World {
  fresh: boolean;
  waiting: number;
  active: number;
  strategy: Strategy;
  abandonedUse: number;
  knownModel: boolean;
  circuitOpen: boolean;
  queueWaitMs: number;
  serviceMs: number | undefined;
  /** Waiting requests of the caller's key. */
  keyWaiting: number;
}

const CALM: World = { fresh: true, waiting: 0, active: 0, strategy: 'healthy', abandonedUse: 0, knownModel: true, circuitOpen: false, queueWaitMs: 0, serviceMs: undefined, keyWaiting: 0 };

function setup(overrides: Partial<World> = {}, seed = 7) {
  const world: World = { ...CALM, ...overrides };
  const clock = new FakeClock();
  const noted: boolean[] = [];
  const snapshot = (): QueueSnapshot => ({
    waiting: world.waiting,
    byPriority: { high: 0, normal: world.waiting, low: 0 },
    active: world.active,
    localActive: world.active,
    averageServiceMs: 1000,
    fresh: world.fresh,
    refreshedAt: clock.now(),
  });
  const figures = {
    snapshot,
    estimateWaitMs: () => world.queueWaitMs,
    retryAfterMs: () => 1000,
    waitingOf: () => world.keyWaiting,
    withinFairShare: () => false,
  } as unknown as QueueFigures;
  let queueAccepted!: (priority: Priority) => void;
  const queueCore = { onAdmitted: (listener: (priority: Priority) => void) => (queueAccepted = listener) } as unknown as QueueService;
  const adaptive = {
    abandoned: { capacityUsed: () => world.abandonedUse, timeUntilResetMs: () => 60_000 },
    get strategy() {
      return world.strategy;
    },
    freshEffects: () => strategyEffects(world.strategy, 256),
    effects: () => strategyEffects(world.strategy, 256),
    noteAdmission: (admitted: boolean) => noted.push(admitted),
  } as unknown as AdaptiveService;
  const dispatcher = {
    availability: () => (world.circuitOpen ? { available: false, retryInMs: 4000 } : { available: true }),
  } as unknown as UpstreamDispatcher;
  const registry = { knows: () => world.knownModel } as unknown as UpstreamRegistry;
  const serviceTimes = { estimateMs: () => world.serviceMs } as unknown as ServiceTimes;
  const admission = new AdmissionService(
    { queueRejectionThreshold: 0.5, abandonedRejectionThreshold: 0.5, maxAbandoned: 10, resetIntervalMs: 300_000, degradedMaxTokens: 256 },
    { maxQueueSize: MAX_QUEUE, maxConcurrent: SLOTS, jobResultTtlMs: 1000, jobTimeoutMs: 1000, lockMs: 1000, workerEnabled: true },
    figures,
    adaptive,
    dispatcher,
    registry,
    clock,
    new SeededRandomSource(seed),
    serviceTimes,
    queueCore,
  );
  const reasons: RejectionReason[] = [];
  const admitted: Priority[] = [];
  admission.onRejection((reason) => reasons.push(reason));
  admission.onAdmission((priority) => admitted.push(priority));
  const request = (priority: Priority = 'normal', deadlineInMs = 10_000): AdmissionRequest => ({
    priority,
    model: 'sim-small',
    deadlineAt: clock.now() + deadlineInMs,
    client: { id: 'key_a', weight: 1, queueShare: 0.5 },
  });
  return { admission, world, clock, reasons, admitted, noted, request, queueAccepted: (p: Priority) => queueAccepted(p) };
}

/** The code of the error the door or the decision throws, or `admitted`. */
function decide(admission: AdmissionService, request: AdmissionRequest): string {
  try {
    const atDoor = admission.refusalForAll() ?? admission.refusalForKey(() => request.client);
    if (atDoor) throw atDoor;
    admission.decide(request);
    return 'admitted';
  } catch (error) {
    assert.ok(error instanceof BulwarkError, `expected a typed error, got ${String(error)}`);
    return error.code;
  }
}

describe('AdmissionService: the decision table', () => {
  it('admits a request on a calm gateway and counts nothing until the queue core took it', () => {
    const { admission, reasons, admitted, noted, request, queueAccepted } = setup();
    assert.equal(decide(admission, request()), 'admitted');
    assert.deepEqual([reasons, admitted, noted], [[], [], []]);
    queueAccepted('normal');
    assert.deepEqual([admitted, noted], [['normal'], [true]]);
  });

  it('decides once: priority, key caps, deadline, size and retries travel in one admission', () => {
    const { admission, clock } = setup({ serviceMs: 700 });
    const decided = admission.decide({ priority: 'low', model: 'sim-small', deadlineAt: clock.now() + 5000, client: { id: 'key_b', weight: 3, maxConcurrent: 2, queueShare: 0.3 } });
    assert.deepEqual(decided, {
      priority: 'low',
      client: { id: 'key_b', weight: 3, maxWaiting: 3, maxRunning: 2 },
      deadlineAt: clock.now() + 5000,
      expectedServiceMs: 700,
      retriesAllowed: true,
    });
  });

  // Each row: the world, the code returned and the reason counted; rows are in rule order, and each
  // row's world also breaks every later rule, so a rule checked out of order would show.
  const LATER_RULES_BROKEN: Partial<World> = { strategy: 'critical', waiting: 9, active: SLOTS, queueWaitMs: 60_000, serviceMs: 60_000 };
  const rows: [string, Partial<World>, string, RejectionReason | undefined][] = [
    ['store unreachable', { ...LATER_RULES_BROKEN, fresh: false, waiting: MAX_QUEUE, abandonedUse: 1, knownModel: false, circuitOpen: true }, 'load_shed', 'store_unavailable'],
    ['queue full', { ...LATER_RULES_BROKEN, waiting: MAX_QUEUE, abandonedUse: 1, knownModel: false, circuitOpen: true }, 'queue_full', 'queue_full'],
    ['abandoned capacity exhausted', { ...LATER_RULES_BROKEN, abandonedUse: 1, knownModel: false, circuitOpen: true }, 'load_shed', 'load_shed_abandoned'],
    ['the key at its share of the queue (at the door, from the figures)', { ...LATER_RULES_BROKEN, keyWaiting: 5, knownModel: false, circuitOpen: true }, 'key_queue_share_exceeded', undefined],
    ['unknown model (a 404, not a refusal)', { ...LATER_RULES_BROKEN, knownModel: false, circuitOpen: true }, 'model_not_found', undefined],
    ['every upstream open', { ...LATER_RULES_BROKEN, circuitOpen: true }, 'circuit_open', 'circuit_open'],
    ['strategy critical under contention', { ...LATER_RULES_BROKEN }, 'load_shed', 'load_shed_strategy'],
    ['queue fill past the threshold', { ...LATER_RULES_BROKEN, strategy: 'healthy', waiting: MAX_QUEUE - 0.001, abandonedUse: 0.99 }, 'load_shed', 'load_shed_queue'],
    ['abandoned use past the threshold', { ...LATER_RULES_BROKEN, strategy: 'healthy', waiting: 1, abandonedUse: 0.999 }, 'load_shed', 'load_shed_abandoned'],
    ['queue wait beyond the deadline', { strategy: 'healthy', waiting: 1, active: SLOTS, queueWaitMs: 20_000 }, 'deadline_unreachable', 'deadline_unreachable'],
  ];
  for (const [name, world, code, reason] of rows) {
    it(`refuses: ${name} → ${code}${reason ? ` (${reason})` : ''}`, () => {
      const { admission, reasons, admitted, noted, request } = setup(world);
      assert.equal(decide(admission, request('normal')), code);
      assert.deepEqual(reasons, reason ? [reason] : []);
      assert.deepEqual(admitted, []);
      assert.deepEqual(noted, reason ? [false] : []);
    });
  }

  it('lets high priority through the strategy and the graduated rules short of full', () => {
    const { admission, request } = setup({ strategy: 'critical', waiting: MAX_QUEUE - 1, active: SLOTS, abandonedUse: 0.99 });
    assert.equal(decide(admission, request('high')), 'admitted');
  });

  it('sheds graduated per priority with the seeded random source: low more often than normal', () => {
    const { admission, request } = setup({ waiting: 8, active: SLOTS }, 42);
    const refused = (priority: Priority) => Array.from({ length: 200 }, () => decide(admission, request(priority))).filter((c) => c !== 'admitted').length;
    const low = refused('low');
    const normal = refused('normal');
    assert.ok(low > normal && normal > 0 && low < 200, `low ${low}, normal ${normal}`);
  });

  it('never wastes a free slot: with nobody waiting and a slot free, every strategy admits every priority', () => {
    for (const strategy of ['healthy', 'stressed', 'degraded', 'critical'] as const) {
      const { admission, request } = setup({ strategy, waiting: 0, active: SLOTS - 1, abandonedUse: 0.95 });
      for (const priority of ['high', 'normal', 'low'] as const) assert.equal(decide(admission, request(priority)), 'admitted', `${strategy}/${priority}`);
    }
  });

  it('restricts as soon as there is contention: someone waiting, or every slot busy', () => {
    assert.equal(decide(setup({ strategy: 'critical', waiting: 1, active: 0 }).admission, setup().request('normal')), 'load_shed');
    assert.equal(decide(setup({ strategy: 'critical', waiting: 0, active: SLOTS }).admission, setup().request('normal')), 'load_shed');
  });

  it("adds the request's own estimated service time to the queue wait", () => {
    const big = setup({ queueWaitMs: 400, serviceMs: 700 });
    assert.equal(decide(big.admission, big.request('normal', 1000)), 'deadline_unreachable');
    const small = setup({ queueWaitMs: 400, serviceMs: 500 });
    assert.equal(decide(small.admission, small.request('normal', 1000)), 'admitted');
  });

  it('never refuses on size while the model is not learned (cold start admits)', () => {
    const { admission, request } = setup({ queueWaitMs: 0, serviceMs: undefined });
    assert.equal(decide(admission, request('normal', 1)), 'admitted');
  });

  it('keeps counting when a listener throws', (t) => {
    Logger.overrideLogger(false);
    t.after(() => Logger.overrideLogger(['log', 'error', 'warn']));
    const { admission, admitted, noted, queueAccepted } = setup();
    admission.onAdmission(() => {
      throw new Error('listener broke');
    });
    queueAccepted('low');
    assert.deepEqual([admitted, noted], [['low'], [true]]);
  });
});
