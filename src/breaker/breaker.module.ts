import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { BreakerController } from './breaker.controller';
import { BreakerHealthIndicator } from './breaker.health';
import { BreakerService } from './breaker.service';

@Module({
  imports: [TerminusModule],
  controllers: [BreakerController],
  providers: [BreakerService, BreakerHealthIndicator],
  exports: [BreakerService, BreakerHealthIndicator],
})
export class BreakerModule {}
