import OpenAI, { toFile } from 'openai';
import { waitFor } from './wait';

/** One request line of a batch input file. */
export interface InputLine {
  custom_id: string;
  method: string;
  url: string;
  body: Record<string, unknown>;
}

/** A chat-completion batch line whose `user` is its custom_id, so the simulator's log names it. */
export function chatLine(customId: string, extra: Record<string, unknown> = {}): InputLine {
  return {
    custom_id: customId,
    method: 'POST',
    url: '/v1/chat/completions',
    body: { model: 'sim-small', messages: [{ role: 'user', content: `Question ${customId}` }], max_tokens: 4, user: customId, ...extra },
  };
}

/** The JSONL text of `lines`. */
export function jsonl(lines: unknown[]): string {
  return lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n';
}

/** Uploads `text` as a batch input file through the SDK. */
export async function upload(client: OpenAI, text: string, name = 'input.jsonl'): Promise<OpenAI.FileObject> {
  return client.files.create({ file: await toFile(Buffer.from(text), name), purpose: 'batch' });
}

/** Polls the batch until it reaches one of `statuses`. */
export function untilStatus(client: OpenAI, id: string, statuses: string[], timeoutMs = 30_000): Promise<OpenAI.Batch> {
  return waitFor(
    `batch ${id} to be ${statuses.join(' or ')}`,
    async () => {
      const batch = await client.batches.retrieve(id);
      return statuses.includes(batch.status) ? batch : undefined;
    },
    timeoutMs,
    100,
  );
}

/** The lines of a file, parsed. */
export async function fileLines<T = Record<string, unknown>>(client: OpenAI, id: string): Promise<T[]> {
  const text = await (await client.files.content(id)).text();
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as T);
}

/** An output or error line of a batch. */
export interface OutputLine {
  id: string;
  custom_id: string;
  response: { status_code: number; request_id: string; body: Record<string, unknown> } | null;
  error: { code: string; message: string } | null;
}
