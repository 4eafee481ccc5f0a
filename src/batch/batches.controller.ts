import { Body, Controller, Get, HttpCode, Param, Post, Query, Req } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import type { RequestContext } from '../common/request-context';
import { Kind } from '../common/route-kind.decorator';
import { BatchesService } from './batches.service';

const owner = (request: FastifyRequest) => (request.bulwark as RequestContext).client.id;

/** OpenAI's Batch API (API.md §1): thin hand-offs to BatchesService. */
@Controller('v1/batches')
export class BatchesController {
  constructor(private readonly batches: BatchesService) {}

  @Post() @Kind('client') @HttpCode(200)
  create(@Body() body: unknown, @Req() request: FastifyRequest) {
    return this.batches.create(body, owner(request));
  }

  @Get() @Kind('client')
  list(@Query() query: Record<string, string | undefined>, @Req() request: FastifyRequest) {
    return this.batches.list(owner(request), query);
  }

  @Get(':id') @Kind('client')
  get(@Param('id') id: string, @Req() request: FastifyRequest) {
    return this.batches.get(id, owner(request));
  }

  @Post(':id/cancel') @Kind('client') @HttpCode(200)
  cancel(@Param('id') id: string, @Req() request: FastifyRequest) {
    return this.batches.cancel(id, owner(request));
  }
}
