import { Inject, Injectable, Logger } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { Listeners } from '../common/listeners';
import { TokensExceedLimitError } from '../common/errors';
import type { ClientIdentity, RequestContext, TokenReservation } from '../common/request-context';
import { authConfig } from '../config/sections';
import type { AnswerUsage } from './answer-usage';
import { RateLimiterService, TokenLimits, TokenPeriod } from './rate-limiter.service';
import { estimateTokens } from './token-estimate';

/** The tokens one request reserves against its key's limits. */
export interface TokenPlan extends TokenLimits {
  cost: number;
  promptTokens: number;
}

/** How a request's answer ended, for its usage and its settlement. */
export interface AnswerOutcome {
  /** The upstream's `usage`, when the answer reported one. */
  usage?: AnswerUsage;
  /** Content events relayed to the client (streams). */
  relayed?: number;
  /** An answer (JSON or the start of a stream) reached the client. */
  answered: boolean;
  stream: boolean;
  /** It failed after the upstream was called (the upstream read the prompt). */
  upstreamFailed?: boolean;
}

/** A request or job that never reached an upstream: its whole reservation is given back. */
export const NEVER_RAN: AnswerOutcome = { answered: false, stream: false };

/** Tokens one answer used, for the metrics: `estimated` when the answer reported no usage. */
export interface UsageEvent {
  keyName: string;
  model: string;
  usage: AnswerUsage;
}

/**
 * The token accounting a queued job (jobs API, background response) carries to the worker that finishes
 * it, on whichever instance: its key's name for the usage metrics and, when the key has token limits,
 * the reservation to settle with what the job used.
 */
export interface JobTokens {
  keyName: string;
  reservation?: TokenReservation & TokenLimits;
}

/** A key's token limits, when it has any. */
export function tokenLimitsOf(client: ClientIdentity): TokenLimits | undefined {
  const perMinute = client.limits?.tokensPerMinute;
  const perDay = client.limits?.tokensPerDay;
  return perMinute || perDay ? { perMinute, perDay } : undefined;
}

/**
 * Token accounting of each request: what it reserves at admission (its prompt's estimate plus its output
 * limit), and, once its answer has ended, the settlement of that reservation with what it used, and the
 * usage that the metrics count. A request settles once; a refusal before the upstream gives everything back.
 */
@Injectable()
export class TokenUsageService {
  private readonly listeners = new Listeners<[UsageEvent]>('token usage', new Logger(TokenUsageService.name));

  constructor(
    @Inject(authConfig.KEY) private readonly config: ConfigType<typeof authConfig>,
    private readonly limiter: RateLimiterService,
  ) {}

  /** Called with the usage of every answer that reported or relayed any. */
  onUsage(listener: (event: UsageEvent) => void): () => void {
    return this.listeners.add(listener);
  }

  /**
   * What a request of `client` reserves, or undefined when the key has no token limits. A request without
   * an output limit reserves `TOKEN_LIMIT_DEFAULT_MAX_TOKENS`, cut to what the key's limit leaves.
   * @throws TokensExceedLimitError (400) when its worst case is larger than the key's limit itself
   */
  planFor(client: ClientIdentity, body: unknown, embeddings: boolean): TokenPlan | undefined {
    const limits = tokenLimitsOf(client);
    if (!limits) return undefined;
    const estimate = estimateTokens(body, embeddings, this.config.tokenLimitDefaultMaxTokens);
    const periods: [TokenPeriod, number | undefined][] = [['minute', limits.perMinute], ['day', limits.perDay]];
    const [period, smallest] = periods.filter((p): p is [TokenPeriod, number] => p[1] !== undefined).sort((a, b) => a[1] - b[1])[0];
    let output = estimate.outputTokens;
    if (estimate.defaulted) output = Math.max(0, Math.min(output, smallest - estimate.promptTokens));
    const cost = estimate.promptTokens + output;
    if (cost > smallest) throw new TokensExceedLimitError(smallest, period, cost, estimate.defaulted ? estimate.promptParam : estimate.param);
    return { ...limits, cost, promptTokens: estimate.promptTokens };
  }

  /** Ends a request's accounting (once; later calls do nothing): counts its usage and settles its reservation. */
  end(context: RequestContext, model: string, outcome: AnswerOutcome): void {
    const reservation = context.tokens;
    context.tokens = undefined;
    const limits = tokenLimitsOf(context.client);
    this.account(context.client.id, context.client.name, reservation && limits ? { ...reservation, ...limits } : undefined, model, outcome);
  }

  /**
   * What a request queued as a job carries for its accounting (see {@link JobTokens}). The request keeps
   * its reservation until {@link handOver}: a submission that fails is still settled by {@link end}.
   */
  forJob(context: RequestContext): JobTokens {
    const limits = tokenLimitsOf(context.client);
    return { keyName: context.client.name, reservation: context.tokens && limits ? { ...context.tokens, ...limits } : undefined };
  }

  /** The request's job was queued: the worker that finishes it settles the reservation, this request no longer does. */
  handOver(context: RequestContext): void {
    context.tokens = undefined;
  }

  /** Ends a job's accounting where the job finished: counts its usage and settles the reservation it carried. */
  endJob(clientId: string, tokens: JobTokens, model: string, outcome: AnswerOutcome): void {
    this.account(clientId, tokens.keyName, tokens.reservation, model, outcome);
  }

  private account(clientId: string, keyName: string, reservation: (TokenReservation & TokenLimits) | undefined, model: string, outcome: AnswerOutcome): void {
    const promptEstimate = reservation?.promptTokens ?? 0;
    const counted: AnswerUsage | undefined =
      outcome.usage ?? (outcome.stream && outcome.answered ? { promptTokens: promptEstimate, completionTokens: outcome.relayed ?? 0, cachedTokens: 0 } : undefined);
    if (counted) this.listeners.emit({ keyName, model, usage: counted });
    if (!reservation) return;
    let used: number;
    if (outcome.usage) used = outcome.usage.promptTokens + outcome.usage.completionTokens;
    else if (outcome.answered) used = outcome.stream ? promptEstimate + (outcome.relayed ?? 0) : reservation.reserved;
    else used = outcome.upstreamFailed ? promptEstimate + (outcome.relayed ?? 0) : 0;
    const limits: TokenLimits = { perMinute: reservation.perMinute, perDay: reservation.perDay };
    if (used !== reservation.reserved) this.limiter.settle(clientId, limits, used - reservation.reserved);
  }
}
