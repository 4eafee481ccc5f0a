import { Module } from '@nestjs/common';
import { AdaptiveModule } from '../adaptive/adaptive.module';
import { QueueModule } from '../queue/queue.module';
import { UpstreamModule } from '../upstream/upstream.module';
import { BackgroundResponsesController } from './background-responses.controller';
import { ChatController } from './chat.controller';
import { InferenceService } from './inference.service';
import { ModelsService } from './models.service';

@Module({
  imports: [QueueModule, AdaptiveModule, UpstreamModule],
  controllers: [ChatController, BackgroundResponsesController],
  providers: [InferenceService, ModelsService],
})
export class ChatModule {}
