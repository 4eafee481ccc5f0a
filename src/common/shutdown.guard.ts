import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { ShuttingDownError } from './errors';
import { routeKindOf } from './route-kind.decorator';
import { ShutdownService } from './shutdown.service';

/** Refuses new work with 503 `shutting_down` while the instance drains; health stays reachable. */
@Injectable()
export class ShutdownGuard implements CanActivate {
  constructor(
    private readonly reflector: Reflector,
    private readonly shutdown: ShutdownService,
  ) {}

  canActivate(context: ExecutionContext): boolean {
    if (this.shutdown.draining && routeKindOf(this.reflector, context) !== 'public') throw new ShuttingDownError();
    return true;
  }
}
