import { Body, Controller, Delete, Get, Param, Post, Query, Req, Res } from '@nestjs/common';
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { RequestContext } from '../common/request-context';
import { Kind } from '../common/route-kind.decorator';
import { FilesService } from './files.service';

const owner = (request: FastifyRequest) => (request.bulwark as RequestContext).client.id;

/** OpenAI's Files API (API.md §1): thin hand-offs to FilesService. */
@Controller('v1/files')
export class FilesController {
  constructor(private readonly files: FilesService) {}

  @Post() @Kind('client')
  upload(@Body() body: unknown, @Req() request: FastifyRequest) {
    return this.files.upload(body, owner(request));
  }

  @Get() @Kind('client')
  list(@Query() query: Record<string, string | undefined>, @Req() request: FastifyRequest) {
    return this.files.list(owner(request), query);
  }

  @Get(':id') @Kind('client')
  get(@Param('id') id: string, @Req() request: FastifyRequest) {
    return this.files.get(id, owner(request));
  }

  /** The file's bytes as uploaded (or as the batch wrote them), sent in pages. */
  @Get(':id/content') @Kind('client')
  async content(@Param('id') id: string, @Req() request: FastifyRequest, @Res() reply: FastifyReply) {
    const { file, pages } = await this.files.content(id, owner(request));
    void reply.header('content-type', 'application/octet-stream').header('content-length', String(file.bytes));
    return reply.send(Readable.from(pages));
  }

  @Delete(':id') @Kind('client')
  delete(@Param('id') id: string, @Req() request: FastifyRequest) {
    return this.files.delete(id, owner(request));
  }
}
