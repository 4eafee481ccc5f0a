import type { FastifyRequest } from 'fastify';
import { InvalidRequestError } from '../common/errors';

/** API.md §2: a caller's X-Request-Id is echoed back and logged, so it is bounded. */
export const MAX_REQUEST_ID_LENGTH = 128;

/**
 * Refuses request headers outside the contract's bounds with 400 `invalid_header`. (X-Priority and
 * X-Request-Timeout-Ms are checked where they are parsed, in common/request-context.ts.)
 */
export function assertHeaderLimits(request: Pick<FastifyRequest, 'headers' | 'raw'>): void {
  const requestId = request.headers['x-request-id'];
  if (typeof requestId === 'string' && requestId.length > MAX_REQUEST_ID_LENGTH) {
    throw new InvalidRequestError('invalid_header', `X-Request-Id must be at most ${MAX_REQUEST_ID_LENGTH} characters`, 'X-Request-Id');
  }
  // HTTP/1.1 requires Host (RFC 9112 §3.2). Node's own check answers with a bare 400, so the server
  // leaves it to this one, which answers in the contract's shape.
  if (request.raw.httpVersion === '1.1' && !request.headers.host) {
    throw new InvalidRequestError('invalid_header', 'An HTTP/1.1 request must carry a Host header', 'Host');
  }
}
