import { Module } from '@nestjs/common';
import { CancellationModule } from '../cancellation/cancellation.module';
import { DeliveryService } from './delivery.service';

@Module({
  imports: [CancellationModule],
  providers: [DeliveryService],
  exports: [DeliveryService],
})
export class DeliveryModule {}
