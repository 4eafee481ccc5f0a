import { BullModule } from '@nestjs/bullmq';
import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { DispatchModule } from '../dispatch/dispatch.module';
import { AdminJobsController } from './admin-jobs.controller';
import { INFERENCE_QUEUE } from './inference-job';
import { InferenceProcessor } from './inference.processor';
import { JobsController } from './jobs.controller';
import { JobsService } from './jobs.service';
import { QueueFigures } from './queue-figures.service';
import { QueueService } from './queue.service';
import { QueueHealthIndicator } from './queue.health';
import { CancellationModule } from '../cancellation/cancellation.module';
import { DeliveryModule } from '../delivery/delivery.module';
import { SlotService } from './slot.service';

@Module({
  imports: [BullModule.registerQueue({ name: INFERENCE_QUEUE }), DispatchModule, DeliveryModule, CancellationModule, TerminusModule],
  controllers: [JobsController, AdminJobsController],
  providers: [QueueService, JobsService, QueueFigures, InferenceProcessor, QueueHealthIndicator, SlotService],
  exports: [QueueService, JobsService, QueueFigures, QueueHealthIndicator, SlotService],
})
export class QueueModule {}
