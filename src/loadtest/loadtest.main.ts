import { writeFileSync } from 'node:fs';
import { runStage } from './load-runner';
import { loadTestReport } from './loadtest-report';
import { LOADTEST_USAGE, LoadTestUsageError, parseLoadTestArgs, wantsHelp } from './loadtest-options';
import type { StageResult } from './stage-recorder';
import { progressLine, stageSummary } from './stage-summary';

/**
 * `npm run loadtest -- --url … --model …`: one stage per concurrency level, a live progress line on
 * stderr, each stage's figures on stdout, and the Markdown report with `--report`.
 */
async function main(argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    process.stdout.write(`${LOADTEST_USAGE}\n`);
    return 0;
  }
  let options;
  try {
    options = parseLoadTestArgs(argv);
  } catch (error) {
    if (!(error instanceof LoadTestUsageError)) throw error;
    process.stderr.write(`${error.message}\n${LOADTEST_USAGE}\n`);
    return 2;
  }
  const startedAt = new Date();
  const live = process.stderr.isTTY === true;
  const stages: StageResult[] = [];
  let lastPrinted = 0;
  for (const concurrency of options.concurrency) {
    const stage = await runStage(options, concurrency, (progress) => {
      if (live) process.stderr.write(`\r\x1b[2K${progressLine(progress)}`);
      else if (progress.elapsedMs - lastPrinted >= 1000) {
        lastPrinted = progress.elapsedMs;
        process.stderr.write(`${progressLine(progress)}\n`);
      }
    });
    lastPrinted = 0;
    const final = progressLine({ concurrency, requests: stage.requests, errors: stage.failed, elapsedMs: stage.elapsedMs });
    process.stderr.write(live ? `\r\x1b[2K${final}\n` : `${final}\n`);
    stages.push(stage);
    process.stdout.write(`${stageSummary(stage)}\n\n`);
  }
  if (options.reportPath) {
    writeFileSync(options.reportPath, loadTestReport(options, stages, { startedAt }));
    process.stdout.write(`Report written to ${options.reportPath}\n`);
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`loadtest failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
