/**
 * Bulwark's benchmarks. Not a test: it prints figures, side by side in one run,
 * against the same built-in upstream simulator.
 *
 * 1. Sequential added latency, then saturation throughput (`wrk -t1 -c64`): direct to the simulator,
 *    through HAProxy and through one Bulwark gateway, with Bulwark's CPU per request (/proc) and Redis's
 *    time per request (`INFO commandstats`).
 * 2. Latency at a fixed 500 req/s over 64 connections, the same three paths: with `hey` (bursts of 64) and
 *    evenly paced.
 * 3. 1,000 concurrent streams (50 chunks, 100 ms apart) through one gateway: completion, peak RSS.
 * 4. Crash recovery: kill -9 of the instance holding every slot; time to the survivor's first upstream call.
 * 5. Cost of a refusal at overload: queue held full, and a key at its queue share.
 * 6. WORKERS=1 against WORKERS=2: saturation throughput, and a clean drain on SIGTERM.
 * The scheduling scenarios (fair share with `/health/live` probed meanwhile, routing, mixed sizes) end the run.
 * 7. Batch lines on idle capacity: interactive p99 without and with a 10,000-line batch running, the share
 *    of the free capacity the batch uses, Redis memory per byte of batch files.
 *
 * Run: `npm run bench` (needs redis-server, haproxy, wrk and hey on PATH). Run some parts only:
 * `npm run build && node dist/bench/run-benchmarks.js saturation streams` (names as in {@link PARTS}).
 */
import { cpus, loadavg } from 'node:os';
import { crashRecovery } from './crash-recovery';
import { addedOverDirect, fixedRateLatency, pacedLatency, sequentialLatency } from './latency';
import { installed } from './load-tools';
import { openFileLimits } from './process-stats';
import { startProxyPaths } from './proxy-paths';
import { refusalCost } from './refusals';
import { type BenchResults, markdown, printPart } from './report';
import { saturation } from './saturation';
import { concurrentStreams } from './streams';
import { workersThroughput } from './workers';
import { runSchedulingBench } from './scheduling-bench';
import { schedulingReport } from './scheduling-report';
import { tokenLimitsBench, tokenLimitsReport } from './token-limits';
import { BATCH_BENCH_SHAPE, batchIdleCapacity, batchReport } from './batch-idle-capacity';

const SEQUENTIAL_REQUESTS = 2000;
const SATURATION = { connections: 64, seconds: 10, warmUpSeconds: 2 };
const FIXED_RATE = { rate: 500, connections: 64, seconds: 10 };
const STREAMS = { count: 1000, chunks: 50, intervalMs: 100 };
const CRASH = { leaseMs: 5000, queuedJobs: 4 };
const REFUSALS = { seconds: 10, connections: [8, 60], keyShareConnections: 60 };
const WORKERS = { counts: [1, 2], connections: 64, seconds: 10, warmUpSeconds: 2 };

const PARTS = ['sequential', 'saturation', 'fixed-rate', 'streams', 'crash', 'refusals', 'workers', 'scheduling', 'token-limits', 'batch'] as const;
type Part = (typeof PARTS)[number];

function checkTools(parts: Set<Part>): void {
  const needed: [string, string][] = [['redis-server', '--version']];
  if (parts.has('sequential') || parts.has('saturation') || parts.has('fixed-rate')) needed.push(['haproxy', '-v']);
  if (parts.has('saturation') || parts.has('refusals') || parts.has('workers')) needed.push(['wrk', '--version']);
  if (parts.has('fixed-rate')) needed.push(['hey', '-h']);
  const missing = needed.filter(([command, flag]) => !installed(command, flag)).map(([command]) => command);
  if (missing.length) throw new Error(`not installed: ${missing.join(', ')} (Debian: apt-get install -y redis-server haproxy wrk hey)`);
  // Both the client side and the gateway hold one socket per stream, and the gateway one more upstream.
  const { hard } = openFileLimits();
  if (parts.has('streams') && hard < 3 * STREAMS.count) throw new Error(`open-file limit ${hard} is too low for ${STREAMS.count} streams: raise it (ulimit -Hn)`);
}

