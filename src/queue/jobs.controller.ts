import { Controller, Delete, Get, Param, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import type { RequestContext } from '../common/request-context';
import { Kind } from '../common/route-kind.decorator';
import { JobsService } from './jobs.service';

/**
 * The jobs API's reads and cancels, and the queue's own figures (API.md §1). `POST /v1/jobs` is a chat
 * request and lives with the chat routes.
 */
@Controller('v1')
export class JobsController {
  constructor(private readonly jobs: JobsService) {}

  @Get('jobs/:id') @Kind('client')
  get(@Param('id') id: string, @Req() request: FastifyRequest) {
    return this.jobs.get(id, (request.bulwark as RequestContext).client.id);
  }

  @Delete('jobs/:id') @Kind('client')
  cancel(@Param('id') id: string, @Req() request: FastifyRequest) {
    return this.jobs.cancel(id, (request.bulwark as RequestContext).client.id);
  }

  @Get('queue/stats') @Kind('client')
  stats() {
    return this.jobs.stats();
  }
}
