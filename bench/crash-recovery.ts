import Redis from 'ioredis';
import { UpstreamSimulator } from '../src/simulator/simulator';
import type { GatewayProcess } from '../test/support/gateway-process';
import { startRedis, type TestRedis } from '../test/support/redis-server';
import { startBenchGateway } from './bench-gateway';

/** What happened after kill -9 of the instance holding every slot. */
export interface CrashResult {
  leaseMs: number;
  /** From the kill to the first upstream call made by the surviving instance. */
  firstCallMs: number;
  /** Whose call it was: a queued job, or a re-run of a job the dead instance was running. */
  firstCallWas: 'queued job' | 're-run of a cut job' | 'none';
  /** From the kill until every queued job had completed (on the survivor). */
  queuedCompletedMs: number;
  queuedJobs: number;
  queuedCompleted: number;
  /** From the kill until both jobs cut by the crash had reached the upstream again. */
  cutJobsRerunMs: number;
}

const HELD_USER = 'bench-held';
const QUEUED_USER = 'bench-queued';

function jobBody(user: string, latencyMs: number): string {
  return JSON.stringify({ model: 'sim-small', messages: [{ role: 'user', content: 'job' }], max_tokens: 4, user, x_sim: { latencyMs } });
}

async function submitJob(gateway: GatewayProcess, body: string): Promise<string> {
  const res = await fetch(`${gateway.url}/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(10_000) });
  const json = (await res.json()) as { id?: string };
  if (res.status !== 202 || !json.id) throw new Error(`POST /v1/jobs answered ${res.status}: ${JSON.stringify(json)}`);
  return json.id;
}

async function jobStatus(gateway: GatewayProcess, id: string): Promise<string | undefined> {
  const res = await fetch(`${gateway.url}/v1/jobs/${id}`, { signal: AbortSignal.timeout(5_000) }).catch(() => undefined);
  return res?.ok ? ((await res.json()) as { status?: string }).status : undefined;
}

/** Polls `probe` every `everyMs` until it holds; the elapsed ms since `from`, or NaN after `timeoutMs`. */
async function msUntil(from: number, probe: () => boolean | Promise<boolean>, timeoutMs: number, everyMs: number): Promise<number> {
  while (performance.now() - from < timeoutMs) {
    if (await probe()) return performance.now() - from;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return NaN;
}

async function waitUntil(what: string, probe: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  if (Number.isNaN(await msUntil(performance.now(), probe, timeoutMs, 20))) throw new Error(`timed out waiting for ${what}`);
}

/**
 * Two gateways on one Redis with `MAX_CONCURRENT_REQUESTS=2`. Instance A runs two long async jobs (both
 * slots), instance B is up as a worker and more async jobs wait in the queue; then A is killed with
 * SIGKILL, and the simulator's request count tells when B makes its first upstream call.
 */
export async function crashRecovery(leaseMs: number, queuedJobs: number): Promise<CrashResult> {
  const simulator = new UpstreamSimulator({ latencyMs: 0 });
  const { baseUrl } = await simulator.start();
  const gateways: GatewayProcess[] = [];
  let redis: TestRedis | undefined;
  let client: Redis | undefined;
  try {
    redis = await startRedis();
    client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    const store = client;
    const env = { REDIS_URL: redis.url, UPSTREAM_URL: baseUrl, MAX_CONCURRENT_REQUESTS: '2', QUEUE_LOCK_MS: String(leaseMs) };
    const doomed = await startBenchGateway(env);
    gateways.push(doomed);
    for (let i = 0; i < 2; i++) await submitJob(doomed, jobBody(HELD_USER, 30_000));
    await waitUntil('instance A to run both jobs', () => simulator.stats.running === 2, 15_000);
    const survivor = await startBenchGateway(env);
    gateways.push(survivor);
    const ids: string[] = [];
    for (let i = 0; i < queuedJobs; i++) ids.push(await submitJob(survivor, jobBody(QUEUED_USER, 0)));
    const waiting = async () => (await store.zcard('bulwark:inference:prioritized')) + (await store.llen('bulwark:inference:wait'));
    await waitUntil('the jobs to wait in the queue', async () => (await waiting()) === queuedJobs, 10_000);
    // Only generation calls count: instances also probe the upstream's /v1/models in the background.
    const calls = () => simulator.stats.requestsByPath['/v1/chat/completions'] ?? 0;
    const callsBefore = calls();
    const heldBefore = simulator.stats.requestsByUser[HELD_USER] ?? 0;
    const killedAt = performance.now();
    doomed.child.kill('SIGKILL');
    const firstCallMs = await msUntil(killedAt, () => calls() > callsBefore, 30_000, 1);
    const after = simulator.stats;
    const firstCallWas = Number.isNaN(firstCallMs) ? 'none' : (after.requestsByUser[QUEUED_USER] ?? 0) > 0 ? 'queued job' : 're-run of a cut job';
    let completed = 0;
    const queuedCompletedMs = await msUntil(
      killedAt,
      async () => {
        const statuses = await Promise.all(ids.map((id) => jobStatus(survivor, id)));
        completed = statuses.filter((s) => s === 'completed').length;
        return completed === ids.length;
      },
      30_000,
      50,
    );
    const cutJobsRerunMs = await msUntil(killedAt, () => (simulator.stats.requestsByUser[HELD_USER] ?? 0) >= heldBefore + 2, 30_000, 5);
    return { leaseMs, firstCallMs, firstCallWas, queuedCompletedMs, queuedJobs, queuedCompleted: completed, cutJobsRerunMs };
  } finally {
    for (const gateway of gateways) await gateway.stop('SIGKILL');
    client?.disconnect();
    await simulator.stop();
    await redis?.stop();
  }
}