async function main(): Promise<void> {
  const asked = process.argv.slice(2);
  const unknown = asked.filter((a) => !PARTS.includes(a as Part));
  if (unknown.length) throw new Error(`unknown part(s) ${unknown.join(', ')}; parts: ${PARTS.join(', ')}`);
  const parts = new Set<Part>(asked.length ? (asked as Part[]) : PARTS);
  checkTools(parts);
  const started = Date.now();
  const results: BenchResults = {
    setting:
      `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, node ${process.version}, ${cpus().length} cores, ` +
      `load average ${loadavg()[0].toFixed(1)} at the start; gateways with LOG_LEVEL=warn`,
  };
  console.log(results.setting);

  if (parts.has('sequential') || parts.has('saturation') || parts.has('fixed-rate')) {
    const stack = await startProxyPaths(SATURATION.connections);
    try {
      if (parts.has('sequential')) {
        const rows = await sequentialLatency(stack.paths, SEQUENTIAL_REQUESTS);
        results.sequential = { count: SEQUENTIAL_REQUESTS, rows, added: addedOverDirect(rows) };
        printPart(results, 'sequential');
      }
      if (parts.has('saturation')) {
        const measured = await saturation(stack, SATURATION.connections, SATURATION.seconds, SATURATION.warmUpSeconds);
        results.saturation = { ...measured, connections: SATURATION.connections, seconds: SATURATION.seconds };
        printPart(results, 'saturation');
      }
      if (parts.has('fixed-rate')) {
        const hey = await fixedRateLatency(stack.paths, FIXED_RATE.rate, FIXED_RATE.connections, FIXED_RATE.seconds);
        const paced = await pacedLatency(stack.paths, FIXED_RATE.rate, FIXED_RATE.connections, FIXED_RATE.seconds);
        results.fixedRate = { ...FIXED_RATE, hey: { rows: hey, added: addedOverDirect(hey) }, paced: { rows: paced, added: addedOverDirect(paced) } };
        printPart(results, 'fixedRate');
      }
    } finally {
      await stack.stop();
    }
  }
  if (parts.has('streams')) {
    results.streams = { shape: STREAMS, rows: await concurrentStreams(STREAMS) };
    printPart(results, 'streams');
  }
  if (parts.has('crash')) {
    results.crash = await crashRecovery(CRASH.leaseMs, CRASH.queuedJobs);
    printPart(results, 'crash');
  }
  if (parts.has('refusals')) {
    results.refusals = { seconds: REFUSALS.seconds, rows: await refusalCost(REFUSALS.seconds, REFUSALS.connections, REFUSALS.keyShareConnections) };
    printPart(results, 'refusals');
  }
  if (parts.has('workers')) {
    const rows = await workersThroughput(WORKERS.counts, WORKERS.connections, WORKERS.seconds, WORKERS.warmUpSeconds);
    results.workers = { connections: WORKERS.connections, seconds: WORKERS.seconds, rows };
    printPart(results, 'workers');
  }
  // The scheduling scenarios (fair share, routing, mixed sizes), against this build; `npm run bench:scheduling
  // -- --gateway before=… --gateway now=…` runs them side by side with another build.
  const scheduling = parts.has('scheduling') ? await runSchedulingBench() : undefined;
  const tokenLimits = parts.has('token-limits') ? tokenLimitsReport(await tokenLimitsBench()) : undefined;
  const batch = parts.has('batch') ? await batchIdleCapacity(BATCH_BENCH_SHAPE) : undefined;
  console.log(`\nAll parts took ${((Date.now() - started) / 1000).toFixed(0)} s. As Markdown:\n`);
  console.log(markdown(results));
  if (scheduling) console.log(schedulingReport(scheduling));
  if (tokenLimits) console.log(tokenLimits);
  if (batch) console.log(`\n${batchReport(batch)}`);
}

void main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
