import { parseArgs } from 'node:util';

/** What one load test run does: the stages (one per concurrency level) and what each request sends. */
export interface LoadTestOptions {
  /** The gateway's OpenAI base URL, including `/v1`. */
  url: string;
  model: string;
  stream: boolean;
  /** Client key, sent as `Authorization: Bearer`; never printed. */
  key?: string;
  /** One stage per level, in the given order. */
  concurrency: number[];
  /** How long each stage sends new requests. */
  durationMs: number;
  /** When set, a stage ends after this many requests (or at `durationMs`, whichever comes first). */
  requests?: number;
  priority?: 'high' | 'normal' | 'low';
  /** Where to write the Markdown report. */
  reportPath?: string;
  /** Client-side bound on one request, response body included. */
  timeoutMs: number;
  /** A refused client waits its Retry-After before its next request (as the OpenAI SDKs do); default: at once, like hey. */
  honorRetryAfter: boolean;
  prompt: string;
  maxTokens: number;
}

/** A command line the tool cannot run; its message says what to fix. */
export class LoadTestUsageError extends Error {}

export const LOADTEST_USAGE = [
  'usage: npm run loadtest -- --url http://localhost:8000/v1 --model sim-small [--stream] [--key K]',
  '         [--concurrency 5,10,20] [--duration 30s] [--requests N] [--priority low] [--report results.md]',
  '         [--timeout 60s] [--honor-retry-after] [--prompt "What is 2+2?"] [--max-tokens 32]',
].join('\n');

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m)?$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000 };

/** `30s`, `500ms`, `2m` or a bare number of seconds, in milliseconds. */
export function parseDuration(name: string, raw: string): number {
  const match = DURATION.exec(raw.trim());
  const ms = match ? Number(match[1]) * UNIT_MS[match[2] ?? 's'] : NaN;
  if (!Number.isFinite(ms) || ms <= 0) throw new LoadTestUsageError(`--${name} must be a duration such as 30s, 500ms or 2m, got "${raw}"`);
  return Math.round(ms);
}

function positiveInt(name: string, raw: string, max = 100_000): number {
  const value = Number(raw.trim());
  if (!Number.isInteger(value) || value < 1 || value > max) throw new LoadTestUsageError(`--${name} must be a whole number from 1 to ${max}, got "${raw}"`);
  return value;
}

/** Whether the command line asks for the usage text (`--help` or `-h`, anywhere). */
export function wantsHelp(argv: string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}

/** Parses the tool's arguments (without node and the script); throws {@link LoadTestUsageError}. */
export function parseLoadTestArgs(argv: string[]): LoadTestOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        url: { type: 'string' },
        model: { type: 'string' },
        stream: { type: 'boolean', default: false },
        key: { type: 'string' },
        concurrency: { type: 'string', default: '5,10,20' },
        duration: { type: 'string', default: '30s' },
        requests: { type: 'string' },
        priority: { type: 'string' },
        report: { type: 'string' },
        timeout: { type: 'string', default: '60s' },
        'honor-retry-after': { type: 'boolean', default: false },
        prompt: { type: 'string', default: 'What is 2+2?' },
        'max-tokens': { type: 'string', default: '32' },
      },
    }));
  } catch (error) {
    throw new LoadTestUsageError((error as Error).message);
  }
  if (!values.url) throw new LoadTestUsageError('--url is required (the gateway base URL, e.g. http://localhost:8000/v1)');
  let url: URL;
  try {
    url = new URL(values.url);
  } catch {
    throw new LoadTestUsageError(`--url must be an http(s) URL, got "${values.url}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new LoadTestUsageError(`--url must be an http(s) URL, got "${values.url}"`);
  if (!values.model) throw new LoadTestUsageError('--model is required (e.g. sim-small)');
  const concurrency = values.concurrency.split(',').map((level) => positiveInt('concurrency', level, 10_000));
  const priority = values.priority;
  if (priority !== undefined && priority !== 'high' && priority !== 'normal' && priority !== 'low') {
    throw new LoadTestUsageError(`--priority must be high, normal or low, got "${priority}"`);
  }
  return {
    url: values.url.replace(/\/+$/, ''),
    model: values.model,
    stream: values.stream,
    key: values.key,
    concurrency,
    durationMs: parseDuration('duration', values.duration),
    requests: values.requests === undefined ? undefined : positiveInt('requests', values.requests, 10_000_000),
    priority,
    reportPath: values.report,
    timeoutMs: parseDuration('timeout', values.timeout),
    honorRetryAfter: values['honor-retry-after'],
    prompt: values.prompt,
    maxTokens: positiveInt('max-tokens', values['max-tokens']),
  };
}
