import { Global, Module } from '@nestjs/common';
import { ApiKeyGuard } from './api-key.guard';
import { AuthService } from './auth.service';
import { RateLimitGuard } from './rate-limit.guard';
import { RateLimiterService } from './rate-limiter.service';
import { TokenBudgetsService } from './token-budgets.service';
import { TokenUsageService } from './token-usage.service';

/**
 * Client and admin keys, tiers and `service_tier` rights, request and token limits (reserve, then settle). Global so that the health and metrics
 * controllers can ask {@link AuthService.isAdmin} without importing it.
 */
@Global()
@Module({
  providers: [AuthService, RateLimiterService, TokenUsageService, TokenBudgetsService, ApiKeyGuard, RateLimitGuard],
  exports: [AuthService, TokenUsageService, TokenBudgetsService, ApiKeyGuard, RateLimitGuard],
})
export class AuthModule {}
