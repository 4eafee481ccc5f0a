import { Module } from '@nestjs/common';
import { BreakerService } from './breaker.service';

@Module({
  providers: [BreakerService],
  exports: [BreakerService],
})
export class BreakerModule {}
