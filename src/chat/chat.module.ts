import { Module } from '@nestjs/common';
import { DispatchModule } from '../dispatch/dispatch.module';
import { UpstreamModule } from '../upstream/upstream.module';
import { ChatController } from './chat.controller';
import { InferenceService } from './inference.service';
import { ModelsService } from './models.service';

@Module({
  imports: [DispatchModule, UpstreamModule],
  controllers: [ChatController],
  providers: [InferenceService, ModelsService],
})
export class ChatModule {}
