import 'reflect-metadata';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock } from '../common/clock';
import { InferenceProcessor } from './inference.processor';
import type { InferenceJobResult } from './inference-job';

const DONE: InferenceJobResult = { outcome: 'succeeded', status: 200, upstream: 'u', model: 'm', queueWaitMs: 0, durationMs: 1, attempts: 1 };

/** A job as the worker hands it out, recording how it was settled. */
function fakeJob(id: string) {
  const settled: string[] = [];
  return {
    id,
    opts: { removeOnComplete: true },
    settled,
    moveToDelayed: async () => void settled.push('delayed'),
    moveToWait: async () => void settled.push('wait'),
    moveToFailed: async () => void settled.push('failed'),
  };
}

/**
 * The worker's pull loop with fakes around it: `free` slots in Redis, `jobs` waiting in BullMQ, and
 * `process` standing for the job's run.
 */
function setup(options: {
  free: number;
  jobs: number;
  maxConcurrent?: number;
  process?: (id: string) => Promise<InferenceJobResult | 'key_at_cap'>;
  /** Called with what each take found (undefined: nothing waited). */
  onTake?: (id: string | undefined) => void;
}) {
  let free = options.free;
  let nextLease = 0;
  const waiting = Array.from({ length: options.jobs }, (_, i) => fakeJob(`j${i}`));
  const events: string[] = [];
  const slots = {
    claim: async () => (free > 0 ? (free--, { lease: `l${nextLease++}`, empty: false }) : { empty: waiting.length === 0 }),
    release: async (lease: string) => {
      free++;
      events.push(`release ${lease}`);
    },
    releaseAfter: async (lease: string) => {
      free++;
      events.push(`complete+release ${lease}`);
      return 1;
    },
    setTaker: () => undefined,
    onWake: () => undefined,
    onRenew: () => undefined,
  };
  const worker = {
    getNextJob: async () => {
      const job = waiting.shift();
      options.onTake?.(job?.id);
      return job;
    },
    backend: { client: Promise.resolve({}), execCommand: () => undefined, moveToCompletedArgs: () => [], finishedErrors: () => new Error('x') },
  };
  const processor = new InferenceProcessor(
    {} as never,
    {} as never,
    {} as never,
    {} as never,
    slots as never,
    new FakeClock() as never,
    { trackWork: () => () => undefined } as never,
    {} as never,
    {} as never,
    {} as never,
    {} as never,
    { maxConcurrent: options.maxConcurrent ?? 10, workerEnabled: true, lockMs: 30_000 } as never,
  );
  (processor as unknown as { worker: unknown }).worker = worker;
  processor.process = (async (job: { id: string }) => {
    events.push(`run ${job.id}`);
    return options.process ? options.process(job.id) : DONE;
  }) as never;
  return { processor, events, waiting };
}

async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

describe('InferenceProcessor: the pull loop', () => {
  it('takes a waiting job for every free slot, and gives back a slot it found no job for', async () => {
    const { processor, events } = setup({ free: 3, jobs: 2 });
    processor.pull();
    await settle();
    assert.deepEqual(events.filter((e) => e.startsWith('run')).sort(), ['run j0', 'run j1']);
    assert.ok(events.includes('release l2'), events.join(', '));
    // A finished job completes in BullMQ and gives its slot back in one step.
    assert.deepEqual(events.filter((e) => e.startsWith('complete+release')).sort(), ['complete+release l0', 'complete+release l1']);
  });

  it('never runs more jobs at once than MAX_CONCURRENT_REQUESTS, whatever Redis grants', async () => {
    const gates: (() => void)[] = [];
    const { processor, events } = setup({ free: 5, jobs: 5, maxConcurrent: 2, process: () => new Promise((resolve) => gates.push(() => resolve(DONE))) });
    processor.pull();
    await settle();
    assert.equal(events.filter((e) => e.startsWith('run')).length, 2);
    assert.equal(processor.canTake(), false);
    gates.forEach((open) => open());
    await settle();
    assert.equal(processor.canTake(), true);
  });

  it('a pull asked for while one runs is not lost: it runs once that one ends', async () => {
    let landed = false;
    // The first take finds nothing; a job lands just after, and its wake-up came while the loop ran.
    const { processor, events, waiting } = setup({
      free: 2,
      jobs: 0,
      onTake: (id) => {
        if (id === undefined && !landed) {
          landed = true;
          waiting.push(fakeJob('late'));
        }
      },
    });
    processor.pull();
    processor.pull();
    await settle();
    assert.deepEqual(events.filter((e) => e.startsWith('run')), ['run late']);
  });

  it('puts a job of a key at its cap back for a moment and frees its slot', async () => {
    const { processor, events, waiting } = setup({ free: 1, jobs: 1, process: async () => 'key_at_cap' });
    const job = waiting[0];
    processor.pull();
    await settle();
    assert.deepEqual(job.settled, ['delayed']);
    assert.ok(events.includes('release l0'), events.join(', '));
  });
});
