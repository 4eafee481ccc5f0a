import { Module } from '@nestjs/common';
import { DispatchModule } from '../dispatch/dispatch.module';
import { FilesModule } from '../files/files.module';
import { MetricsModule } from '../metrics/metrics.module';
import { QueueModule } from '../queue/queue.module';
import { UpstreamModule } from '../upstream/upstream.module';
import { BatchFinalizer } from './batch-finalizer';
import { BatchLineExecutor } from './batch-line-executor';
import { BatchPreemption } from './batch-preemption';
import { BatchSweeper } from './batch-sweeper';
import { BatchFigures } from './batch-figures';
import { BatchRunner } from './batch-runner';
import { BatchStore } from './batch-store';
import { BatchMetrics } from './batch.metrics';
import { BatchesController } from './batches.controller';
import { BatchesService } from './batches.service';

/** OpenAI's Batch API: lines run on idle capacity, below every interactive priority. */
@Module({
  imports: [QueueModule, DispatchModule, UpstreamModule, FilesModule, MetricsModule],
  controllers: [BatchesController],
  providers: [BatchStore, BatchRunner, BatchLineExecutor, BatchPreemption, BatchSweeper, BatchFinalizer, BatchesService, BatchFigures, BatchMetrics],
  exports: [BatchStore, BatchRunner, BatchFigures],
})
export class BatchModule {}
