/** Small fetch helpers for e2e tests. Every call has a deadline so that no test can hang. */
export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}, timeoutMs = 30_000) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await response.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json };
}

export async function getJson(url: string, headers: Record<string, string> = {}, timeoutMs = 10_000) {
  const response = await fetch(url, { headers, signal: AbortSignal.timeout(timeoutMs) });
  const text = await response.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json };
}

/** Reads an SSE response into its `data` payloads. */
export async function readSse(response: Response): Promise<string[]> {
  const text = await response.text();
  return text
    .split('\n\n')
    .map((e) => e.trim())
    .filter((e) => e.startsWith('data: '))
    .map((e) => e.slice(6));
}

export function chatBody(extra: Record<string, unknown> = {}) {
  return { model: 'sim-small', messages: [{ role: 'user', content: 'hello' }], ...extra };
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
