import { Global, Module } from '@nestjs/common';
import { ApiKeyGuard } from './api-key.guard';
import { AuthService } from './auth.service';
import { RateLimitGuard } from './rate-limit.guard';
import { RateLimiterService } from './rate-limiter.service';

/**
 * Client and admin keys, tiers and the per-key rate limit. Global so that the health and metrics
 * controllers can ask {@link AuthService.isAdmin} without importing it.
 */
@Global()
@Module({
  providers: [AuthService, RateLimiterService, ApiKeyGuard, RateLimitGuard],
  exports: [AuthService, ApiKeyGuard, RateLimitGuard],
})
export class AuthModule {}
