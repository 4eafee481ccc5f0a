import Redis from 'ioredis';
import { parseArgs } from 'node:util';
import OpenAI, { toFile } from 'openai';
import { startRedis } from '../test/support/redis-server';
import { startBenchGateway } from './bench-gateway';
import { pacedLoad } from './paced-load';
import { startSimulatorProcess } from './simulator-process';

/** Shape of the batch bench: a fixed upstream time, so capacity is known (slots / upstream time). */
export interface BatchBenchShape {
  lines: number;
  slots: number;
  upstreamMs: number;
  /** Interactive load as a share of capacity. */
  interactiveShare: number;
  seconds: number;
  connections: number;
}

export interface InteractiveRun {
  requestsPerSecond: number;
  failed: number;
  p50: number;
  p99: number;
}

/** What the batch bench measured. */
export interface BatchBenchResult {
  shape: BatchBenchShape;
  capacityPerSecond: number;
  withoutBatch: InteractiveRun;
  withBatch: InteractiveRun;
  /** p99 with the batch over p99 without, minus one. */
  p99Increase: number;
  /** Batch lines finished per second while interactive traffic ran. */
  batchLinesPerSecond: number;
  /** Capacity the interactive traffic left free (capacity minus interactive requests served per second). */
  freePerSecond: number;
  /** Batch lines finished per second once the batch ran alone: the capacity as measured rather than computed. */
  soloLinesPerSecond: number;
  /** batchLinesPerSecond / freePerSecond. */
  freeCapacityUsed: number;
  /** The batch ended `completed` with every line answered. */
  completed: boolean;
  /** From the batch's creation to `completed`. */
  batchSeconds: number;
  /** Redis memory per byte of JSONL: the input file, then the input and output files once done. */
  redisBytesPerInputByte: number;
  redisBytesPerFileByte: number;
  inputBytes: number;
  outputBytes: number;
}

export const BATCH_TARGETS = { p99Increase: 0.1, freeCapacityUsed: 0.9 };

function percentile(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] : NaN;
}

async function interactive(url: string, rate: number, shape: BatchBenchShape): Promise<InteractiveRun> {
  const startedAt = performance.now();
  const run = await pacedLoad(`${url}/v1/chat/completions`, rate, shape.connections, shape.seconds);
  const sorted = run.latenciesMs.sort((a, b) => a - b);
  // Served per second until the last answer: a gateway that falls behind shows here, not only in p99.
  const seconds = (performance.now() - startedAt) / 1000;
  return { requestsPerSecond: sorted.length / seconds, failed: run.failed, p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

async function usedMemory(redis: Redis): Promise<number> {
  return Number(/^used_memory:(\d+)/m.exec(await redis.info('memory'))?.[1] ?? NaN);
}

function batchInput(lines: number): string {
  let text = '';
  for (let i = 0; i < lines; i++) {
    text += JSON.stringify({ custom_id: `line-${i}`, method: 'POST', url: '/v1/chat/completions', body: { model: 'sim-small', messages: [{ role: 'user', content: `batch question ${i}` }], max_tokens: 4 } }) + '\n';
  }
  return text;
}

async function poll<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * Interactive requests at `interactiveShare` of capacity, paced evenly, through one gateway: first
 * alone, then with a batch of `lines` lines running. Reports the interactive p99 of both runs, how much
 * of the capacity left free the batch used meanwhile, and the Redis memory the files cost.
 */
export async function batchIdleCapacity(shape: BatchBenchShape): Promise<BatchBenchResult> {
  const redis = await startRedis();
  const simulator = await startSimulatorProcess(['--latency-ms', String(shape.upstreamMs)]);
  const gateway = await startBenchGateway({
    REDIS_URL: redis.url,
    UPSTREAM_URL: simulator.baseUrl,
    MAX_CONCURRENT_REQUESTS: String(shape.slots),
    MAX_QUEUE_SIZE: '10000',
    QUEUE_REJECTION_THRESHOLD: '1',
    BATCH_MAX_LINES: String(Math.max(shape.lines, 1)),
  });
  const memory = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 120_000 });
  try {
    const capacityPerSecond = (shape.slots * 1000) / shape.upstreamMs;
    const rate = capacityPerSecond * shape.interactiveShare;
    await pacedLoad(`${gateway.url}/v1/chat/completions`, rate, shape.connections, 3);
    const withoutBatch = await interactive(gateway.url, rate, shape);

    const text = batchInput(shape.lines);
    const before = await usedMemory(memory);
    const file = await client.files.create({ file: await toFile(Buffer.from(text), 'bench.jsonl'), purpose: 'batch' });
    const afterUpload = await usedMemory(memory);
    const createdAt = performance.now();
    const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' });
    await poll('the batch to run lines', async () => ((await client.batches.retrieve(batch.id)).request_counts?.completed ?? 0) > 0 || undefined, 30_000, 50);

    const doneAt = async () => ({ at: performance.now(), done: (await client.batches.retrieve(batch.id)).request_counts?.completed ?? 0 });
    const start = await doneAt();
    const withBatch = await interactive(gateway.url, rate, shape);
    const end = await doneAt();
    const batchLinesPerSecond = (end.done - start.done) / ((end.at - start.at) / 1000);

    const soloStart = await doneAt();
    await new Promise((r) => setTimeout(r, 5000));
    const soloEnd = await doneAt();
    const soloLinesPerSecond = (soloEnd.done - soloStart.done) / ((soloEnd.at - soloStart.at) / 1000);
    const finished = await poll('the batch to end', async () => {
      const b = await client.batches.retrieve(batch.id);
      return ['completed', 'failed', 'expired', 'cancelled'].includes(b.status) ? b : undefined;
    }, 30 * 60_000, 500);
    const batchSeconds = (performance.now() - createdAt) / 1000;
    const afterDone = await usedMemory(memory);
    const output = finished.output_file_id ? await client.files.retrieve(finished.output_file_id) : undefined;
    const outputBytes = output?.bytes ?? 0;
    const freePerSecond = Math.max(0, capacityPerSecond - withBatch.requestsPerSecond);
    return {
      shape,
      capacityPerSecond,
      withoutBatch,
      withBatch,
      p99Increase: withBatch.p99 / withoutBatch.p99 - 1,
      batchLinesPerSecond,
      freePerSecond,
      soloLinesPerSecond,
      freeCapacityUsed: freePerSecond > 0 ? batchLinesPerSecond / freePerSecond : NaN,
      completed: finished.status === 'completed' && finished.request_counts?.completed === shape.lines,
      batchSeconds,
      redisBytesPerInputByte: (afterUpload - before) / file.bytes,
      redisBytesPerFileByte: (afterDone - before) / (file.bytes + outputBytes),
      inputBytes: file.bytes,
      outputBytes,
    };
  } finally {
    memory.disconnect();
    await gateway.stop('SIGKILL');
    await simulator.stop();
    await redis.stop();
  }
}

