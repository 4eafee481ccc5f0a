import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { Clock } from '../common/clock';
import { retryConfig } from '../config/sections';
import { RetryBudget } from '../retry/retry-budget';

/** The instance-wide retry budget (Finagle-style): retries may add at most RETRY_BUDGET_RATIO of load. */
@Injectable()
export class RetryBudgetService {
  private readonly budget: RetryBudget;

  constructor(@Inject(retryConfig.KEY) config: ConfigType<typeof retryConfig>, clock: Clock) {
    this.budget = new RetryBudget({ ratio: config.budgetRatio, minRetriesPerSecond: 1, ttlMs: 10_000 }, clock);
  }

  recordRequest(): void {
    this.budget.recordRequest();
  }

  tryWithdraw(): boolean {
    return this.budget.tryWithdraw();
  }

  available(): number {
    return this.budget.available();
  }
}
