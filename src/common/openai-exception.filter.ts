import { ArgumentsHost, Catch, ExceptionFilter, Logger, ServiceUnavailableException } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { toErrorResponse } from './error-response';
import { BulwarkError, CancelledError } from './errors';
import { refusalForTier } from './service-tier';

/**
 * The one exception filter: every error, from any layer, leaves in OpenAI's shape with
 * `suggestions`, `x-should-retry` and, on 429/503, `Retry-After` (API.md §4). Headers already on the
 * reply (the rate limits', `X-Service-Tier`) stay.
 */
@Catch()
export class OpenAIExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('Errors');

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const reply = http.getResponse<FastifyReply>();
    const request = http.getRequest<FastifyRequest>();
    if (exception instanceof CancelledError) {
      // The client is gone: there is nobody to answer.
      if (!reply.raw.writableEnded) reply.raw.end();
      return;
    }
    const health = healthCheckBody(exception);
    if (health) {
      // Terminus's own shape is the /health contract; keep it, with the 503 headers every 503 carries.
      void reply.status(503).headers({ 'retry-after': '5', 'x-should-retry': 'true' }).send(health);
      return;
    }
    // A flex request refused for lack of capacity hears OpenAI's 429 resource_unavailable.
    const response = toErrorResponse(refusalForTier(exception, request?.bulwark?.serviceTier));
    if (response.status >= 500 && !(exception instanceof BulwarkError)) {
      this.logger.error({ err: exception, requestId: request?.id }, 'unexpected error');
    }
    if (reply.sent || reply.raw.headersSent) {
      // A streamed answer already started; the stream writer ends it with an SSE error event.
      if (!reply.raw.writableEnded) reply.raw.end();
      return;
    }
    void reply.status(response.status).headers(response.headers).send(response.body);
  }
}

function healthCheckBody(exception: unknown): object | undefined {
  if (!(exception instanceof ServiceUnavailableException)) return undefined;
  const body = exception.getResponse();
  return typeof body === 'object' && body !== null && 'details' in body && 'status' in body ? body : undefined;
}
