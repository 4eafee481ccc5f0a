import { createHash } from 'node:crypto';
import type { InferencePayload } from '../upstream/upstream.types';

/** Longest chain hashed per request: a prompt longer than this many blocks is matched on its start only. */
export const MAX_PREFIX_BLOCKS = 256;

/**
 * The prompt text an inference server's prefix cache sees, in the order it sees it: the tools (chat),
 * the instructions (Responses API), then each message or input item (role, then content). Stable for
 * equal prompts, so that a conversation's next turn starts with the same text as its previous one.
 */
export function canonicalPrompt(payload: Pick<InferencePayload, 'path' | 'body'>): string {
  const body = payload.body;
  const parts: string[] = [];
  if (payload.path === '/chat/completions') {
    if (body.tools !== undefined) parts.push(`tools\n${stable(body.tools)}`);
    if (Array.isArray(body.messages)) for (const message of body.messages) parts.push(turnText(message));
  } else if (payload.path === '/responses') {
    if (typeof body.instructions === 'string') parts.push(`system\n${body.instructions}`);
    if (typeof body.input === 'string') parts.push(`user\n${body.input}`);
    else if (Array.isArray(body.input)) for (const item of body.input) parts.push(turnText(item));
  } else if (payload.path === '/completions') {
    parts.push(typeof body.prompt === 'string' ? body.prompt : stable(body.prompt));
  }
  return parts.join('\n\u0000');
}

/** The key a client gives to keep its requests together: `prompt_cache_key`, else `user`, else the `X-Session-Id` header. */
export function affinityKeyOf(payload: Pick<InferencePayload, 'body' | 'affinityKey'>): string | undefined {
  const { prompt_cache_key: cacheKey, user } = payload.body;
  if (typeof cacheKey === 'string' && cacheKey !== '') return cacheKey;
  if (typeof user === 'string' && user !== '') return user;
  return payload.affinityKey || undefined;
}

/**
 * The chain of block hashes of a request's prompt: block i's hash covers the model, the affinity key
 * (when there is one, as the first block) and every block up to i, so two prompts share a hash exactly
 * when they share everything before it. Blocks are `blockChars` characters of {@link canonicalPrompt};
 * the last, partial block counts too (it matches an identical prompt). 16 hex digits (64 bits) each.
 */
export function prefixChain(payload: Pick<InferencePayload, 'path' | 'model' | 'body' | 'affinityKey'>, blockChars: number): string[] {
  const text = canonicalPrompt(payload);
  const blocks: string[] = [];
  const key = affinityKeyOf(payload);
  if (key !== undefined) blocks.push(`key\u0000${key}`);
  for (let at = 0; at < text.length && blocks.length < MAX_PREFIX_BLOCKS; at += blockChars) blocks.push(text.slice(at, at + blockChars));
  const chain: string[] = [];
  let previous = `model\u0000${payload.model}`;
  for (const block of blocks) {
    previous = createHash('sha256').update(previous).update('\u0001').update(block).digest('hex').slice(0, 16);
    chain.push(previous);
  }
  return chain;
}

function turnText(turn: unknown): string {
  if (turn === null || typeof turn !== 'object') return stable(turn);
  const { role, content, type, ...rest } = turn as Record<string, unknown>;
  const head = typeof role === 'string' ? role : typeof type === 'string' ? type : '';
  const text = typeof content === 'string' ? content : stable(content);
  const extra = Object.keys(rest).length > 0 ? `\n${stable(rest)}` : '';
  return `${head}\n${text}${extra}`;
}

/** JSON with object keys sorted, so that key order never changes a hash. */
function stable(value: unknown): string {
  if (value === undefined) return '';
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}
