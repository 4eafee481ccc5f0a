import type { ServerResponse } from 'node:http';
import type { Exchange } from './simulator.exchange';
import type { SimulatedFault } from './simulator.types';
import { outputTokens, type PlannedOutput, planOutput } from './simulator.output';
import { responseEvents, responseObject, responsesUsage } from './simulator.responses-api';
import {
  type AnswerMeta,
  type ChatChoice,
  type FinishReason,
  chatChunk,
  chatCompletion,
  countTokens,
  embeddings,
  faultErrorBody,
  textChunk,
  textCompletion,
  usage,
} from './simulator.responses';

export type GenerationKind = 'chat' | 'completion' | 'embedding' | 'responses';

/** Everything needed to produce one answer once capacity and latency have been served. */
export interface AnswerPlan {
  kind: GenerationKind;
  meta: AnswerMeta;
  body: Record<string, unknown>;
  fault: SimulatedFault;
  chunkIntervalMs: number;
  defaultChunks: number;
  /** Prompt tokens the replica's prefix cache held; undefined when it has none. */
  cachedTokens?: number;
}

const DEFAULT_STALL_AFTER_CHUNKS = 2;

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(payload),
    ...headers,
  });
  res.end(payload);
}

/** Applies the plan's fault, or answers normally; resolves when done (or never-answering faults are armed). */
export async function deliver(ex: Exchange, plan: AnswerPlan): Promise<void> {
  const fault = plan.fault.fault ?? 'none';
  const streaming = plan.kind !== 'embedding' && plan.body.stream === true;
  switch (fault) {
    case 'hang':
      return;
    case 'reset':
      ex.serverClosed = true;
      ex.req.socket.destroy();
      return;
    case 'error': {
      const status = plan.fault.status ?? 500;
      const headers: Record<string, string> =
        plan.fault.retryAfter !== undefined ? { 'Retry-After': String(plan.fault.retryAfter) } : {};
      sendJson(ex.res, status, faultErrorBody(status), headers);
      return;
    }
    case 'stall':
      if (streaming) await stream(ex, plan, 'stall');
      return;
    case 'bad_json':
      if (streaming) {
        await stream(ex, plan, 'bad_json');
      } else {
        ex.res.writeHead(200, { 'Content-Type': 'application/json' });
        ex.res.end('{"id": "broken');
      }
      return;
    case 'none':
      if (streaming) await stream(ex, plan, 'none');
      else sendJson(ex.res, 200, completeBody(plan));
      return;
  }
}

function firstNumber(...values: unknown[]): number | undefined {
  return values.find((v): v is number => typeof v === 'number' && Number.isFinite(v));
}

/** The planned output of every choice (`n` of them for chat and completions, one for the Responses API). */
function outputs(plan: AnswerPlan): PlannedOutput[] {
  const wanted = Math.max(0, Math.floor(plan.fault.chunks ?? plan.defaultChunks));
  const { body } = plan;
  const limit = firstNumber(body.max_completion_tokens, body.max_tokens, plan.kind === 'responses' ? body.max_output_tokens : undefined);
  const api = plan.kind === 'chat' || plan.kind === 'responses' ? plan.kind : 'completion';
  const n = plan.kind === 'responses' ? 1 : Math.max(1, Math.floor(firstNumber(body.n) ?? 1));
  return Array.from({ length: n }, (_, index) => planOutput(api, body, index, wanted, limit));
}

function promptTokens(plan: AnswerPlan): number {
  const { body } = plan;
  if (plan.kind === 'chat') return countTokens(body.messages);
  if (plan.kind === 'responses') return countTokens(body.input) + countTokens(body.instructions);
  return countTokens(body.prompt);
}

const generatedText = (output: PlannedOutput) => (output.kind === 'text' ? output.text : output.arguments);
const finishOf = (output: PlannedOutput): FinishReason => (output.kind === 'text' ? output.finish : 'tool_calls');

function chatChoice(output: PlannedOutput): ChatChoice {
  if (output.kind === 'text') return { message: { role: 'assistant', content: output.text, refusal: null }, finish: output.finish };
  const call = { id: output.callId, type: 'function', function: { name: output.name, arguments: output.arguments } };
  return { message: { role: 'assistant', content: null, refusal: null, tool_calls: [call] }, finish: 'tool_calls' };
}

