import type { IncomingMessage } from 'node:http';
import type { SimulatedFault, SimulatorOptions } from './simulator.types';
import type { GenerationKind } from './simulator.answer';
import { type OpenAiErrorBody, errorBody, modelNotFoundBody } from './simulator.responses';

/** Options with every default filled in. */
export type ResolvedOptions = Required<Omit<SimulatorOptions, 'apiKey'>> & { apiKey?: string };

export const DEFAULT_OPTIONS: ResolvedOptions = {
  models: ['sim-small', 'sim-large'],
  latencyMs: 20,
  chunkIntervalMs: 10,
  defaultChunks: 8,
  capacity: 0,
  modelFaults: {},
  prefixCacheTokens: 0,
  blockTokens: 16,
  prefillMsPerToken: 0,
  stall: { share: 0, ms: 0 },
};

export type ParsedBody = { ok: true; value: unknown } | { ok: false };

export type CheckedRequest =
  | { ok: true; body: Record<string, unknown>; model: string; fault: SimulatedFault | undefined }
  | { ok: false; status: number; error: OpenAiErrorBody };

const FAULTS: ReadonlySet<string> = new Set(['none', 'hang', 'error', 'reset', 'stall', 'bad_json']);
const NUMERIC_FAULT_FIELDS = ['status', 'retryAfter', 'stallAfterChunks', 'latencyMs', 'chunks', 'times'] as const;

/** Reads the whole body; resolves `{ok:false}` for empty/invalid JSON or when the client goes away. */
export function readJsonBody(req: IncomingMessage): Promise<ParsedBody> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.once('end', () => {
      try {
        resolve({ ok: true, value: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown });
      } catch {
        resolve({ ok: false });
      }
    });
    // 'close' without a prior 'end' means the client went away mid-body; settling twice is harmless.
    req.once('close', () => resolve({ ok: false }));
    req.once('error', () => resolve({ ok: false }));
  });
}

function invalid(message: string, param: string | null = null, status = 400): CheckedRequest {
  return { ok: false, status, error: errorBody(message, 'invalid_request_error', null, param) };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Checks the OpenAI-level preconditions of a generation request and extracts its `x_sim` fault. */
export function validateGeneration(kind: GenerationKind, parsed: ParsedBody, models: readonly string[]): CheckedRequest {
  if (!parsed.ok || !isRecord(parsed.value)) {
    return invalid(
      'We could not parse the JSON body of your request. (HINT: This likely means you aren\'t using your HTTP ' +
        'library correctly. The OpenAI API expects a JSON payload.)',
    );
  }
  const body = parsed.value;
  const model = body.model;
  if (typeof model !== 'string' || model === '') return invalid('you must provide a model parameter', 'model');
  if (!models.includes(model)) return { ok: false, status: 404, error: modelNotFoundBody(model) };

  if (kind === 'chat' && !Array.isArray(body.messages)) {
    return invalid("'messages' is a required property", 'messages');
  }
  if (kind === 'embedding') {
    const input = body.input;
    const valid =
      typeof input === 'string' || (Array.isArray(input) && input.length > 0 && input.every((v) => typeof v === 'string'));
    if (!valid) return invalid("'input' must be a string or a non-empty array of strings", 'input');
    if (body.encoding_format !== undefined && body.encoding_format !== 'float' && body.encoding_format !== 'base64') {
      return invalid("'encoding_format' must be 'float' or 'base64'", 'encoding_format');
    }
  }
  if (kind === 'responses' && typeof body.input !== 'string' && !Array.isArray(body.input)) {
    return invalid("'input' must be a string or an array of input items", 'input');
  }
  if ((kind === 'chat' || kind === 'completion') && body.n !== undefined && !(Number.isInteger(body.n) && (body.n as number) >= 1 && (body.n as number) <= 128)) {
    return invalid("'n' must be an integer from 1 to 128", 'n');
  }
  if (body.tools !== undefined && !Array.isArray(body.tools)) return invalid("'tools' must be an array", 'tools');

  if (body.x_sim === undefined) return { ok: true, body, model, fault: undefined };
  const fault = body.x_sim;
  if (!isRecord(fault)) return invalid('x_sim must be an object', 'x_sim');
  if (fault.fault !== undefined && (typeof fault.fault !== 'string' || !FAULTS.has(fault.fault))) {
    return invalid(`x_sim.fault must be one of ${[...FAULTS].join(', ')}`, 'x_sim');
  }
  for (const field of NUMERIC_FAULT_FIELDS) {
    const value = fault[field];
    if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value) || value < 0)) {
      return invalid(`x_sim.${field} must be a non-negative number`, 'x_sim');
    }
  }
  if (fault.times !== undefined && !Number.isInteger(fault.times)) return invalid('x_sim.times must be an integer', 'x_sim');
  if (fault.key !== undefined && (typeof fault.key !== 'string' || fault.key.length > 200)) {
    return invalid('x_sim.key must be a string of at most 200 characters', 'x_sim');
  }
  const status = fault.status as number | undefined;
  if (status !== undefined && !(Number.isInteger(status) && status >= 400 && status <= 599)) {
    return invalid('x_sim.status must be an HTTP error status (400-599)', 'x_sim');
  }
  return { ok: true, body, model, fault: fault as SimulatedFault };
}

/** Applies a partial patch onto resolved options, rejecting values the simulator cannot honour. */
export function resolveOptions(base: ResolvedOptions, patch: Partial<SimulatorOptions>): ResolvedOptions {
  const next: ResolvedOptions = { ...base };
  for (const key of ['latencyMs', 'chunkIntervalMs', 'defaultChunks', 'capacity', 'prefixCacheTokens', 'prefillMsPerToken'] as const) {
    const value = patch[key];
    if (value === undefined) continue;
    if (!Number.isFinite(value) || value < 0) throw new RangeError(`${key} must be a non-negative number`);
    next[key] = value;
  }
  if (patch.blockTokens !== undefined) {
    if (!Number.isInteger(patch.blockTokens) || patch.blockTokens < 1) throw new RangeError('blockTokens must be a positive integer');
    next.blockTokens = patch.blockTokens;
  }
  if (patch.stall !== undefined) {
    const { share, ms } = patch.stall;
    if (!(Number.isFinite(share) && share >= 0 && share <= 1)) throw new RangeError('stall.share must be from 0 to 1');
    if (!(Number.isFinite(ms) && ms >= 0)) throw new RangeError('stall.ms must be a non-negative number');
    next.stall = { share, ms };
  }
  if (patch.models !== undefined) {
    if (patch.models.length === 0) throw new RangeError('models must not be empty');
    next.models = [...patch.models];
  }
  if (patch.modelFaults !== undefined) next.modelFaults = { ...patch.modelFaults };
  if ('apiKey' in patch) next.apiKey = patch.apiKey || undefined;
  return next;
}
