/** Small fetch helpers for e2e tests. Every call has a deadline so that no test can hang. */

/** One request, for {@link send} and {@link request}. */
export interface RequestOptions {
  /** Default `GET`. */
  method?: string;
  headers?: Record<string, string>;
  /**
   * A string or bytes go as they are, anything else as JSON. With a body, `content-type` is
   * `application/json` unless `headers` name another.
   */
  body?: unknown;
  /** Default 10 s. */
  timeoutMs?: number;
  /** Ends the request instead of the timeout (for tests that hang up themselves). */
  signal?: AbortSignal;
}

/** An answer read in full: its text, and that text parsed as JSON (undefined when it is not JSON). */
export interface JsonResponse {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

/** Sends one request and returns the response unread (for streams, and for requests the test aborts). */
export function send(url: string, { method = 'GET', headers = {}, body, timeoutMs = 10_000, signal }: RequestOptions = {}): Promise<Response> {
  const raw = body === undefined || typeof body === 'string' || body instanceof Uint8Array;
  return fetch(url, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: raw ? (body as string | Uint8Array | undefined) : JSON.stringify(body),
    signal: signal ?? AbortSignal.timeout(timeoutMs),
  });
}

/** Sends one request and reads the whole answer. */
export async function request(url: string, options: RequestOptions = {}): Promise<JsonResponse> {
  const response = await send(url, options);
  const text = await response.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json };
}

/** POSTs `body` (JSON unless it is a string or bytes) and reads the whole answer. */
export function postJson(url: string, body: unknown, headers: Record<string, string> = {}, timeoutMs = 30_000): Promise<JsonResponse> {
  return request(url, { method: 'POST', headers, body, timeoutMs });
}

export function getJson(url: string, headers: Record<string, string> = {}, timeoutMs = 10_000): Promise<JsonResponse> {
  return request(url, { headers, timeoutMs });
}

/** POSTs `body` as JSON and reads the answer as SSE `data` payloads. */
export async function postSse(url: string, body: unknown, headers: Record<string, string> = {}, timeoutMs = 15_000) {
  const response = await send(url, { method: 'POST', headers, body, timeoutMs });
  return { status: response.status, headers: response.headers, events: await readSse(response) };
}

/** Reads an SSE response into its `data` payloads. */
export async function readSse(response: Response): Promise<string[]> {
  return parseSse(await response.text());
}

/** The `data` payloads of an SSE text. */
export function parseSse(text: string): string[] {
  return text
    .split('\n\n')
    .map((e) => e.trim())
    .filter((e) => e.startsWith('data: '))
    .map((e) => e.slice(6));
}

export function chatBody(extra: Record<string, unknown> = {}) {
  return { model: 'sim-small', messages: [{ role: 'user', content: 'hello' }], ...extra };
}

/** The simulator's deterministic answer of `n` words: `word1 word2 … wordn `. */
export function words(n: number): string {
  return Array.from({ length: n }, (_, i) => `word${i + 1} `).join('');
}

/** Asserts the contract's error shape (API.md §4); returns the error object. */
export function expectErrorShape(json: any): { message: string; type: string; code: string | null; param: string | null; suggestions: string[] } {
  if (!json || typeof json !== 'object' || !json.error) throw new Error(`not an error body: ${JSON.stringify(json)}`);
  const e = json.error;
  for (const key of ['message', 'type', 'param', 'code', 'suggestions']) {
    if (!(key in e)) throw new Error(`error body lacks ${key}: ${JSON.stringify(json)}`);
  }
  if (typeof e.message !== 'string' || typeof e.type !== 'string' || !Array.isArray(e.suggestions)) {
    throw new Error(`error body has wrong types: ${JSON.stringify(json)}`);
  }
  return e;
}

/**
 * A sender of chat completions at a given priority that records, in `finished`, the name of each request
 * as its 200 arrives: for asserting the order in which the queue served them.
 */
export function finishOrderSender(baseUrl: string, finished: string[]) {
  return (name: string, priority: string, latencyMs: number) =>
    postJson(`${baseUrl}/v1/chat/completions`, chatBody({ x_sim: { latencyMs } }), { 'x-priority': priority }).then((res) => {
      if (res.status !== 200) throw new Error(`${name}: ${res.status} ${res.text}`);
      finished.push(name);
    });
}
