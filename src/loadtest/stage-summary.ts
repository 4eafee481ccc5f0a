import { formatCounts, formatPercentiles, renderBars, share } from './figures-format';
import type { StageResult } from './stage-recorder';
import type { StageProgress } from './load-runner';

/** The live line: `c=10  123 requests  40.1 req/s  3 errors  3.1 s`. */
export function progressLine(progress: StageProgress): string {
  const seconds = progress.elapsedMs / 1000;
  const rate = seconds > 0 ? progress.requests / seconds : 0;
  return `c=${progress.concurrency}  ${progress.requests} requests  ${rate.toFixed(1)} req/s  ${progress.errors} errors  ${seconds.toFixed(1)} s`;
}

/** What the terminal shows when a stage ends: throughput, percentiles with histograms, the mixes. */
export function stageSummary(stage: StageResult): string {
  const lines = [
    `Concurrency ${stage.concurrency}: ${stage.requests} requests in ${(stage.elapsedMs / 1000).toFixed(2)} s`,
    `  Throughput:     ${stage.requestsPerSecond.toFixed(2)} req/s (${stage.successesPerSecond.toFixed(2)} successful/s)`,
  ];
  if (stage.latency) {
    lines.push(`  Latency:        ${formatPercentiles(stage.latency)} (${stage.latency.count} successful)`, renderBars(stage.latency.bars));
  }
  if (stage.ttft) lines.push(`  First token:    ${formatPercentiles(stage.ttft)}`, renderBars(stage.ttft.bars));
  lines.push(`  Status codes:   ${formatCounts(stage.statuses)}`, `  Error codes:    ${formatCounts(stage.errorCodes)}`);
  lines.push(
    stage.refusals === 0
      ? '  Refusals:       none'
      : `  Refusals:       ${stage.refusals} (${share(stage.refusals, stage)}), Retry-After ${formatCounts(stage.retryAfter, ' s')}`,
  );
  return lines.join('\n');
}
