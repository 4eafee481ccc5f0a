import { InvalidRequestError } from '../common/errors';
import { parseJsonBody } from '../common/json-body-parser';

/** One request line of a batch's input file, as OpenAI's batch input format has it. */
export interface BatchInputLine {
  custom_id: string;
  method: 'POST';
  url: string;
  body: Record<string, unknown> & { model: string };
}

const MAX_CUSTOM_ID = 512;

function lineError(lineNumber: number, message: string): InvalidRequestError {
  return new InvalidRequestError('invalid_body', `Line ${lineNumber} of the input file: ${message}`, 'input_file_id');
}

/**
 * Parses and checks one input line (1-based `lineNumber`, for the message) against the batch's
 * `endpoint`; throws a 400 naming the line.
 */
export function parseInputLine(raw: Buffer, lineNumber: number, endpoint: string): BatchInputLine {
  const trimmed = raw.subarray(0, raw.length - (raw.at(-1) === 0x0a ? (raw.at(-2) === 0x0d ? 2 : 1) : 0));
  if (trimmed.toString('utf8').trim() === '') throw lineError(lineNumber, 'the line is empty; each line holds one JSON request');
  let value: unknown;
  try {
    value = parseJsonBody(trimmed);
  } catch (error) {
    throw lineError(lineNumber, (error as Error).message.replace(/^The body/, 'the line'));
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw lineError(lineNumber, 'the line is not a JSON object');
  const line = value as Record<string, unknown>;
  if (typeof line.custom_id !== 'string' || line.custom_id === '') throw lineError(lineNumber, '`custom_id` is missing (a non-empty string that names the request in the output)');
  if (line.custom_id.length > MAX_CUSTOM_ID) throw lineError(lineNumber, `\`custom_id\` is longer than ${MAX_CUSTOM_ID} characters`);
  if (line.method !== 'POST') throw lineError(lineNumber, '`method` must be "POST"');
  if (line.url !== endpoint) throw lineError(lineNumber, `\`url\` is ${JSON.stringify(line.url)}, but the batch's endpoint is ${endpoint}; every line must use the batch's endpoint`);
  const body = line.body;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw lineError(lineNumber, '`body` must be a JSON object (the request for the endpoint)');
  const model = (body as { model?: unknown }).model;
  if (typeof model !== 'string' || model === '') throw lineError(lineNumber, '`body.model` is missing');
  if ((body as { stream?: unknown }).stream === true) throw lineError(lineNumber, '`body.stream` must not be true: batch answers are stored, not streamed');
  return line as unknown as BatchInputLine;
}

/**
 * Checks a batch's whole input, line by line: each line well formed for `endpoint`, its `custom_id`
 * unique, its model served by some upstream. Throws a 400 naming the first bad line.
 */
export class BatchInputCheck {
  private readonly seen = new Set<string>();
  private count = 0;

  constructor(
    private readonly endpoint: string,
    private readonly modelKnown: (model: string) => boolean,
  ) {}

  /** Checks the next line of the file. */
  add(raw: Buffer): void {
    const lineNumber = ++this.count;
    const line = parseInputLine(raw, lineNumber, this.endpoint);
    if (this.seen.has(line.custom_id)) throw lineError(lineNumber, `\`custom_id\` ${JSON.stringify(line.custom_id)} is used by an earlier line; each must be unique`);
    this.seen.add(line.custom_id);
    if (!this.modelKnown(line.body.model)) throw lineError(lineNumber, `no upstream serves model ${JSON.stringify(line.body.model)} (GET /v1/models lists them)`);
  }

  get lines(): number {
    return this.count;
  }
}
