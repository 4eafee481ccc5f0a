import { performance } from 'node:perf_hooks';
import { Agent, request } from 'undici';

/** One streamed chat request as the client saw it. */
export interface StreamedTurn {
  status: number;
  /** Time to the first content delta (the first token), ms; NaN when none came. */
  ttftMs: number;
  totalMs: number;
  /** The streamed text, concatenated. */
  content: string;
  upstream?: string;
  hedged: boolean;
}

/** Keep-alive connections for `clients` concurrent streaming clients. */
export function streamAgent(clients: number): Agent {
  return new Agent({ connections: clients, keepAliveTimeout: 10_000 });
}

/** Sends one streaming chat completion and reads it to its end, timing its first content delta. */
export async function streamChat(origin: string, agent: Agent, body: Record<string, unknown>, timeoutMs = 60_000): Promise<StreamedTurn> {
  const started = performance.now();
  const response = await request(`${origin}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true }),
    dispatcher: agent,
    signal: AbortSignal.timeout(timeoutMs),
  });
  let ttftMs = Number.NaN;
  let content = '';
  let buffered = '';
  for await (const chunk of response.body) {
    buffered += (chunk as Buffer).toString('utf8');
    let end: number;
    while ((end = buffered.indexOf('\n\n')) >= 0) {
      const event = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      const data = event.startsWith('data: ') ? event.slice(6) : '';
      if (!data || data === '[DONE]') continue;
      const delta = (JSON.parse(data) as { choices?: { delta?: { content?: string } }[] }).choices?.[0]?.delta?.content;
      if (delta) {
        if (Number.isNaN(ttftMs)) ttftMs = performance.now() - started;
        content += delta;
      }
    }
  }
  const header = (name: string) => {
    const value = response.headers[name];
    return typeof value === 'string' ? value : undefined;
  };
  return { status: response.statusCode, ttftMs, totalMs: performance.now() - started, content, upstream: header('x-upstream'), hedged: header('x-hedged') === 'true' };
}
