import type { CrashResult } from './crash-recovery';
import type { AddedLatency, FixedRateRow, LatencyRow } from './latency';
import type { RedisCost } from './redis-stats';
import type { RefusalRow } from './refusals';
import type { SaturationResult } from './saturation';
import type { StreamShape, StreamsRow } from './streams';
import type { WorkersRow } from './workers';

/** Everything one `npm run bench` measured; a part is absent when it was not run. */
export interface BenchResults {
  setting: string;
  sequential?: { count: number; rows: LatencyRow[]; added: AddedLatency[] };
  saturation?: SaturationResult & { connections: number; seconds: number };
  fixedRate?: { rate: number; connections: number; seconds: number; hey: FixedRateRows; paced?: FixedRateRows };
  streams?: { shape: StreamShape; rows: StreamsRow[] };
  crash?: CrashResult;
  refusals?: { seconds: number; rows: RefusalRow[] };
  workers?: { connections: number; seconds: number; rows: WorkersRow[] };
}

/** One fixed-rate run of every path, and what each adds over direct. */
export interface FixedRateRows {
  rows: FixedRateRow[];
  added: AddedLatency[];
}

/** The targets each part is held to. */
export const TARGETS = {
  sequentialAddedP50Ms: 2,
  sequentialAddedP99Ms: 10,
  saturationShareOfDirect: 0.15,
  saturationShareAim: 0.25,
  mainThreadUsPerRequest: 200,
  redisUsecPerRequest: 25,
  gcPausesOver10Ms: 5,
  pacedAddedP50Ms: 1,
  pacedAddedP99Ms: 10,
  pacedAddedP99AimMs: 5,
  streamsLengthFactor: 1.5,
  streamsPeakRssMB: 250,
  crashMarginMs: 2000,
  refusalsPerSecond: 10_000,
  refusalP99At8Ms: 5,
  refusalP99At60Ms: 50,
};

const n = (value: number | undefined, digits = 2) => (value === undefined || Number.isNaN(value) ? '–' : value.toFixed(digits));
const int = (value: number | undefined) => (value === undefined || Number.isNaN(value) ? '–' : Math.round(value).toLocaleString('en-US'));
const verdict = (ok: boolean) => (ok ? 'met' : '**not met**');
const row = (cells: (string | number)[]) => `| ${cells.join(' | ')} |`;
const header = (cells: string[]) => [row(cells), row(cells.map(() => '---'))];

function byPath<T extends { path: string }>(rows: T[], path: string): T | undefined {
  return rows.find((r) => r.path === path);
}

/** Prints one part's figures as a console table, as soon as the part is done. */
export function printPart(results: BenchResults, part: keyof Omit<BenchResults, 'setting'>): void {
  const format = <T extends object>(rows: T[]) =>
    rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === 'number' && !Number.isInteger(v) ? Number(v.toFixed(2)) : v])));
  switch (part) {
    case 'sequential':
      console.log(`\n1a. Sequential requests, one connection (${results.sequential!.count} per path), ms:`);
      console.table(format(results.sequential!.rows));
      console.table(format(results.sequential!.added.map((a) => ({ ...a, path: `added by ${a.path}` }))));
      break;
    case 'saturation': {
      const s = results.saturation!;
      console.log(`\n1b. Saturation, closed loop: wrk -t1 -c${s.connections} -d${s.seconds}s:`);
      console.table(format(s.rows));
      console.log(
        `Redis per Bulwark request: ${n(s.redis.usecPerRequest)} µs in commands sent by Bulwark (${n(s.redis.callsPerRequest)} calls); ` +
          `sum of every commandstats line ${n(s.redis.usecAllLinesPerRequest)} µs (${n(s.redis.callsAllLinesPerRequest)} calls); ` +
          `redis-server main thread ${n(s.redis.cpuUsPerRequest)} µs CPU; queued (not fast lane): ${n(s.queuedShare * 100, 1)} %`,
      );
      console.table(format([...s.redis.top, ...s.redis.topInScripts.map((t) => ({ ...t, command: `${t.command} (in scripts)` }))]));
      console.log('Bulwark runtime during the run:', s.runtime);
      break;
    }
    case 'fixedRate': {
      const f = results.fixedRate!;
      console.log(`\n2. Fixed rate: hey -z ${f.seconds}s -c ${f.connections} -q ${n(f.rate / f.connections, 4)} (${f.rate} req/s in total, in bursts), ms:`);
      console.table(format([...f.hey.rows, ...f.hey.added.map((a) => ({ ...a, path: `added by ${a.path}` }))]));
      if (f.paced) {
        console.log(`Fixed rate, evenly paced: one request every ${n(1000 / f.rate)} ms for ${f.seconds} s, up to ${f.connections} connections, ms:`);
        console.table(format([...f.paced.rows.map(({ runtime, ...r }) => r), ...f.paced.added.map((a) => ({ ...a, path: `added by ${a.path}` }))]));
        const runtime = byPath(f.paced.rows, 'Bulwark')?.runtime;
        if (runtime) console.log('Bulwark runtime during the paced run:', runtime);
      }
      break;
    }
    case 'streams':
      console.log(`\n3. ${results.streams!.shape.count} concurrent streams of ${results.streams!.shape.chunks} chunks, ${results.streams!.shape.intervalMs} ms apart:`);
      console.table(format(results.streams!.rows.map(({ failures, ...r }) => ({ ...r, failed: Object.values(failures).reduce((a, b) => a + b, 0) }))));
      for (const r of results.streams!.rows) if (Object.keys(r.failures).length) console.log(`${r.path} failures:`, r.failures);
      break;
    case 'crash':
      console.log('\n4. Crash recovery (kill -9 of the instance holding both slots):');
      console.table(format([results.crash!]));
      break;
    case 'refusals':
      console.log(`\n5. Refusals under overload (wrk, 1 thread, ${results.refusals!.seconds} s each): queue held full (503), key at its queue share (429):`);
      console.table(format(results.refusals!.rows));
      break;
    case 'workers':
      console.log(`\n6. WORKERS: saturation (wrk -t1 -c${results.workers!.connections} -d${results.workers!.seconds}s) per setting, then SIGTERM:`);
      console.table(format(results.workers!.rows));
      break;
  }
}

