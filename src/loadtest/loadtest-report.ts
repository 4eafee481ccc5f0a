import { formatCounts, formatMs, formatPercentiles, renderBars, share } from './figures-format';
import type { LoadTestOptions } from './loadtest-options';
import { findings } from './observations';
import type { StageResult } from './stage-recorder';

/** When and against what the run was made, for the report's configuration chapter. */
export interface RunFacts {
  startedAt: Date;
}

/** The Markdown report: configuration, results per concurrency level, observations, recommendations. */
export function loadTestReport(options: LoadTestOptions, stages: StageResult[], facts: RunFacts): string {
  const { observations, recommendations } = findings(stages);
  const stageLength = options.requests === undefined ? `${formatMs(options.durationMs)}` : `${options.requests} requests (at most ${formatMs(options.durationMs)})`;
  const lines = [
    '# Load Test Results',
    '',
    '## Test Configuration',
    `- Endpoint: POST ${options.url}/chat/completions`,
    `- Model: ${options.model}, ${options.stream ? 'streamed (SSE)' : 'not streamed'}, max_tokens ${options.maxTokens}`,
    `- Message: "${options.prompt}" (short, consistent)`,
    `- Priority: ${options.priority ?? 'default (normal)'}; API key: ${options.key ? 'set' : 'none'}`,
    `- Concurrency levels: ${options.concurrency.join(', ')}; each level for ${stageLength}`,
    `- Client timeout per request: ${formatMs(options.timeoutMs)}; ${
      options.honorRetryAfter ? 'a refused client waits its Retry-After before its next request' : 'a refused client sends its next request at once (Retry-After is counted, not waited out)'
    }`,
    `- Started: ${facts.startedAt.toISOString()}`,
    '- Tool: `npm run loadtest` (undici clients at fixed concurrency, HDR histograms)',
    '',
    '## Results',
    '',
    '| Concurrency | Requests | Req/s | Successful/s | p50 | p95 | p99 | Refusals | Other errors |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...stages.map((s) =>
      [
        s.concurrency,
        s.requests,
        s.requestsPerSecond.toFixed(2),
        s.successesPerSecond.toFixed(2),
        s.latency ? formatMs(s.latency.p50) : '–',
        s.latency ? formatMs(s.latency.p95) : '–',
        s.latency ? formatMs(s.latency.p99) : '–',
        s.refusals,
        s.failed - s.refusals,
      ].join(' | ').replace(/^/, '| ').concat(' |'),
    ),
  ];
  for (const stage of stages) lines.push('', ...stageSection(stage));
  lines.push('', '## Observations', ...observations.map((text, i) => `${i + 1}. ${text}`));
  lines.push('', '## Recommendations', ...recommendations.map((text) => `- ${text}`), '');
  return lines.join('\n');
}

function stageSection(stage: StageResult): string[] {
  const lines = [
    `### ${stage.concurrency} concurrent`,
    `- Requests: ${stage.requests} (${stage.succeeded} succeeded, ${stage.failed} failed) in ${(stage.elapsedMs / 1000).toFixed(2)} s`,
    `- Requests/sec: ${stage.requestsPerSecond.toFixed(2)} (successful: ${stage.successesPerSecond.toFixed(2)})`,
    `- Latency (successful): ${stage.latency ? formatPercentiles(stage.latency) : 'no successful request'}`,
  ];
  if (stage.ttft) lines.push(`- Time to first token: ${formatPercentiles(stage.ttft)}`);
  lines.push(
    `- Status codes: ${formatCounts(stage.statuses)}`,
    `- Error codes: ${formatCounts(stage.errorCodes)}`,
    `- Refusals (429/503): ${stage.refusals === 0 ? 'none' : `${stage.refusals} (${share(stage.refusals, stage)}), Retry-After ${formatCounts(stage.retryAfter, ' s')}`}`,
  );
  if (stage.latency) lines.push('', 'Latency histogram (successful requests):', '', '```text', renderBars(stage.latency.bars), '```');
  if (stage.ttft) lines.push('', 'Time-to-first-token histogram:', '', '```text', renderBars(stage.ttft.bars), '```');
  return lines;
}
