import type { HistogramBar, LatencySummary, StageResult } from './stage-recorder';

/** `850 ms`, `2.35 s`. */
export function formatMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** `200 × 48, 503 × 2`, most frequent first; `none` when empty. */
export function formatCounts(counts: Record<string, number>, suffix = ''): string {
  const entries = Object.entries(counts).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  return entries.length === 0 ? 'none' : entries.map(([key, count]) => `${key}${suffix} × ${count}`).join(', ');
}

/** `avg 120 ms, p50 110 ms, p90 …, max 300 ms`. */
export function formatPercentiles(summary: LatencySummary): string {
  const parts: [string, number][] = [
    ['avg', summary.mean],
    ['p50', summary.p50],
    ['p90', summary.p90],
    ['p95', summary.p95],
    ['p99', summary.p99],
    ['max', summary.max],
  ];
  return parts.map(([name, value]) => `${name} ${formatMs(value)}`).join(', ');
}

/** hey-style bars: `  110 ms [12] |■■■■■■`, one line per bar, the longest 40 marks wide. */
export function renderBars(bars: HistogramBar[]): string {
  const most = Math.max(1, ...bars.map((bar) => bar.count));
  const labels = bars.map((bar) => formatMs(bar.toMs));
  const labelWidth = Math.max(...labels.map((label) => label.length));
  const countWidth = Math.max(...bars.map((bar) => String(bar.count).length));
  return bars
    .map((bar, i) => `  ${labels[i].padStart(labelWidth)} [${String(bar.count).padStart(countWidth)}] |${'■'.repeat(Math.round((bar.count / most) * 40))}`)
    .join('\n');
}

/** Share of a stage's requests, as `12.5%`. */
export function share(count: number, stage: StageResult): string {
  return stage.requests === 0 ? '0%' : `${((count / stage.requests) * 100).toFixed(1).replace(/\.0$/, '')}%`;
}

/** Non-refusal failures: upstream errors, timeouts, broken streams, connection errors. */
export function otherErrors(stage: StageResult): number {
  return stage.failed - stage.refusals;
}
