import { Module } from '@nestjs/common';
import { ResponseEventTail } from './response-event-tail';
import { ResponseFigures } from './response-figures';
import { ResponseStore } from './response-store';

/** Background responses' records and resumable event logs in Redis (below the queue, which runs them). */
@Module({
  providers: [ResponseStore, ResponseEventTail, ResponseFigures],
  exports: [ResponseStore, ResponseEventTail, ResponseFigures],
})
export class ResponsesModule {}
