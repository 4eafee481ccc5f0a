import { Global, Module } from '@nestjs/common';
import { Clock, SystemClock } from './clock';
import { MathRandomSource, RandomSource } from './random';
import { RequestContextGuard } from './request-context.guard';
import { ShutdownGuard } from './shutdown.guard';
import { ShutdownService } from './shutdown.service';

/** Cross-cutting providers: the clock and random boundaries, shutdown state, the common guards. */
@Global()
@Module({
  providers: [
    { provide: Clock, useClass: SystemClock },
    { provide: RandomSource, useClass: MathRandomSource },
    ShutdownService,
    ShutdownGuard,
    RequestContextGuard,
  ],
  exports: [Clock, RandomSource, ShutdownService, ShutdownGuard, RequestContextGuard],
})
export class CommonModule {}
