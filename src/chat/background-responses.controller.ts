import { Controller, Get, HttpCode, Param, Post, Query, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { InvalidRequestError } from '../common/errors';
import type { RequestContext } from '../common/request-context';
import { AsyncJobRoute, Kind } from '../common/route-kind.decorator';
import { BackgroundResponses } from '../queue/background-responses.service';
import { relayStream } from './answer-writer';

/**
 * Background responses after their creation (API.md §1): retrieve, resume a stream, cancel. Any
 * instance serves them; only the key that created a response sees it.
 */
@Controller('v1/responses')
export class BackgroundResponsesController {
  constructor(private readonly responses: BackgroundResponses) {}

  /** Its state; with `?stream=true`, its events after `starting_after`, then live until its end. */
  @Get(':id') @Kind('client') @AsyncJobRoute()
  async retrieve(@Param('id') id: string, @Query() query: Record<string, unknown>, @Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const context = request.bulwark as RequestContext;
    try {
      if (!streamAsked(query.stream)) {
        void reply.send(await this.responses.get(id, context.client.id));
        return;
      }
      const events = await this.responses.events(id, context.client.id, startingAfter(query.starting_after), context.signal);
      await relayStream(reply, events, {}, context.signal, { namedEvents: true, logged: true });
    } finally {
      context.finish();
    }
  }

  @Post(':id/cancel') @Kind('client') @HttpCode(200)
  cancel(@Param('id') id: string, @Req() request: FastifyRequest) {
    return this.responses.cancel(id, (request.bulwark as RequestContext).client.id);
  }
}

function single(value: unknown): unknown {
  return Array.isArray(value) ? value[value.length - 1] : value;
}

function streamAsked(raw: unknown): boolean {
  const value = single(raw);
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  throw new InvalidRequestError('invalid_body', 'stream must be true or false', 'stream');
}

/** `starting_after`: a sequence number (an integer from 0); absent: from the first event. */
function startingAfter(raw: unknown): number {
  const value = single(raw);
  if (value === undefined || value === '') return -1;
  if (typeof value !== 'string' || !/^\d{1,15}$/.test(value)) {
    throw new InvalidRequestError('invalid_body', 'starting_after must be a sequence number (an integer from 0)', 'starting_after');
  }
  return Number(value);
}
