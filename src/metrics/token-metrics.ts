import { Injectable, OnApplicationBootstrap } from '@nestjs/common';
import { Counter, Gauge } from 'prom-client';
import { TokenBudgetsService } from '../auth/token-budgets.service';
import { TokenUsageService, UsageEvent } from '../auth/token-usage.service';
import { MetricsService } from './metrics.service';

/**
 * Token usage per client key, on the one registry: `bulwark_tokens_total{key_name,model,kind}` (prompt,
 * completion, cached; from the answers' `usage`, else a stream's prompt estimate and relayed count) and
 * `bulwark_token_budget_remaining{key_name,period}` for keys with token limits. Key names are the
 * configured names, never keys; models go through the bounded model labels.
 */
@Injectable()
export class TokenMetrics implements OnApplicationBootstrap {
  private readonly tokens: Counter<'key_name' | 'model' | 'kind'>;

  constructor(
    private readonly metrics: MetricsService,
    private readonly usage: TokenUsageService,
    budgets: TokenBudgetsService,
  ) {
    const registers = [metrics.registry];
    this.tokens = new Counter({
      name: 'bulwark_tokens_total',
      help: 'Tokens used per client key (its configured name) and model, by kind: prompt, completion, cached (prompt tokens served from the prefix cache).',
      labelNames: ['key_name', 'model', 'kind'] as const,
      registers,
    });
    new Gauge({
      name: 'bulwark_token_budget_remaining',
      help: 'Tokens a key with token limits may still reserve right now, across instances, per period (minute, day); read every 2 s.',
      labelNames: ['key_name', 'period'] as const,
      registers,
      collect() {
        this.reset();
        for (const budget of budgets.snapshot().budgets) this.set({ key_name: budget.key_name, period: budget.period }, budget.remaining);
      },
    });
  }

  onApplicationBootstrap(): void {
    this.usage.onUsage((event) => this.record(event));
  }

  private record({ keyName, model, usage }: UsageEvent): void {
    const labels = { key_name: keyName, model: this.metrics.models.label(model) };
    if (usage.promptTokens > 0) this.tokens.inc({ ...labels, kind: 'prompt' }, usage.promptTokens);
    if (usage.completionTokens > 0) this.tokens.inc({ ...labels, kind: 'completion' }, usage.completionTokens);
    if (usage.cachedTokens > 0) this.tokens.inc({ ...labels, kind: 'cached' }, usage.cachedTokens);
  }
}
