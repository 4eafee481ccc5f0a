import { Module } from '@nestjs/common';
import { BreakerModule } from '../breaker/breaker.module';
import { Sleeper, TimerSleeper } from '../retry/sleeper';
import { UpstreamModule } from '../upstream/upstream.module';
import { RetryBudgetService } from './retry-budget.service';
import { UpstreamDispatcher } from './upstream-dispatcher';

@Module({
  imports: [UpstreamModule, BreakerModule],
  providers: [UpstreamDispatcher, RetryBudgetService, { provide: Sleeper, useClass: TimerSleeper }],
  exports: [UpstreamDispatcher, RetryBudgetService],
})
export class DispatchModule {}
