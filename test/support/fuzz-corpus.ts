import { SeededRandomSource } from '../../src/common/random';
import { rawRequest } from './raw-http';

/** One malformed request and the statuses the contract allows for it. */
export interface FuzzCase {
  kind: string;
  /** The request's bytes, exactly as sent. */
  bytes: Buffer;
  expect: number[];
}

export interface FuzzOptions {
  /** A valid client key, sent with every case whose defect is not the key itself. */
  apiKey: string;
  maxBodyBytes: number;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const INFERENCE_PATHS = ['/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/jobs'] as const;
type InferencePath = (typeof INFERENCE_PATHS)[number];

function validBody(path: InferencePath): { [key: string]: Json } {
  if (path === '/v1/completions') return { model: 'sim-small', prompt: 'hello', max_tokens: 8 };
  if (path === '/v1/embeddings') return { model: 'sim-small', input: 'hello' };
  return { model: 'sim-small', messages: [{ role: 'user', content: 'hello' }], max_tokens: 8 };
}

/** Values of the wrong type or out of range for each field the gateway validates (null is valid for optional fields). */
const WRONG_VALUES: Record<string, Json[]> = {
  model: [null, 1, true, [], {}, '', 'm'.repeat(300), ['sim-small'], { id: 'sim-small' }],
  messages: [null, 'hello', 1, {}, [], [1], ['hi'], [null], [{}], [{ role: 1 }], [{ role: '' }], [{ role: 'r'.repeat(65) }], [[{ role: 'user' }]]],
  stream: ['true', 1, 0, 'yes', [], {}],
  max_tokens: [0, -1, 1.5, '10', true, [], {}, 1e12, 'NaN'],
  temperature: ['hot', 2.5, -0.1, true, [], {}, '0.5'],
  top_p: [1.5, -1, 'x', false],
  n: [0, 129, 1.5, 'two'],
  stream_options: ['x', 1, true, []],
  max_completion_tokens: [0, -5, 'many', 2.5],
};
const CHAT_ONLY = new Set(['messages', 'max_completion_tokens']);

const CONTENT_TYPES = ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', 'text/json', 'application/jsonp', 'application/json-patch+json', 'image/png', 'application/octet-stream'];

const INVALID_UTF8 = [[0xff], [0xfe, 0xff], [0xc3, 0x28], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xe2, 0x82], [0x80]];

