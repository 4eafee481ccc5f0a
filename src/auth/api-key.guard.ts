import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { routeKindOf } from '../common/route-kind.decorator';
import { AuthService } from './auth.service';
import { assertHeaderLimits } from './header-limits';

/**
 * Resolves the caller's key into `request.bulwark.client` (id, tier, admin) or refuses the request.
 * Cheap by design: hashing and a map lookup, no Redis. Public routes pass untouched.
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly auth: AuthService,
  ) {}

  canActivate(context: ExecutionContext): boolean {
    const kind = routeKindOf(this.reflector, context);
    if (kind === 'public') return true;
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    assertHeaderLimits(request);
    const identity = this.auth.authorize(kind, request.headers);
    if (identity && request.bulwark) request.bulwark.client = identity;
    return true;
  }
}
