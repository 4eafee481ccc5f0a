import type { FastifyInstance, FastifyRequest } from 'fastify';
import { InvalidRequestError } from './errors';

const MAX_DEPTH = 64;
const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Whether objects/arrays in a JSON text nest deeper than `limit`, stopping early past it. Strings (where
 * most of a prompt's bytes are) are skipped with `indexOf`, not walked character by character.
 */
export function jsonDepthExceeds(text: string, limit: number): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 34 /* " */) {
      // The closing quote is the next one not escaped by an odd run of backslashes.
      for (;;) {
        const end = text.indexOf('"', i + 1);
        if (end === -1) return false; // unterminated: JSON.parse refuses it
        let backslashes = 0;
        while (text.charCodeAt(end - 1 - backslashes) === 92 /* \ */) backslashes++;
        i = end;
        if (backslashes % 2 === 0) break;
      }
    } else if (c === 123 /* { */ || c === 91 /* [ */) {
      if (++depth > limit) return true;
    } else if (c === 125 || c === 93) depth--;
  }
  return false;
}

/** Rejects the keys that pollute prototypes once a parsed object is merged or spread somewhere. */
function rejectPollution(key: string, value: unknown): unknown {
  if (key === '__proto__' || (key === 'constructor' && value !== null && typeof value === 'object' && 'prototype' in value)) {
    throw new InvalidRequestError('invalid_json', `The key ${JSON.stringify(key)} is not allowed in a request body`);
  }
  return value;
}

/**
 * Whether `text` may hold a polluting key, so the slower reviver must check every key. A key can spell
 * itself with \u escapes (`"__pro\u0074o__"`), so an escaped ASCII character counts too.
 */
function mayHidePollution(text: string): boolean {
  return text.includes('__proto__') || text.includes('constructor') || /\\u00[0-7]/i.test(text);
}

/** Parses a JSON body strictly: valid UTF-8, bounded nesting, no prototype-pollution keys. */
export function parseJsonBody(body: Buffer): unknown {
  if (body.length === 0) throw new InvalidRequestError('invalid_json', 'The body is empty; send a JSON object');
  let text: string;
  try {
    text = decoder.decode(body);
  } catch {
    throw new InvalidRequestError('invalid_json', 'The body is not valid UTF-8');
  }
  if (jsonDepthExceeds(text, MAX_DEPTH)) {
    throw new InvalidRequestError('invalid_json', `The body nests deeper than ${MAX_DEPTH} levels`);
  }
  try {
    return mayHidePollution(text) ? JSON.parse(text, rejectPollution) : JSON.parse(text);
  } catch (error) {
    if (error instanceof InvalidRequestError) throw error;
    throw new InvalidRequestError('invalid_json', `The body is not valid JSON: ${(error as Error).message.slice(0, 200)}`);
  }
}

/** Replaces Fastify's JSON parser with the strict one; the body limit is enforced while reading. */
export function registerJsonBodyParser(fastify: FastifyInstance, bodyLimit: number): void {
  fastify.removeContentTypeParser(['application/json', 'text/plain']);
  fastify.addContentTypeParser('application/json', { parseAs: 'buffer', bodyLimit }, (_req: FastifyRequest, body: Buffer, done) => {
    try {
      done(null, parseJsonBody(body));
    } catch (error) {
      done(error as Error, undefined);
    }
  });
}
