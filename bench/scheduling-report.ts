import type { SchedulingBenchResult } from './scheduling-bench';

type Row = [label: string, cell: (build: string) => string, target: string];

const pct = (share: number) => `${(share * 100).toFixed(share > 0 && share < 0.1 ? 1 : 0)} %`;
const num = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : '-');
const mix = (counts: Record<string, number>) =>
  Object.entries(counts)
    .sort(([, a], [, b]) => b - a)
    .map(([key, n]) => `${key}: ${n}`)
    .join(', ');

/** One Markdown table: a row per figure, a column per build, and the target. */
function table(title: string, setup: string, labels: string[], rows: Row[]): string {
  const lines = [`**${title}** (${setup})`, '', `| | ${labels.join(' | ')} | target |`, `|---|${labels.map(() => '---|').join('')}---|`];
  for (const [label, cell, target] of rows) lines.push(`| ${label} | ${labels.map(cell).join(' | ')} | ${target} |`);
  return lines.join('\n');
}

/** The multi-turn and stalled-replica tables: each build's two setups side by side. */
function inferenceSections(result: SchedulingBenchResult, labels: string[]): string[] {
  const sections: string[] = [];
  const turns = result.multiTurn;
  if (turns) {
    const cols = labels.flatMap((b) => [`${b} least-loaded`, `${b} prefix-aware`]);
    const get = (col: string) => {
      const [b, mode] = col.split(' ');
      return mode === 'least-loaded' ? turns[b].leastLoaded : turns[b].prefixAware;
    };
    const first = get(cols[0]);
    sections.push(
      table(`Multi-turn chats`, `${first.conversations} conversations × ${first.turns} turns, 25 at a time, 4 replicas with 6,000-token prefix caches, 4 ms prefill per uncached token`, cols, [
        ['prefix-cache hit rate (prompt tokens)', (c) => pct(get(c).prefixCacheHitRate), '≥ 80 % (prefix-aware)'],
        ['p50 / p99 time to first token, ms', (c) => `${num(get(c).p50TtftMs, 0)} / ${num(get(c).p99TtftMs, 0)}`, 'p50 ≥ 2× lower than least-loaded'],
        ['mean simulated prefill per request, ms (no machine delays)', (c) => num(get(c).meanPrefillMs, 0), ''],
        ['machine load average (1 min) at the end', (c) => num(get(c).loadAverage, 1), ''],
        ['busiest replica / average (time-averaged in flight)', (c) => num(get(c).maxLoadOverAverage, 2), '≤ 1.25'],
        ['requests per replica', (c) => get(c).servedByReplica.join(' / '), ''],
        ['answered (failed)', (c) => `${get(c).answered} (${get(c).failed})`, ''],
        ['run time, s', (c) => num(get(c).seconds), ''],
      ]),
    );
  }
  const stalled = result.stalledReplica;
  if (stalled) {
    const cols = labels.flatMap((b) => [`${b} no-hedge`, `${b} hedged`]);
    const get = (col: string) => {
      const [b, mode] = col.split(' ');
      return mode === 'no-hedge' ? stalled[b].plain : stalled[b].hedged;
    };
    sections.push(
      table('One replica of three stalls 10 % of its calls for 5 s', '900 streamed requests, 12 clients, 200 ms to first token; hedge 300–500 ms, 5 % budget', cols, [
        ['p50 / p99 time to first token, ms', (c) => `${num(get(c).p50TtftMs, 0)} / ${num(get(c).p99TtftMs, 0)}`, ''],
        ['p99 / p50', (c) => num(get(c).p99OverP50, 2), '≤ 3 (hedged)'],
        ['extra upstream calls', (c) => pct(get(c).extraCallShare), '≤ 5 %'],
        ['answers a hedge gave / calls stalled', (c) => `${get(c).hedgedAnswers} / ${get(c).stalledCalls}`, ''],
        ['answered', (c) => `${get(c).answered} of ${get(c).requests}`, ''],
      ]),
    );
  }
  return sections;
}

/** The results as Markdown: one table per scenario that ran, builds side by side. */
export function schedulingReport(result: SchedulingBenchResult): string {
  const labels = result.gateways.map((g) => g.label);
  const sections: string[] = [];
  const noisy = result.noisyNeighbour;
  if (noisy) {
    sections.push(
      table('Noisy neighbour', '60 clients on `noisykey`, 2 on `lightkey`, 3 slots of 200 ms, queue 30', labels, [
        ['`light` requests answered 200', (b) => `${pct(noisy[b].light.servedShare)} (${noisy[b].light.served} of ${noisy[b].light.answered})`, '≥ 95 %'],
        ['`light` p50 / p99 latency, in service times', (b) => `${num(noisy[b].light.p50ServiceTimes)} / ${num(noisy[b].light.p99ServiceTimes)}`, 'p50 ≤ 3'],
        [
          'total goodput, req/s (capacity 15)',
          (b) => `${num(noisy[b].goodputPerS)} (${pct(noisy[b].goodputPerS / noisy[b].capacityPerS)}, ${noisy[b].goodputPerS >= 0.95 * noisy[b].capacityPerS ? 'met' : '**not met**'})`,
          '≥ 95 % of capacity',
        ],
        [
          '`GET /health/live` meanwhile (every 100 ms): p99 / slowest, ms',
          (b) => `${num(noisy[b].liveP99Ms)} / ${num(noisy[b].liveMaxMs)} (${noisy[b].liveP99Ms <= 10 ? 'met' : '**not met**'})`,
          'p99 ≤ 10 ms',
        ],
        ['`light` answers', (b) => mix(noisy[b].light.mix), ''],
        ['`noisy` answers', (b) => mix(noisy[b].noisy.mix), ''],
      ]),
    );
  }
  const replicas = result.twoReplicas;
  if (replicas) {
    sections.push(
      table('Two replicas of one model', '100 ms and 600 ms, equal weights, 16 clients, 16 slots', labels, [
        ['served by the fast replica', (b) => `${pct(replicas[b].fastShare)} (${replicas[b].byUpstream.fast ?? 0} of ${replicas[b].served})`, '≥ 75 %'],
        ['throughput, req/s', (b) => num(replicas[b].throughputPerS), ''],
        ['p50 latency, ms', (b) => num(replicas[b].p50LatencyMs, 0), ''],
        ['answers', (b) => mix(replicas[b].mix), ''],
      ]),
    );
  }
  const sizes = result.mixedSizes;
  if (sizes) {
    sections.push(
      table('Mixed sizes', '2 slots, 50 tokens = 100 ms and 1,000 tokens = 2 s alternating, 3 s deadlines, 20 clients', labels, [
        ['admitted requests that timed out (504)', (b) => `${pct(sizes[b].timedOutShare)} (${sizes[b].timedOut} of ${sizes[b].admitted})`, '≤ 5 %'],
        ['refused at the door (429/503)', (b) => `${sizes[b].refused} of ${sizes[b].answered}`, ''],
        ['goodput, req/s (small + large)', (b) => `${num(sizes[b].goodputPerS)} (${sizes[b].servedBySize.small} + ${sizes[b].servedBySize.large})`, ''],
        ['slot time spent on answered requests', (b) => pct(sizes[b].usefulSlotShare), ''],
        ['answers to 50-token requests', (b) => mix(sizes[b].mixBySize.small), ''],
        ['answers to 1,000-token requests', (b) => mix(sizes[b].mixBySize.large), ''],
      ]),
    );
  }
  sections.push(...inferenceSections(result, labels));
  return [`${result.seconds} s of load per scenario and build.`, ...sections].join('\n\n');
}
