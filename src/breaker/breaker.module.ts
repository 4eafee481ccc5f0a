import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { BreakerController } from './breaker.controller';
import { BreakerHealthIndicator } from './breaker.health';
import { BreakerService } from './breaker.service';
import { BreakerStateStore } from './breaker-state.store';

@Module({
  imports: [TerminusModule],
  controllers: [BreakerController],
  providers: [BreakerService, BreakerStateStore, BreakerHealthIndicator],
  exports: [BreakerService, BreakerHealthIndicator],
})
export class BreakerModule {}
