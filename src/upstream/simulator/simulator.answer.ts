import type { ServerResponse } from 'node:http';
import type { Exchange } from './simulator.exchange';
import type { SimulatedFault } from './simulator';
import {
  type AnswerMeta,
  type FinishReason,
  chatChunk,
  chatCompletion,
  completionWords,
  countTokens,
  embeddings,
  faultErrorBody,
  textChunk,
  textCompletion,
  usage,
} from './simulator.responses';

export type GenerationKind = 'chat' | 'completion' | 'embedding';

/** Everything needed to produce one answer once capacity and latency have been served. */
export interface AnswerPlan {
  kind: GenerationKind;
  meta: AnswerMeta;
  body: Record<string, unknown>;
  fault: SimulatedFault;
  chunkIntervalMs: number;
  defaultChunks: number;
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

interface Generation {
  words: string[];
  finish: FinishReason;
  promptTokens: number;
}

function generation(plan: AnswerPlan): Generation {
  const wanted = Math.max(0, Math.floor(plan.fault.chunks ?? plan.defaultChunks));
  const limit = firstNumber(plan.body.max_completion_tokens, plan.body.max_tokens);
  const count = limit === undefined ? wanted : Math.min(wanted, Math.max(0, Math.floor(limit)));
  return {
    words: completionWords(count),
    finish: count < wanted ? 'length' : 'stop',
    promptTokens: countTokens(plan.kind === 'chat' ? plan.body.messages : plan.body.prompt),
  };
}

function firstNumber(...values: unknown[]): number | undefined {
  return values.find((v): v is number => typeof v === 'number' && Number.isFinite(v));
}

function completeBody(plan: AnswerPlan): unknown {
  if (plan.kind === 'embedding') {
    const input = plan.body.input;
    return embeddings(plan.meta.model, typeof input === 'string' ? [input] : (input as string[]));
  }
  const gen = generation(plan);
  const text = gen.words.join('');
  const use = usage(gen.promptTokens, gen.words.length);
  return plan.kind === 'chat'
    ? chatCompletion(plan.meta, text, gen.finish, use)
    : textCompletion(plan.meta, text, gen.finish, use);
}

/** Stream events split into the preamble, one chunk per word, and the finish/usage trailer. */
function streamEvents(plan: AnswerPlan): { head: unknown[]; words: unknown[]; tail: unknown[] } {
  const gen = generation(plan);
  const options = plan.body.stream_options as { include_usage?: unknown } | null | undefined;
  const use = options?.include_usage === true ? usage(gen.promptTokens, gen.words.length) : undefined;
  const { meta } = plan;
  if (plan.kind === 'chat') {
    return {
      head: [chatChunk(meta, { role: 'assistant', content: '' })],
      words: gen.words.map((word) => chatChunk(meta, { content: word })),
      tail: [chatChunk(meta, {}, gen.finish), ...(use ? [chatChunk(meta, null, null, use)] : [])],
    };
  }
  return {
    head: [],
    words: gen.words.map((word) => textChunk(meta, word)),
    tail: [textChunk(meta, '', gen.finish), ...(use ? [textChunk(meta, null, null, use)] : [])],
  };
}

const sse = (data: unknown): string => `data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`;

async function stream(ex: Exchange, plan: AnswerPlan, mode: 'none' | 'stall' | 'bad_json'): Promise<void> {
  ex.res.writeHead(200, {
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache',
    Connection: 'keep-alive',
    'X-Accel-Buffering': 'no',
  });
  ex.res.flushHeaders();
  const { head, words, tail } = streamEvents(plan);
  if (mode === 'bad_json') {
    const first = [...head, ...words, ...tail][0];
    if (ex.write(sse(first)) && ex.write(sse('{not json}')) && ex.write(sse('[DONE]'))) ex.res.end();
    return;
  }
  for (const event of head) if (!ex.write(sse(event))) return;
  const stallAfter = Math.max(0, Math.floor(plan.fault.stallAfterChunks ?? DEFAULT_STALL_AFTER_CHUNKS));
  for (let i = 0; i < words.length; i++) {
    // A stall leaves the socket open and silent on purpose: that is the fault being simulated.
    if (mode === 'stall' && i >= stallAfter) return;
    if ((i > 0 || head.length > 0) && !(await ex.delay(plan.chunkIntervalMs))) return;
    if (!ex.write(sse(words[i]))) return;
  }
  if (mode === 'stall') return;
  for (const event of tail) if (!ex.write(sse(event))) return;
  if (ex.write(sse('[DONE]'))) ex.res.end();
}