const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
const ms = (x: number) => x.toFixed(1);

/** The batch bench as Markdown, with its verdicts against the targets. */
export function batchReport(r: BatchBenchResult): string {
  const s = r.shape;
  const met = (ok: boolean) => (ok ? 'met' : '**not met**');
  return [
    `### Batch lines on idle capacity (${s.lines.toLocaleString('en-US')}-line batch)`,
    '',
    `One gateway, ${s.slots} slots, upstream time ${s.upstreamMs} ms (capacity ${r.capacityPerSecond.toFixed(0)} req/s); interactive chat requests paced at ` +
      `${pct(s.interactiveShare)} of capacity for ${s.seconds} s over ${s.connections} connections, without and then with the batch running.`,
    '',
    '| run | interactive req/s | failed | p50 ms | p99 ms |',
    '| --- | --- | --- | --- | --- |',
    `| without the batch | ${r.withoutBatch.requestsPerSecond.toFixed(1)} | ${r.withoutBatch.failed} | ${ms(r.withoutBatch.p50)} | ${ms(r.withoutBatch.p99)} |`,
    `| with the batch | ${r.withBatch.requestsPerSecond.toFixed(1)} | ${r.withBatch.failed} | ${ms(r.withBatch.p50)} | ${ms(r.withBatch.p99)} |`,
    '',
    '| target | measured | verdict |',
    '| --- | --- | --- |',
    `| interactive p99 with the batch ≤ +${pct(BATCH_TARGETS.p99Increase)} | ${r.p99Increase >= 0 ? '+' : ''}${pct(r.p99Increase)} | ${met(r.p99Increase <= BATCH_TARGETS.p99Increase)} |`,
    `| batch uses ≥ ${pct(BATCH_TARGETS.freeCapacityUsed)} of the free capacity | ${r.batchLinesPerSecond.toFixed(1)} lines/s of ${r.freePerSecond.toFixed(1)} free = ${pct(r.freeCapacityUsed)} | ${met(r.freeCapacityUsed >= BATCH_TARGETS.freeCapacityUsed)} |`,
    `| the batch completes | ${r.completed ? 'completed' : 'did not complete'} in ${r.batchSeconds.toFixed(0)} s | ${met(r.completed)} |`,
    '',
    `Free capacity is computed (slots / upstream time, minus the interactive requests served per second); alone, the batch ran ${r.soloLinesPerSecond.toFixed(1)} lines/s of the ${r.capacityPerSecond.toFixed(0)} computed.`,
    '',
    `Redis memory: ${r.redisBytesPerInputByte.toFixed(2)} bytes per byte of the input file (${(r.inputBytes / 1e6).toFixed(2)} MB uploaded); ` +
      `${r.redisBytesPerFileByte.toFixed(2)} bytes per byte of input and output files once the batch is done (output ${(r.outputBytes / 1e6).toFixed(2)} MB).`,
  ].join('\n');
}

/** The shape `npm run bench` runs. */
export const BATCH_BENCH_SHAPE: BatchBenchShape = { lines: 10_000, slots: 16, upstreamMs: 200, interactiveShare: 0.8, seconds: 30, connections: 64 };

/**
 * The bench on its own: `node dist/bench/batch-idle-capacity.js [--lines N] [--slots N] [--upstream-ms N]
 * [--seconds N]` (a lighter shape for a busy machine, whose gateway cannot serve the default rate).
 */
if (require.main === module) {
  const { values } = parseArgs({ options: { lines: { type: 'string' }, slots: { type: 'string' }, 'upstream-ms': { type: 'string' }, seconds: { type: 'string' } } });
  const shape = {
    ...BATCH_BENCH_SHAPE,
    ...(values.lines ? { lines: Number(values.lines) } : {}),
    ...(values.slots ? { slots: Number(values.slots) } : {}),
    ...(values['upstream-ms'] ? { upstreamMs: Number(values['upstream-ms']) } : {}),
    ...(values.seconds ? { seconds: Number(values.seconds) } : {}),
  };
  void batchIdleCapacity(shape).then(
    (result) => {
      console.log(batchReport(result));
      process.exit(0);
    },
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
