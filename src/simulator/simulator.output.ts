import { completionWords } from './simulator.responses';
import { sampleJson, seedOf } from './simulator.schema';

/** What one choice of an answer says: text (plain or JSON), or a call of one of the request's tools. */
export type PlannedOutput =
  | { kind: 'text'; text: string; pieces: string[]; finish: 'stop' | 'length' }
  | { kind: 'tool_call'; callId: string; name: string; arguments: string; pieces: string[] };

/** The request shapes that differ between chat completions and the Responses API. */
export type OutputApi = 'chat' | 'completion' | 'responses';

type Json = Record<string, unknown>;

const isRecord = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

interface ToolSpec {
  name: string;
  parameters: unknown;
}

/** Function tools of a chat (`{type, function: {name, parameters}}`) or Responses (`{type, name, parameters}`) request. */
function functionTools(api: OutputApi, body: Json): ToolSpec[] {
  if (!Array.isArray(body.tools)) return [];
  const tools: ToolSpec[] = [];
  for (const tool of body.tools) {
    if (!isRecord(tool) || tool.type !== 'function') continue;
    const fn = api === 'responses' ? tool : tool.function;
    if (isRecord(fn) && typeof fn.name === 'string') tools.push({ name: fn.name, parameters: fn.parameters });
  }
  return tools;
}

/** Whether the conversation's last turn is a tool's result: then the model answers in text. */
function answersToolResult(api: OutputApi, body: Json): boolean {
  const turns = api === 'responses' ? body.input : body.messages;
  if (!Array.isArray(turns) || turns.length === 0) return false;
  const last = turns[turns.length - 1] as unknown;
  return isRecord(last) && (api === 'responses' ? last.type === 'function_call_output' : last.role === 'tool');
}

/**
 * The tool the model calls, as `tool_choice` allows: `none` never calls; `required` or a named function
 * always calls (the named one, else the first tool); `auto` calls the first tool unless the last turn
 * is a tool's result, so agent loops end.
 */
function chosenTool(api: OutputApi, body: Json): ToolSpec | undefined {
  const tools = functionTools(api, body);
  if (tools.length === 0) return undefined;
  const choice = body.tool_choice ?? 'auto';
  if (choice === 'none') return undefined;
  if (isRecord(choice)) {
    const named = api === 'responses' ? choice.name : isRecord(choice.function) ? choice.function.name : undefined;
    return tools.find((tool) => tool.name === named) ?? tools[0];
  }
  if (choice === 'auto' && answersToolResult(api, body)) return undefined;
  return tools[0];
}

/** `{type: 'json_object'}` or `{type: 'json_schema', schema}`, from `response_format` (chat) or `text.format` (Responses). */
function structuredFormat(api: OutputApi, body: Json): { type: 'json_object' } | { type: 'json_schema'; schema: unknown } | undefined {
  const format = api === 'responses' ? (isRecord(body.text) ? body.text.format : undefined) : body.response_format;
  if (!isRecord(format)) return undefined;
  if (format.type === 'json_object') return { type: 'json_object' };
  if (format.type !== 'json_schema') return undefined;
  const schema = api === 'responses' ? format.schema : isRecord(format.json_schema) ? format.json_schema.schema : undefined;
  return { type: 'json_schema', schema };
}

/** Splits a text into about `count` consecutive pieces (at least one) whose concatenation is the text. */
export function splitPieces(text: string, count: number): string[] {
  const size = Math.max(1, Math.ceil(text.length / Math.max(1, count)));
  const pieces: string[] = [];
  for (let i = 0; i < text.length; i += size) pieces.push(text.slice(i, i + size));
  return pieces.length > 0 ? pieces : [''];
}

/**
 * Plans what choice `index` of a request answers, deterministically from the request: a tool call,
 * JSON for a structured format, or `wanted` words cut at `limit` tokens.
 */
export function planOutput(api: OutputApi, body: Json, index: number, wanted: number, limit: number | undefined): PlannedOutput {
  const seed = seedOf([body.model, body.messages ?? body.input ?? body.prompt, body.instructions, index]);
  const tool = api === 'completion' ? undefined : chosenTool(api, body);
  const chunks = Math.max(1, wanted);
  if (tool) {
    const args = JSON.stringify(sampleJson(tool.parameters, seed ^ seedOf(tool.name)));
    const callId = `call_${(seed >>> 0).toString(36)}${index}`;
    return { kind: 'tool_call', callId, name: tool.name, arguments: args, pieces: splitPieces(args, chunks) };
  }
  const format = api === 'completion' ? undefined : structuredFormat(api, body);
  if (format) {
    const value = format.type === 'json_schema' ? sampleJson(format.schema, seed) : { answer: completionWords(chunks).join('').trim() };
    const text = JSON.stringify(value);
    return { kind: 'text', text, pieces: splitPieces(text, chunks), finish: 'stop' };
  }
  const count = limit === undefined ? wanted : Math.min(wanted, Math.max(0, Math.floor(limit)));
  const pieces = completionWords(count);
  return { kind: 'text', text: pieces.join(''), pieces, finish: count < wanted ? 'length' : 'stop' };
}

/** Tokens of generated text, roughly as a tokenizer sees it: words and punctuation marks. */
export function outputTokens(text: string): number {
  return (text.match(/[A-Za-z0-9_]+|[^\sA-Za-z0-9_]/g) ?? []).length;
}
