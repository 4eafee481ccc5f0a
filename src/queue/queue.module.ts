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
import { ResponsesModule } from '../responses/responses.module';
import { BackgroundResponses } from './background-responses.service';

@Module({
  imports: [BullModule.registerQueue({ name: INFERENCE_QUEUE }), DispatchModule, DeliveryModule, CancellationModule, ResponsesModule, TerminusModule],
  controllers: [JobsController, AdminJobsController],
  providers: [QueueService, JobsService, BackgroundResponses, QueueFigures, InferenceProcessor, QueueHealthIndicator, SlotService],
  exports: [QueueService, JobsService, BackgroundResponses, QueueFigures, QueueHealthIndicator, SlotService],
})
export class QueueModule {}
