import { DynamicModule, Module } from '@nestjs/common';
import { APP_FILTER, APP_GUARD } from '@nestjs/core';
import { ConfigModule } from '@nestjs/config';
import { BullModule } from '@nestjs/bullmq';
import { ScheduleModule } from '@nestjs/schedule';
import { LoggerModule } from 'nestjs-pino';
import { AdaptiveModule } from './adaptive/adaptive.module';
import { AdmissionGuard } from './adaptive/admission.guard';
import { ApiKeyGuard } from './auth/api-key.guard';
import { AuthModule } from './auth/auth.module';
import { RateLimitGuard } from './auth/rate-limit.guard';
import { ChatModule } from './chat/chat.module';
import { ClusterModule } from './cluster/cluster.module';
import { CommonModule } from './common/common.module';
import { OpenAIExceptionFilter } from './common/openai-exception.filter';
import { RequestContextGuard } from './common/request-context.guard';
import { ShutdownGuard } from './common/shutdown.guard';
import { allConfigSections } from './config/sections';
import { loggerOptions } from './logging';
import { HealthModule } from './health/health.module';
import { MetricsModule } from './metrics/metrics.module';
import { DashboardModule } from './dashboard/dashboard.module';
import { QueueModule } from './queue/queue.module';
import { RedisModule } from './redis/redis.module';
import { RedisService } from './redis/redis.service';
import { RUNTIME, Runtime } from './runtime';
import { LogLevel } from './config/environment';
import { TracingModule } from './tracing/tracing.module';
import { FilesModule } from './files/files.module';
import { BatchModule } from './batch/batch.module';

@Module({})
export class AppModule {
  /** The whole application, given what the process prepared (Redis, upstreams); `tracing`: OTel is on. */
  static forRoot(runtime: Runtime, logLevel: LogLevel, tracing = false): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot({ isGlobal: true, ignoreEnvFile: true, load: allConfigSections, cache: true }),
        LoggerModule.forRoot(loggerOptions(logLevel, tracing)),
        TracingModule,
        { module: RuntimeHolder, global: true, providers: [{ provide: RUNTIME, useValue: runtime }], exports: [RUNTIME] },
        CommonModule,
        RedisModule,
        ClusterModule,
        ScheduleModule.forRoot(),
        BullModule.forRootAsync({
          inject: [RedisService],
          useFactory: (redis: RedisService) => ({ connection: redis.bullConnection('bullmq'), prefix: 'bulwark' }),
        }),
        AuthModule,
        QueueModule,
        AdaptiveModule,
        HealthModule,
        MetricsModule,
        DashboardModule,
        ChatModule,
        FilesModule,
        BatchModule,
      ],
      providers: [
        // Global guards run in this order; `useExisting` lets tests replace any of them.
        { provide: APP_GUARD, useExisting: ShutdownGuard },
        { provide: APP_GUARD, useExisting: RequestContextGuard },
        { provide: APP_GUARD, useExisting: ApiKeyGuard },
        { provide: APP_GUARD, useExisting: RateLimitGuard },
        { provide: APP_GUARD, useExisting: AdmissionGuard },
        { provide: APP_FILTER, useClass: OpenAIExceptionFilter },
      ],
    };
  }
}

@Module({})
class RuntimeHolder {}
