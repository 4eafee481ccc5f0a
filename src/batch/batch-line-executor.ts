import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { Clock } from '../common/clock';
import { CancelledError, RequestTimeoutError } from '../common/errors';
import { batchConfig } from '../config/sections';
import { UpstreamDispatcher } from '../dispatch/upstream-dispatcher';
import { BATCH_ENDPOINTS } from './batch-object';
import { answeredLine, BatchOutputLine, customIdOf, failedLine, unansweredLine } from './batch-output';
import type { ClaimedLine } from './batch-store';

/** A line stopped so that interactive work gets its slot; it runs again later and the stop is not counted. */
export class LinePreempted extends Error {}

/** What running a line came to: its output (or error-file) line, or nothing because it was stopped to run again later. */
export type LineOutcome = { ok: boolean; line: BatchOutputLine } | 'handed_back';

/**
 * Runs one batch line as one request through the dispatcher (breakers, retries within the retry budget,
 * fallbacks), within BATCH_LINE_TIMEOUT_MS, and shapes what came of it as an output or error-file line.
 */
@Injectable()
export class BatchLineExecutor {
  constructor(
    private readonly dispatcher: UpstreamDispatcher,
    private readonly clock: Clock,
    @Inject(batchConfig.KEY) private readonly config: ConfigType<typeof batchConfig>,
  ) {}

  /** Runs `claimed` for a batch of `endpoint`; `signal` stops it (shutdown, preemption: handed back). */
  async execute(claimed: ClaimedLine, endpoint: string, signal: AbortSignal): Promise<LineOutcome> {
    const { line: raw, index } = claimed;
    if (raw === undefined) return { ok: false, line: unansweredLine(`line-${index + 1}`, 'input_file_deleted', "The batch's input file was deleted before this line ran") };
    const input = JSON.parse(raw) as { body: Record<string, unknown> & { model: string } };
    const customId = customIdOf(raw, index);
    const timeoutMs = this.config.lineTimeoutMs;
    const controller = new AbortController();
    const stop = () => controller.abort(signal.reason);
    signal.addEventListener('abort', stop, { once: true });
    const timer = setTimeout(() => controller.abort(new RequestTimeoutError(timeoutMs)), timeoutMs);
    try {
      const answer = await this.dispatcher.dispatch(
        { path: BATCH_ENDPOINTS[endpoint], model: input.body.model, body: { ...input.body, stream: false }, stream: false },
        { signal: controller.signal, deadlineAt: this.clock.now() + timeoutMs, retriesAllowed: true },
      );
      if (answer.kind !== 'json') throw new Error('a batch line is never streamed');
      return { ok: true, line: answeredLine(customId, answer.status, answer.body) };
    } catch (error) {
      const reason: unknown = controller.signal.aborted ? controller.signal.reason : error;
      if ((reason instanceof CancelledError && reason.by === 'shutdown') || reason instanceof LinePreempted) return 'handed_back';
      return { ok: false, line: failedLine(customId, reason) };
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', stop);
    }
  }
}
