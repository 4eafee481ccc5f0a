import { Body, Controller, Get, HttpCode, Param, Post, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Admitted } from '../adaptive/admission.guard';
import { AsyncJobRoute, Kind } from '../common/route-kind.decorator';
import type { Admission } from '../queue/admission';
import { ChatCompletionRequestDto, CompletionRequestDto, EmbeddingRequestDto, ResponsesRequestDto } from './dto/openai-requests.dto';
import { InferenceService } from './inference.service';
import { ModelsService } from './models.service';
import { OpenAIBodyPipe } from './openai-body.pipe';

/** The OpenAI routes. Thin: validation by pipes, admission by guards, the work in InferenceService. */
@Controller('v1')
export class ChatController {
  constructor(
    private readonly inference: InferenceService,
    private readonly models: ModelsService,
  ) {}

  @Post('chat/completions') @Kind('inference') @HttpCode(200)
  chatCompletions(@Body(new OpenAIBodyPipe(ChatCompletionRequestDto)) body: Record<string, unknown>, @Admitted() admission: Admission | undefined, @Req() request: FastifyRequest, @Res() reply: FastifyReply) {
    return this.inference.serve('/chat/completions', body, admission, request, reply);
  }

  @Post('completions') @Kind('inference') @HttpCode(200)
  completions(@Body(new OpenAIBodyPipe(CompletionRequestDto)) body: Record<string, unknown>, @Admitted() admission: Admission | undefined, @Req() request: FastifyRequest, @Res() reply: FastifyReply) {
    return this.inference.serve('/completions', body, admission, request, reply);
  }

  @Post('embeddings') @Kind('inference') @HttpCode(200)
  embeddings(@Body(new OpenAIBodyPipe(EmbeddingRequestDto)) body: Record<string, unknown>, @Admitted() admission: Admission | undefined, @Req() request: FastifyRequest, @Res() reply: FastifyReply) {
    return this.inference.serve('/embeddings', body, admission, request, reply);
  }

  /** OpenAI's Responses API, through the same pipeline; streams relay its typed events. `background: true` runs it as a job. */
  @Post('responses') @Kind('inference') @AsyncJobRoute('background') @HttpCode(200)
  responses(@Body(new OpenAIBodyPipe(ResponsesRequestDto)) body: Record<string, unknown>, @Admitted() admission: Admission | undefined, @Req() request: FastifyRequest, @Res() reply: FastifyReply) {
    return this.inference.serve('/responses', body, admission, request, reply);
  }

  /** An async chat completion: 202 with the job; its result is read through GET /v1/jobs/{id}. */
  @Post('jobs') @Kind('inference') @AsyncJobRoute() @HttpCode(202)
  createJob(@Body(new OpenAIBodyPipe(ChatCompletionRequestDto)) body: Record<string, unknown>, @Admitted() admission: Admission | undefined, @Req() request: FastifyRequest, @Res() reply: FastifyReply) {
    return this.inference.serve('/chat/completions', body, admission, request, reply);
  }

  @Get('models') @Kind('client')
  listModels() {
    return this.models.list();
  }

  @Get('models/:id') @Kind('client')
  model(@Param('id') id: string) {
    return this.models.get(id);
  }

  /** Hugging Face style ids (`org/name`) sent with a raw slash, as curl users write them. */
  @Get('models/:owner/:name') @Kind('client')
  ownedModel(@Param('owner') owner: string, @Param('name') name: string) {
    return this.models.get(`${owner}/${name}`);
  }
}