/** The whole run as Markdown tables, each with its targets and whether they were met. */
export function markdown(results: BenchResults): string {
  const lines: string[] = [`Setting: ${results.setting}`, ''];
  const { sequential, saturation, fixedRate, streams, crash, refusals, workers } = results;
  if (sequential) {
    lines.push(`### Sequential requests (one keep-alive connection, ${int(sequential.count)} per path after 200 warm-up), ms`, '');
    lines.push(...header(['path', 'p50', 'p90', 'p99']));
    for (const r of sequential.rows) lines.push(row([r.path, n(r.p50), n(r.p90), n(r.p99)]));
    for (const a of sequential.added) lines.push(row([`**added by ${a.path}**`, n(a.p50), n(a.p90), n(a.p99)]));
    const b = byPath(sequential.added, 'Bulwark')!;
    lines.push('', `Target: added p50 ≤ ${TARGETS.sequentialAddedP50Ms} ms: ${verdict(b.p50 <= TARGETS.sequentialAddedP50Ms)}; p99 ≤ ${TARGETS.sequentialAddedP99Ms} ms: ${verdict(b.p99 <= TARGETS.sequentialAddedP99Ms)}.`, '');
  }
  if (saturation) {
    const direct = byPath(saturation.rows, 'direct')!;
    const bulwark = byPath(saturation.rows, 'Bulwark')!;
    const share = bulwark.requestsPerSecond / direct.requestsPerSecond;
    lines.push(`### Saturation throughput (closed loop, \`wrk -t1 -c${saturation.connections} -d${saturation.seconds}s\`)`, '');
    lines.push(...header(['path', 'req/s', '% of direct', 'failed', 'p50 ms', 'p99 ms', 'main-thread CPU µs/req', 'process CPU µs/req', 'main thread busy', 'machine idle']));
    const pct = (v: number | undefined) => (v === undefined ? '–' : `${n(v * 100, 0)} %`);
    for (const r of saturation.rows) {
      lines.push(
        row([r.path, int(r.requestsPerSecond), n((r.requestsPerSecond / direct.requestsPerSecond) * 100, 1), int(r.failed), n(r.p50), n(r.p99), int(r.mainThreadUsPerRequest), int(r.processUsPerRequest), pct(r.mainThreadBusy), pct(r.machineIdle)]),
      );
    }
    const redis = saturation.redis;
    lines.push(
      '',
      `Redis per Bulwark request: **${n(redis.usecPerRequest, 1)} µs** inside the ${n(redis.callsPerRequest)} commands Bulwark sent (\`INFO commandstats\`; a script's time includes the commands it runs); ` +
        `the plain sum of every commandstats line, which counts script-internal commands twice, is ${n(redis.usecAllLinesPerRequest, 1)} µs over ${n(redis.callsAllLinesPerRequest, 1)} calls; ` +
        `the redis-server main thread used ${n(redis.cpuUsPerRequest, 1)} µs of CPU per request (network handling included). ` +
        `${n(saturation.queuedShare * 100, 1)} % of requests went through the BullMQ queue instead of the fast lane.`,
    );
    const rt = saturation.runtime;
    lines.push(`Bulwark's garbage collection during the run: ${n(rt.gcMs, 0)} ms (${n((rt.gcMs * 1000) / bulwark.requests, 0)} µs per request) in ${int(rt.gcPauses)} pauses, ${int(rt.gcPausesOver10Ms)} of them 10 ms or longer.`);
    const list = (rows: RedisCost['top']) => rows.map((t) => `\`${t.command}\` ${n(t.callsPerRequest)}/req, ${n(t.usecPerRequest, 1)} µs/req`).join('; ');
    lines.push(`Commands sent by Bulwark: ${list(redis.top)}. Inside its scripts: ${list(redis.topInScripts)}.`, '');
    lines.push(
      `Targets: Bulwark ≥ ${TARGETS.saturationShareOfDirect * 100} % of direct (aim ${TARGETS.saturationShareAim * 100} %): ${verdict(share >= TARGETS.saturationShareOfDirect)} (${n(share * 100, 1)} %); ` +
        `main-thread CPU ≤ ${TARGETS.mainThreadUsPerRequest} µs/request: ${verdict((bulwark.mainThreadUsPerRequest ?? Infinity) <= TARGETS.mainThreadUsPerRequest)} (${int(bulwark.mainThreadUsPerRequest)} µs); ` +
        `Redis ≤ ${TARGETS.redisUsecPerRequest} µs per fast-lane request: ${verdict(redis.usecPerRequest <= TARGETS.redisUsecPerRequest)} (${n(redis.usecPerRequest, 1)} µs); ` +
        `at most ${TARGETS.gcPausesOver10Ms} GC pauses of 10 ms or longer: ${verdict(rt.gcPausesOver10Ms <= TARGETS.gcPausesOver10Ms)} (${int(rt.gcPausesOver10Ms)}).`,
      '',
    );
  }
  if (fixedRate) {
    const table = (runs: FixedRateRows, targets: boolean) => {
      lines.push(...header(['path', 'req/s', 'failed', 'p50', 'p90', 'p99']));
      for (const r of runs.rows) lines.push(row([r.path, int(r.requestsPerSecond), int(r.failed), n(r.p50), n(r.p90), n(r.p99)]));
      for (const a of runs.added) lines.push(row([`**added by ${a.path}**`, '', '', n(a.p50), n(a.p90), n(a.p99)]));
      const b = byPath(runs.added, 'Bulwark')!;
      lines.push(
        '',
        targets
          ? `Targets: Bulwark adds p50 ≤ ${TARGETS.pacedAddedP50Ms} ms: ${verdict(b.p50 <= TARGETS.pacedAddedP50Ms)}; p99 ≤ ${TARGETS.pacedAddedP99Ms} ms (aim ${TARGETS.pacedAddedP99AimMs} ms): ${verdict(b.p99 <= TARGETS.pacedAddedP99Ms)}.`
          : 'No target: bursts measure the time to drain a burst (the evenly paced run below is the one with targets).',
        '',
      );
    };
    lines.push(`### Latency at a fixed ${fixedRate.rate} req/s, \`hey -z ${fixedRate.seconds}s -c ${fixedRate.connections} -q ${n(fixedRate.rate / fixedRate.connections, 4)}\` (every worker fires on the same tick: bursts of ${fixedRate.connections}), ms`, '');
    table(fixedRate.hey, false);
    if (fixedRate.paced) {
      lines.push(`### Latency at a fixed ${fixedRate.rate} req/s, evenly paced (one request every ${n(1000 / fixedRate.rate)} ms, open loop, up to ${fixedRate.connections} connections), ms`, '');
      table(fixedRate.paced, true);
      const runtime = byPath(fixedRate.paced.rows, 'Bulwark')?.runtime;
      if (runtime) {
        lines.push(
          `Bulwark's runtime meanwhile (its /metrics): event-loop delay max ${n(runtime.lagMaxMs, 1)} ms, p99 ${n(runtime.lagP99Ms, 1)} ms ` +
            `(sampled every 10 ms, which the figures include); garbage collection ${n(runtime.gcMs, 0)} ms in ${int(runtime.gcPauses)} pauses, ${int(runtime.gcPausesOver10Ms)} of them 10 ms or longer.`,
          '',
        );
      }
    }
  }
  if (streams) {
    const { shape } = streams;
    const lengthMs = shape.chunks * shape.intervalMs;
    lines.push(`### ${int(shape.count)} concurrent streams (${shape.chunks} chunks, ${shape.intervalMs} ms apart: ${lengthMs / 1000} s each)`, '');
    lines.push(...header(['path', 'complete', 'slowest first chunk ms', 'longest first chunk → end ms', 'median completion ms', 'slowest completion ms', 'listen-queue overflows', 'peak RSS MB (RSS before)']));
    for (const r of streams.rows) {
      const rss = r.peakRssMB === undefined ? '–' : `${int(r.peakRssMB)} (${int(r.rssBeforeMB)})`;
      lines.push(row([r.path, `${r.complete} / ${r.streams}`, int(r.slowestFirstChunkMs), int(r.longestStreamingMs), int(r.medianCompletionMs), int(r.slowestCompletionMs), int(r.listenOverflows), rss]));
    }
    for (const r of streams.rows) {
      const reasons = Object.entries(r.failures).map(([reason, count]) => `${count} × ${reason.replace(/\s+/g, ' ')}`);
      if (reasons.length) lines.push('', `${r.path}, streams that did not complete: ${reasons.join('; ')}`);
    }
    const b = byPath(streams.rows, 'Bulwark')!;
    const limitMs = TARGETS.streamsLengthFactor * lengthMs;
    lines.push(
      '',
      `Targets: all complete within ${TARGETS.streamsLengthFactor} × ${lengthMs / 1000} s = ${limitMs / 1000} s: ${verdict(b.complete === b.streams && b.slowestCompletionMs <= limitMs)}; ` +
        `peak RSS ≤ ${TARGETS.streamsPeakRssMB} MB: ${verdict((b.peakRssMB ?? Infinity) <= TARGETS.streamsPeakRssMB)}.`,
      '',
    );
  }
  if (crash) {
    const limitMs = crash.leaseMs + TARGETS.crashMarginMs;
    lines.push(`### Crash recovery (two instances, \`MAX_CONCURRENT_REQUESTS=2\`, \`QUEUE_LOCK_MS=${crash.leaseMs}\`, kill -9 of the one holding both slots)`, '');
    lines.push(...header(['first upstream call from the survivor', 'it was', `${crash.queuedJobs} queued jobs completed`, 'both cut jobs re-run']));
    lines.push(row([`**${int(crash.firstCallMs)} ms**`, crash.firstCallWas, `${crash.queuedCompleted} / ${crash.queuedJobs} after ${int(crash.queuedCompletedMs)} ms`, `after ${int(crash.cutJobsRerunMs)} ms`]));
    lines.push('', `Target: first call within lease + 2 s = ${limitMs / 1000} s: ${verdict(crash.firstCallMs <= limitMs)}.`, '');
  }
  if (refusals) {
    lines.push(`### Cost of a refusal at overload (\`wrk -t1 -d${refusals.seconds}s\`; queue held full: every answer a 503; a key at its queue share: every answer a 429)`, '');
    lines.push(...header(['refusal', 'connections', 'refusals / s', 'not refused', 'p50 ms', 'p90 ms', 'p99 ms']));
    for (const r of refusals.rows) lines.push(row([r.kind, r.connections, int(r.refusalsPerSecond), int(r.notRefused), n(r.p50), n(r.p90), n(r.p99)]));
    const at8 = refusals.rows.find((r) => r.kind === 'queue full' && r.connections === 8);
    const at60 = refusals.rows.filter((r) => r.connections >= 60);
    const rate = refusals.rows.every((r) => r.refusalsPerSecond >= TARGETS.refusalsPerSecond);
    lines.push(
      '',
      `Targets: p99 ≤ ${TARGETS.refusalP99At60Ms} ms from 60 client sockets, queue-full and key-share alike: ${verdict(at60.length === 2 && at60.every((r) => r.p99 <= TARGETS.refusalP99At60Ms))}` +
        ` (${at60.map((r) => `${r.kind} ${n(r.p99)} ms`).join(', ')}); and ≥ ${int(TARGETS.refusalsPerSecond)} refusals/s: ${verdict(rate)}, ` +
        `p99 ≤ ${TARGETS.refusalP99At8Ms} ms at 8 connections: ${verdict((at8?.p99 ?? Infinity) <= TARGETS.refusalP99At8Ms)}.`,
      '',
    );
  }
  if (workers) {
    lines.push(`### WORKERS: saturation throughput per setting (\`wrk -t1 -c${workers.connections} -d${workers.seconds}s\`, one standalone simulator process), then SIGTERM`, '');
    lines.push(...header(['WORKERS', 'req/s', 'vs WORKERS=1', 'failed', 'p50 ms', 'p99 ms', 'exit code after SIGTERM']));
    const one = workers.rows.find((r) => r.workers === 1);
    for (const r of workers.rows) {
      lines.push(row([r.workers, int(r.requestsPerSecond), one ? `${n((r.requestsPerSecond / one.requestsPerSecond) * 100, 0)} %` : '–', int(r.failed), n(r.p50), n(r.p99), String(r.exitCode)]));
    }
    lines.push('', 'No target on a shared 2-core machine: reported to show it works and drains cleanly (exit code 0).', '');
  }
  return lines.join('\n');
}
