import { BullModule } from '@nestjs/bullmq';
import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { DispatchModule } from '../dispatch/dispatch.module';
import { AdminJobsController } from './admin-jobs.controller';
import { DeliveryService } from './delivery.service';
import { INFERENCE_QUEUE } from './inference-job';
import { InferenceProcessor } from './inference.processor';
import { JobsController } from './jobs.controller';
import { JobsService } from './jobs.service';
import { QueueFigures } from './queue-figures.service';
import { QueueService } from './queue.service';
import { QueueHealthIndicator } from './queue.health';
import { InstanceIdentity } from './instance-identity';
import { SlotService } from './slot.service';

@Module({
  imports: [BullModule.registerQueue({ name: INFERENCE_QUEUE }), DispatchModule, TerminusModule],
  controllers: [JobsController, AdminJobsController],
  providers: [QueueService, JobsService, DeliveryService, QueueFigures, InferenceProcessor, QueueHealthIndicator, SlotService, InstanceIdentity],
  exports: [QueueService, JobsService, QueueFigures, QueueHealthIndicator],
})
export class QueueModule {}
