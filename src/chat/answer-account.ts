import { StreamUsageMeter, usageOfBody } from '../auth/answer-usage';
import { JobTokens, TokenUsageService } from '../auth/token-usage.service';
import { RequestTimeoutError, UpstreamBadResponseError, UpstreamError, UpstreamTimeoutError } from '../common/errors';
import type { RequestContext } from '../common/request-context';
import type { ServiceTier } from '../common/service-tier';
import type { InferencePath } from '../upstream/upstream.types';

const SERVICE_TIER_FIELD = /"service_tier":\s*(?:null|"[^"]*")/;

/**
 * Writes the serving tier into one SSE `data` payload without parsing it: chat and completions chunks get
 * a top-level `service_tier` (as OpenAI sends it in every chunk); Responses API events only where they carry
 * the `response` object. A `service_tier` already there (an OpenAI upstream's) is replaced, never doubled.
 */
export function stampServiceTier(data: string, tier: ServiceTier, responses: boolean): string {
  if (data.charCodeAt(0) !== 123 /* { */ || data.startsWith('{"error"')) return data;
  if (data.includes('"service_tier":')) return data.replace(SERVICE_TIER_FIELD, `"service_tier":"${tier}"`);
  if (responses) {
    const at = data.indexOf('"response":{');
    return at < 0 ? data : `${data.slice(0, at + 12)}"service_tier":"${tier}"${data[at + 12] === '}' ? '' : ','}${data.slice(at + 12)}`;
  }
  return data === '{}' ? `{"service_tier":"${tier}"}` : `{"service_tier":"${tier}",${data.slice(1)}`;
}

/**
 * The accounting of one request's answer, from the controller's hand-off to its last byte: it writes the
 * serving tier into the answer (`service_tier`), watches the usage the answer reports (or counts what a
 * stream relayed), and at the end has the token service count the usage and settle the reservation.
 */
export class AnswerAccount {
  private readonly tier: ServiceTier | undefined;
  private readonly responses: boolean;
  private meter?: StreamUsageMeter;
  private json?: unknown;
  private answered = false;
  private upstreamFailed = false;
  private ended = false;

  constructor(
    private readonly context: RequestContext,
    private readonly tokens: TokenUsageService,
    path: InferencePath,
    private model: string,
  ) {
    this.tier = path === '/embeddings' ? undefined : (context.serviceTier ?? 'default');
    this.responses = path === '/responses';
  }

  /** A JSON answer about to be sent: stamped with its tier when successful, its usage noted (for the model that answered). */
  answer<T extends { status: number; body: unknown; model: string }>(answer: T): T {
    if (answer.status >= 400) return answer;
    this.answered = true;
    this.model = answer.model;
    this.json = answer.body;
    if (this.tier && typeof answer.body === 'object' && answer.body !== null && !Array.isArray(answer.body)) {
      (answer.body as Record<string, unknown>).service_tier = this.tier;
    }
    return answer;
  }

  /** A stream about to be relayed, passed through event by event with its tier stamped and its usage watched. */
  stream({ events, model }: { events: AsyncIterable<string>; model: string }): AsyncIterable<string> {
    const meter = (this.meter = new StreamUsageMeter());
    this.answered = true;
    this.model = model;
    const inner = events[Symbol.asyncIterator]();
    const { tier, responses } = this;
    const iterator: AsyncIterator<string> = {
      async next() {
        const result = await inner.next();
        if (result.done) return result;
        meter.observe(result.value);
        return tier ? { done: false, value: stampServiceTier(result.value, tier, responses) } : result;
      },
      async return() {
        return (await inner.return?.()) ?? { done: true, value: undefined };
      },
    };
    return { [Symbol.asyncIterator]: () => iterator };
  }

  /**
   * What the request's job carries for its accounting, should it be queued as one (jobs API, background
   * response): the worker that finishes the job counts its usage and settles its reservation.
   */
  forJob(): JobTokens {
    return this.tokens.forJob(this.context);
  }

  /** Its job was queued: from here the job's worker accounts for it, and this request settles nothing. */
  handOver(): void {
    this.tokens.handOver(this.context);
  }

  /** The request failed; an upstream failure is charged the prompt (the upstream read it), any other refusal nothing. */
  failed(error: unknown): void {
    this.upstreamFailed ||= [UpstreamError, UpstreamBadResponseError, UpstreamTimeoutError, RequestTimeoutError].some((type) => error instanceof type);
  }

  /** Ends the accounting (once per request: later calls do nothing). */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    const stream = this.meter !== undefined;
    this.tokens.end(this.context, this.model, {
      usage: stream ? this.meter!.usage : usageOfBody(this.json),
      relayed: this.meter?.relayed,
      answered: this.answered,
      stream,
      upstreamFailed: this.upstreamFailed,
    });
  }
}
