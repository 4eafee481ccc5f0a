import { Injectable, Logger } from '@nestjs/common';
import { createHash, randomUUID } from 'node:crypto';
import { Clock } from '../common/clock';
import { FileStore, LINES_PER_CALL } from '../files/file-store';
import { customIdOf, unansweredLine } from './batch-output';
import { BatchStore } from './batch-store';

/** How long a finalizer may take before another instance takes its work over. */
const FINALIZER_LOCK_MS = 120_000;

/** Id of a batch's output (or error) file: the same on every attempt, so a finalizer that died is redone in place. */
function resultFileId(batchId: string, kind: 'output' | 'error'): string {
  return `file-${createHash('sha256').update(`${batchId}\u0000${kind}`).digest('hex').slice(0, 24)}`;
}

/**
 * Ends a batch that may end (all lines done, cancelled with none running, or expired): seals it so no
 * further result is taken, writes its output and error files in input order, then ends it in one step.
 * An instance that dies half-way leaves the seal; once its lock lapses another one writes the files again.
 */
@Injectable()
export class BatchFinalizer {
  private readonly logger = new Logger(BatchFinalizer.name);
  private readonly inFlight = new Set<string>();

  constructor(
    private readonly batches: BatchStore,
    private readonly files: FileStore,
    private readonly clock: Clock,
  ) {}

  /** Ends batch `id` if it may end now; does nothing otherwise. */
  async finalize(id: string): Promise<void> {
    if (this.inFlight.has(id)) return;
    this.inFlight.add(id);
    try {
      const finalizer = randomUUID();
      const ending = await this.batches.seal(id, finalizer, FINALIZER_LOCK_MS);
      if (!ending) return;
      const batch = await this.batches.get(id);
      if (!batch) return;
      const written = await this.writeFiles(id, batch.owner, batch.input_file_id, Number(batch.total), ending === 'expired');
      const ended = await this.batches.end(id, finalizer, Math.floor(this.clock.now() / 1000), written.files, written.expired);
      this.logger.log({ batchId: id, ending, ended }, `batch ${id} ${ended ? ending : 'was ended by another instance'}`);
    } catch (error) {
      this.logger.warn({ batchId: id }, `could not finalize batch ${id}: ${(error as Error).message}`);
    } finally {
      this.inFlight.delete(id);
    }
  }

  private async writeFiles(id: string, owner: string, inputFileId: string, total: number, expired: boolean) {
    const outputId = resultFileId(id, 'output');
    const errorId = resultFileId(id, 'error');
    await this.files.clearLines(outputId);
    await this.files.clearLines(errorId);
    const output = { lines: 0, bytes: 0 };
    const errors = { lines: 0, bytes: 0 };
    let expiredLines = 0;
    for (let start = 0; start < total; start += LINES_PER_CALL) {
      const stop = Math.min(total, start + LINES_PER_CALL) - 1;
      const results = await this.batches.results(id, start, stop);
      const needsInput = results.some((r) => r === 'x' || (r === null && expired));
      const input = needsInput ? await this.files.lines(inputFileId, start, stop) : [];
      const out: string[] = [];
      const err: string[] = [];
      results.forEach((result, i) => {
        const index = start + i;
        if (result?.startsWith('o')) out.push(result.slice(1) + '\n');
        else if (result?.startsWith('e')) err.push(result.slice(1) + '\n');
        else if (result === 'x') err.push(JSON.stringify(unansweredLine(customIdOf(input[i], index), 'line_abandoned', 'The line was started the most times allowed (BATCH_LINE_MAX_STARTS) and its instance stopped each time')) + '\n');
        else if (expired) {
          expiredLines++;
          err.push(JSON.stringify(unansweredLine(customIdOf(input[i], index), 'batch_expired', 'This request could not be executed before the completion window expired.')) + '\n');
        }
      });
      await this.append(outputId, out, output);
      await this.append(errorId, err, errors);
    }
    const createdAt = this.clock.now();
    const files: { output?: string; error?: string } = {};
    if (output.lines > 0) {
      await this.files.describe({ id: outputId, owner, bytes: output.bytes, lines: output.lines, createdAt, filename: `batch_${id}_output.jsonl`, purpose: 'batch_output' });
      files.output = outputId;
    }
    if (errors.lines > 0) {
      await this.files.describe({ id: errorId, owner, bytes: errors.bytes, lines: errors.lines, createdAt, filename: `batch_${id}_error.jsonl`, purpose: 'batch_output' });
      files.error = errorId;
    }
    return { files, expired: expiredLines };
  }

  private async append(fileId: string, lines: string[], figures: { lines: number; bytes: number }): Promise<void> {
    if (lines.length === 0) return;
    await this.files.appendLines(fileId, lines);
    figures.lines += lines.length;
    figures.bytes += lines.reduce((sum, l) => sum + Buffer.byteLength(l), 0);
  }
}
