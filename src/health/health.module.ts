import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { UpstreamModule } from '../upstream/upstream.module';
import { HealthController } from './health.controller';

@Module({
  imports: [TerminusModule.forRoot({ logger: false, errorLogStyle: 'json' }), UpstreamModule],
  controllers: [HealthController],
})
export class HealthModule {}
