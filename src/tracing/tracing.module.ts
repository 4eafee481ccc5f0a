import { Global, Module } from '@nestjs/common';
import { TracingService } from './tracing.service';

/** OpenTelemetry tracing for every module (off unless an OTLP endpoint is configured). */
@Global()
@Module({
  providers: [TracingService],
  exports: [TracingService],
})
export class TracingModule {}
