import { randomBytes } from 'node:crypto';
import { toErrorResponse } from '../common/error-response';

/** One line of a batch's output or error file, in OpenAI's format. */
export interface BatchOutputLine {
  id: string;
  custom_id: string;
  response: { status_code: number; request_id: string; body: unknown } | null;
  error: { code: string; message: string } | null;
}

const hex = (bytes: number) => randomBytes(bytes).toString('hex');

/** The output line of a line the upstream answered with `status` (2xx) and `body`. */
export function answeredLine(customId: string, status: number, body: unknown): BatchOutputLine {
  return { id: `batch_req_${hex(12)}`, custom_id: customId, response: { status_code: status, request_id: `req_${hex(12)}`, body }, error: null };
}

/**
 * The error-file line of a line that failed after the gateway's retries: the status and error body a
 * synchronous request would have got, in the contract's shape.
 */
export function failedLine(customId: string, error: unknown): BatchOutputLine {
  const { status, body } = toErrorResponse(error);
  const { message, type, param, code } = body.error;
  return { id: `batch_req_${hex(12)}`, custom_id: customId, response: { status_code: status, request_id: `req_${hex(12)}`, body: { error: { message, type, param, code } } }, error: null };
}

/** The error-file line of a line that got no answer at all (`batch_expired`, `line_abandoned`, `input_file_deleted`). */
export function unansweredLine(customId: string, code: string, message: string): BatchOutputLine {
  return { id: `batch_req_${hex(12)}`, custom_id: customId, response: null, error: { code, message } };
}

/** `custom_id` of a raw input line, or a stand-in naming its position when it cannot be read. */
export function customIdOf(raw: string | Buffer | undefined, index: number): string {
  try {
    const id = (JSON.parse(String(raw)) as { custom_id?: unknown }).custom_id;
    if (typeof id === 'string') return id;
  } catch {
    // The line was checked when the batch was created; only a deleted input file leads here.
  }
  return `line-${index + 1}`;
}