function completeBody(plan: AnswerPlan): unknown {
  const { body, meta } = plan;
  if (plan.kind === 'embedding') {
    const input = body.input;
    return embeddings(meta.model, typeof input === 'string' ? [input] : (input as string[]), body.encoding_format === 'base64' ? 'base64' : 'float');
  }
  const planned = outputs(plan);
  if (plan.kind === 'responses') return responseObject(meta, body, { output: planned[0], usage: responsesUsage(promptTokens(plan), planned[0], plan.cachedTokens) });
  const use = usage(promptTokens(plan), planned.reduce((sum, output) => sum + outputTokens(generatedText(output)), 0), plan.cachedTokens);
  return plan.kind === 'chat'
    ? chatCompletion(meta, planned.map(chatChoice), use)
    : textCompletion(meta, planned.map((output) => ({ text: generatedText(output), finish: finishOf(output) })), use);
}

/** The first delta of a chat choice: the role, and for a tool call its id and name. */
function chatHead(output: PlannedOutput): Record<string, unknown> {
  if (output.kind === 'text') return { role: 'assistant', content: '' };
  const call = { index: 0, id: output.callId, type: 'function', function: { name: output.name, arguments: '' } };
  return { role: 'assistant', content: null, tool_calls: [call] };
}

function chatDelta(output: PlannedOutput, piece: string): Record<string, unknown> {
  return output.kind === 'text' ? { content: piece } : { tool_calls: [{ index: 0, function: { arguments: piece } }] };
}

/** Stream events split into the preamble, the paced deltas (piece by piece, every choice), and the trailer. */
function streamEvents(plan: AnswerPlan): { head: unknown[]; deltas: unknown[]; tail: unknown[] } {
  const planned = outputs(plan);
  const { meta, body } = plan;
  if (plan.kind === 'responses') return responseEvents(meta, body, planned[0], responsesUsage(promptTokens(plan), planned[0], plan.cachedTokens));
  const options = body.stream_options as { include_usage?: unknown } | null | undefined;
  const use =
    options?.include_usage === true
      ? usage(promptTokens(plan), planned.reduce((sum, output) => sum + outputTokens(generatedText(output)), 0), plan.cachedTokens)
      : undefined;
  const longest = Math.max(...planned.map((output) => output.pieces.length));
  const deltas: unknown[] = [];
  for (let p = 0; p < longest; p++) {
    planned.forEach((output, i) => {
      const piece = output.pieces[p];
      if (piece === undefined) return;
      deltas.push(plan.kind === 'chat' ? chatChunk(meta, chatDelta(output, piece), null, undefined, i) : textChunk(meta, piece, null, undefined, i));
    });
  }
  if (plan.kind === 'chat') {
    return {
      head: planned.map((output, i) => chatChunk(meta, chatHead(output), null, undefined, i)),
      deltas,
      tail: [...planned.map((output, i) => chatChunk(meta, {}, finishOf(output), undefined, i)), ...(use ? [chatChunk(meta, null, null, use)] : [])],
    };
  }
  return {
    head: [],
    deltas,
    tail: [...planned.map((output, i) => textChunk(meta, '', finishOf(output), undefined, i)), ...(use ? [textChunk(meta, null, null, use)] : [])],
  };
}

/** Chat and completions frame events as `data:` and end with `[DONE]`; the Responses API names each event and has no `[DONE]`. */
function framer(kind: GenerationKind): (event: unknown) => string {
  if (kind !== 'responses') return (data) => `data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`;
  return (data) =>
    typeof data === 'string' ? `data: ${data}\n\n` : `event: ${(data as { type: string }).type}\ndata: ${JSON.stringify(data)}\n\n`;
}

async function stream(ex: Exchange, plan: AnswerPlan, mode: 'none' | 'stall' | 'bad_json'): Promise<void> {
  ex.res.writeHead(200, {
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache',
    Connection: 'keep-alive',
    'X-Accel-Buffering': 'no',
  });
  ex.res.flushHeaders();
  const sse = framer(plan.kind);
  const done = plan.kind === 'responses' ? '' : sse('[DONE]');
  const { head, deltas, tail } = streamEvents(plan);
  if (mode === 'bad_json') {
    const first = [...head, ...deltas, ...tail][0];
    if (ex.write(sse(first)) && ex.write(sse('{not json}')) && ex.write(done)) ex.res.end();
    return;
  }
  for (const event of head) if (!ex.write(sse(event))) return;
  const stallAfter = Math.max(0, Math.floor(plan.fault.stallAfterChunks ?? DEFAULT_STALL_AFTER_CHUNKS));
  for (let i = 0; i < deltas.length; i++) {
    // A stall leaves the socket open and silent on purpose: that is the fault being simulated.
    if (mode === 'stall' && i >= stallAfter) return;
    if ((i > 0 || head.length > 0) && !(await ex.delay(plan.chunkIntervalMs))) return;
    if (!ex.write(sse(deltas[i]))) return;
  }
  if (mode === 'stall') return;
  for (const event of tail) if (!ex.write(sse(event))) return;
  if (ex.write(done)) ex.res.end();
}
