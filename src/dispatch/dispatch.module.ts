import { Module } from '@nestjs/common';
import { BreakerModule } from '../breaker/breaker.module';
import { Sleeper, TimerSleeper } from '../retry/sleeper';
import { UpstreamModule } from '../upstream/upstream.module';
import { FirstByteTimes } from './first-byte-times';
import { HedgeBudgetService } from './hedge-budget.service';
import { HedgedAttempt } from './hedged-attempt';
import { PrefixIndex } from './prefix-index.service';
import { RetryBudgetService } from './retry-budget.service';
import { RoutePlanner } from './route-planner';
import { UpstreamAttempt } from './upstream-attempt';
import { UpstreamDispatcher } from './upstream-dispatcher';

@Module({
  imports: [UpstreamModule, BreakerModule],
  providers: [
    UpstreamDispatcher,
    RoutePlanner,
    PrefixIndex,
    UpstreamAttempt,
    HedgedAttempt,
    HedgeBudgetService,
    FirstByteTimes,
    RetryBudgetService,
    { provide: Sleeper, useClass: TimerSleeper },
  ],
  exports: [UpstreamDispatcher, RetryBudgetService],
})
export class DispatchModule {}
