/**
 * Pure builders for the simulator's Responses API (`POST /v1/responses`) bodies and stream events, in
 * OpenAI's shapes: a `response` object whose `output` holds a message or a function call, and the
 * typed events of a stream (`response.created` … `response.completed`), each with its `sequence_number`.
 */
import type { AnswerMeta } from './simulator.responses';
import { outputTokens, type PlannedOutput } from './simulator.output';

type Json = Record<string, unknown>;

export interface ResponsesUsage {
  input_tokens: number;
  input_tokens_details: { cached_tokens: number };
  output_tokens: number;
  output_tokens_details: { reasoning_tokens: number };
  total_tokens: number;
}

export function responsesUsage(inputTokens: number, output: PlannedOutput, cachedTokens = 0): ResponsesUsage {
  const outputCount = outputTokens(output.kind === 'text' ? output.text : output.arguments);
  return {
    input_tokens: inputTokens,
    input_tokens_details: { cached_tokens: Math.min(cachedTokens, inputTokens) },
    output_tokens: outputCount,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: inputTokens + outputCount,
  };
}

/** The output item of a planned answer, finished or (`done: false`) as first announced in a stream. */
export function outputItem(meta: AnswerMeta, output: PlannedOutput, done: boolean): Json {
  const status = done ? 'completed' : 'in_progress';
  if (output.kind === 'tool_call') {
    return { type: 'function_call', id: `fc_${meta.id}`, call_id: output.callId, name: output.name, arguments: done ? output.arguments : '', status };
  }
  return { type: 'message', id: `msg_${meta.id}`, status, role: 'assistant', content: done ? [outputText(output.text)] : [] };
}

const outputText = (text: string) => ({ type: 'output_text', text, annotations: [], logprobs: [] });

/** The `response` object: `in_progress` with no output yet, or finished with its output and usage. */
export function responseObject(meta: AnswerMeta, body: Json, finished?: { output: PlannedOutput; usage: ResponsesUsage }): Json {
  const incomplete = finished?.output.kind === 'text' && finished.output.finish === 'length';
  return {
    id: meta.id,
    object: 'response',
    created_at: meta.created,
    status: finished ? (incomplete ? 'incomplete' : 'completed') : 'in_progress',
    error: null,
    incomplete_details: incomplete ? { reason: 'max_output_tokens' } : null,
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    model: meta.model,
    output: finished ? [outputItem(meta, finished.output, true)] : [],
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    previous_response_id: body.previous_response_id ?? null,
    reasoning: { effort: null, summary: null },
    store: body.store ?? false,
    temperature: body.temperature ?? 1,
    text: body.text ?? { format: { type: 'text' } },
    tool_choice: body.tool_choice ?? 'auto',
    tools: body.tools ?? [],
    top_p: body.top_p ?? 1,
    truncation: 'disabled',
    usage: finished ? finished.usage : null,
    user: body.user ?? null,
    metadata: body.metadata ?? {},
  };
}

/**
 * The typed events of a streamed response, split where the simulator paces them: `head` up to the
 * first delta, one `deltas` event per piece, and `tail` from the `.done` events to `response.completed`
 * (or `response.incomplete`).
 */
export function responseEvents(meta: AnswerMeta, body: Json, output: PlannedOutput, usage: ResponsesUsage): { head: Json[]; deltas: Json[]; tail: Json[] } {
  let sequence = 0;
  const event = (type: string, fields: Json): Json => ({ type, sequence_number: sequence++, ...fields });
  const item = outputItem(meta, output, false);
  const at = { item_id: item.id, output_index: 0 };
  const head = [
    event('response.created', { response: responseObject(meta, body) }),
    event('response.in_progress', { response: responseObject(meta, body) }),
    event('response.output_item.added', { output_index: 0, item }),
  ];
  const finished = responseObject(meta, body, { output, usage });
  const closing = event.bind(null, finished.status === 'incomplete' ? 'response.incomplete' : 'response.completed');
  if (output.kind === 'tool_call') {
    const deltas = output.pieces.map((delta) => event('response.function_call_arguments.delta', { ...at, delta }));
    const tail = [
      event('response.function_call_arguments.done', { ...at, name: output.name, arguments: output.arguments }),
      event('response.output_item.done', { output_index: 0, item: outputItem(meta, output, true) }),
    ];
    return { head, deltas, tail: [...tail, closing({ response: finished })] };
  }
  const part = { ...at, content_index: 0 };
  head.push(event('response.content_part.added', { ...part, part: outputText('') }));
  const deltas = output.pieces.map((delta) => event('response.output_text.delta', { ...part, delta, logprobs: [] }));
  const tail = [
    event('response.output_text.done', { ...part, text: output.text, logprobs: [] }),
    event('response.content_part.done', { ...part, part: outputText(output.text) }),
    event('response.output_item.done', { output_index: 0, item: outputItem(meta, output, true) }),
  ];
  return { head, deltas, tail: [...tail, closing({ response: finished })] };
}
