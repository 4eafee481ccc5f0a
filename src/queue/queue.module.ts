import { BullModule } from '@nestjs/bullmq';
import { Module } from '@nestjs/common';
import { DispatchModule } from '../dispatch/dispatch.module';
import { AdminJobsController } from './admin-jobs.controller';
import { DeliveryService } from './delivery.service';
import { INFERENCE_QUEUE } from './inference-job';
import { InferenceProcessor } from './inference.processor';
import { JobsController } from './jobs.controller';
import { JobsService } from './jobs.service';
import { QueueFigures } from './queue-figures.service';
import { QueueService } from './queue.service';

@Module({
  imports: [BullModule.registerQueue({ name: INFERENCE_QUEUE }), DispatchModule],
  controllers: [JobsController, AdminJobsController],
  providers: [QueueService, JobsService, DeliveryService, QueueFigures, InferenceProcessor],
  exports: [QueueService, JobsService, QueueFigures],
})
export class QueueModule {}