/** Generates `count` malformed requests, the same ones for the same seed. */
export function buildFuzzCorpus(seed: number, count: number, options: FuzzOptions): FuzzCase[] {
  const random = new SeededRandomSource(seed);
  const int = (n: number) => Math.floor(random.next() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)];
  const auth = { authorization: `Bearer ${options.apiKey}` };
  const json = { ...auth, 'content-type': 'application/json' };
  const post = (path: string, body: Buffer | string, headers: Record<string, string> = json) => rawRequest('POST', path, headers, body);

  const generators: (() => Omit<FuzzCase, 'kind'>)[] = [
    // Mutated JSON: random edits until the text no longer parses.
    () => {
      const path = pick(INFERENCE_PATHS);
      const original = JSON.stringify(validBody(path));
      let text = original;
      do {
        text = original;
        for (let edits = 1 + int(3); edits > 0; edits--) {
          const at = int(text.length);
          const op = int(5);
          if (op === 0) text = text.slice(0, at) + text.slice(at + 1);
          else if (op === 1) text = text.slice(0, at) + pick(['{', '}', '[', ']', '"', ',', ':', '\\', '\u0001', 'x', '0']) + text.slice(at);
          else if (op === 2) text = text.slice(0, at);
          else if (op === 3) text = text.slice(0, at) + text.slice(at, at + 1 + int(8)).repeat(2) + text.slice(at + 1 + int(8));
          else text = text.slice(0, at) + pick(['NaN', 'undefined', "'x'", '0x10', '01', '.5', 'tru', '/*c*/']) + text.slice(at);
        }
      } while (parses(text));
      return { bytes: post(path, text), expect: [400] };
    },
    // A field of the wrong type or out of range.
    () => {
      const path = pick(['/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/jobs'] as const);
      const fields = path === '/v1/embeddings' ? ['model'] : Object.keys(WRONG_VALUES).filter((f) => !CHAT_ONLY.has(f) || path !== '/v1/completions');
      const field = pick(fields);
      return { bytes: post(path, JSON.stringify({ ...validBody(path), [field]: pick(WRONG_VALUES[field]) })), expect: [400] };
    },
    // A body that is JSON but not an object, or lacks a required field.
    () => {
      const path = pick(INFERENCE_PATHS);
      const body = validBody(path);
      const required = Object.keys(body).filter((k) => k !== 'max_tokens');
      const { [pick(required)]: _dropped, ...missing } = body;
      return { bytes: post(path, JSON.stringify(pick<Json>([missing, [], 'text', 42, true, null, [body]]))), expect: [400] };
    },
    // Headers out of the contract's range, or a missing/unknown/odd key.
    () => {
      const path = pick(INFERENCE_PATHS);
      const [headers, expect]: [Record<string, string>, number] = pick([
        [{ ...json, 'x-priority': pick(['urgent', 'HIGHEST', '1', 'high;low', 'nörmal', '-']) }, 400],
        [{ ...json, 'x-request-timeout-ms': pick(['-5', 'abc', '1e3', '0', '000', '12.5', '0x10', '+7', '5 ms']) }, 400],
        [{ ...json, 'x-request-id': 'i'.repeat(129 + int(2000)) }, 400],
        [{ 'content-type': 'application/json' }, 401],
        [{ 'content-type': 'application/json', authorization: `Bearer ${options.apiKey}x` }, 401],
        [{ 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`u:${options.apiKey}`).toString('base64')}` }, 401],
        [{ 'content-type': 'application/json', 'x-api-key': options.apiKey.slice(0, -1) }, 401],
        [{ 'content-type': 'application/json', authorization: `Bearer ${'k'.repeat(4000 + int(4000))}` }, 401],
      ] as [Record<string, string>, number][]);
      return { bytes: post(path, JSON.stringify(validBody(path)), headers), expect: [expect] };
    },
    // A body over MAX_BODY_BYTES, framed honestly, with a lying Content-Length, or chunked.
    () => {
      const path = pick(INFERENCE_PATHS);
      const big = JSON.stringify({ ...validBody(path), padding: 'p'.repeat(options.maxBodyBytes + int(options.maxBodyBytes)) });
      const framing = int(3);
      if (framing === 0) return { bytes: post(path, big), expect: [413] };
      if (framing === 1) {
        return { bytes: rawRequest('POST', path, { ...json, 'content-length': String(options.maxBodyBytes * (2 + int(1000))) }, '{"model":'), expect: [413] };
      }
      const chunked = Buffer.concat([...chunk(Buffer.from(big), 4096), Buffer.from('0\r\n\r\n')]);
      return { bytes: rawRequest('POST', path, { ...json, 'transfer-encoding': 'chunked' }, chunked), expect: [413] };
    },
    // Invalid UTF-8 inside an otherwise valid body.
    () => {
      const path = pick(INFERENCE_PATHS);
      const text = JSON.stringify(validBody(path));
      const at = text.indexOf('hello') + int(5);
      const bytes = Buffer.concat([Buffer.from(text.slice(0, at)), Buffer.from(pick(INVALID_UTF8)), Buffer.from(text.slice(at))]);
      return { bytes: post(path, bytes), expect: [400] };
    },
    // A valid body under the wrong content type, or none.
    () => {
      const path = pick(INFERENCE_PATHS);
      const contentType = pick([...CONTENT_TYPES, '']);
      const headers = contentType ? { ...auth, 'content-type': contentType } : auth;
      return { bytes: post(path, JSON.stringify(validBody(path)), headers), expect: [400, 415] };
    },
    // Prototype-pollution keys, at the top or nested, plain or \u-escaped.
    () => {
      const path = pick(INFERENCE_PATHS);
      const body = JSON.stringify(validBody(path)).slice(1, -1);
      const poison = pick([
        '"__proto__":{"admin":true}',
        '"constructor":{"prototype":{"admin":true}}',
        '"__pro\\u0074o__":{"admin":true}',
        '"\\u005f_proto__":{"polluted":1}',
        '"x":{"__proto__":{"a":1}}',
        '"x":[{"constructor":{"prototype":{"a":1}}}]',
      ]);
      return { bytes: post(path, int(2) ? `{${poison},${body}}` : `{${body},${poison}}`), expect: [400] };
    },
    // Nesting deeper than the parser allows, or very wide JSON of the wrong type.
    () => {
      const path = pick(INFERENCE_PATHS);
      const depth = 65 + int(Math.min(4000, options.maxBodyBytes / 4));
      if (int(3) === 0) {
        const wide = `[${Array.from({ length: Math.floor(options.maxBodyBytes / 8) }, (_, i) => i).join(',')}]`;
        return { bytes: post(path, `{"model":"sim-small","messages":${wide},"prompt":${wide},"input":{"a":${wide}},"max_tokens":-1}`), expect: [400, 413] };
      }
      const nested = '['.repeat(depth) + ']'.repeat(depth);
      const body = JSON.stringify(validBody(path)).slice(0, -1) + `,"extra":${nested}}`;
      return { bytes: post(path, body), expect: [400, 413] };
    },
    // Malformed HTTP that Node's parser refuses before any route sees it; nothing else is wrong.
    () => {
      const body = JSON.stringify(validBody('/v1/chat/completions'));
      const ok = `content-type: application/json\r\nauthorization: Bearer ${options.apiKey}`;
      const bad = pick([
        `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n${ok}\r\nBad Header: 1\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
        `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n${ok}\r\nx-odd: a\u0001b\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
        `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n${ok}\r\ncontent-length: abc\r\n\r\n${body}`,
        `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n${ok}\r\ncontent-length: 5\r\ncontent-length: 7\r\n\r\n${body}`,
        `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n${ok}\r\ncontent-length: ${body.length}\r\ntransfer-encoding: chunked\r\n\r\n${body}`,
        `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n${ok}\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n${body}\r\n0\r\n\r\n`,
        `POST /v1/chat/completions HTTP/9.9\r\nHost: x\r\n${ok}\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
        `POST /v1/chat/completions\r\nHost: x\r\n${ok}\r\n\r\n`,
        `PO ST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n${ok}\r\n\r\n`,
        `POST /v1/chat/completions HTTP/1.1\r\n${ok}\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
        `POST /v1/chat/completions HTTP/1.1\nHost: x\n\x00\n\n`,
      ]);
      return { bytes: Buffer.from(bad, 'latin1'), expect: [400] };
    },
    // Routes and methods that do not exist.
    () => {
      const [method, path] = pick([['GET', '/v1/chat/completions'], ['PUT', '/v1/completions'], ['PATCH', '/v1/embeddings'], ['POST', '/v1/models'], ['POST', '/v2/chat/completions'], ['POST', '/v1/chat/completions/../../etc/passwd'], ['POST', '/v1/%00']]);
      return { bytes: rawRequest(method, path, json, JSON.stringify(validBody('/v1/chat/completions'))), expect: [400, 404] };
    },
  ];
  const kinds = ['mutated-json', 'wrong-type', 'not-an-object', 'bad-header', 'oversized', 'invalid-utf8', 'content-type', 'proto-key', 'deep-or-wide', 'malformed-http', 'no-route'];
  return Array.from({ length: count }, (_, i) => {
    const which = i % generators.length;
    return { kind: kinds[which], ...generators[which]() };
  });
}

function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

function chunk(data: Buffer, size: number): Buffer[] {
  const parts: Buffer[] = [];
  for (let at = 0; at < data.length; at += size) {
    const part = data.subarray(at, at + size);
    parts.push(Buffer.from(`${part.length.toString(16)}\r\n`), part, Buffer.from('\r\n'));
  }
  return parts;
}
