import type { FastifyRequest } from 'fastify';
import { InvalidRequestError } from '../common/errors';

/** API.md §2: a caller's X-Request-Id is echoed back and logged, so it is bounded. */
export const MAX_REQUEST_ID_LENGTH = 128;

/**
 * Refuses request headers past the contract's bounds with 400 `invalid_header`. (X-Priority and
 * X-Request-Timeout-Ms are checked where they are parsed, in common/request-context.ts.)
 */
export function assertHeaderLimits(headers: FastifyRequest['headers']): void {
  const requestId = headers['x-request-id'];
  const values = Array.isArray(requestId) ? requestId : requestId === undefined ? [] : [requestId];
  if (values.length > 1 || values.some((v) => v.length > MAX_REQUEST_ID_LENGTH)) {
    throw new InvalidRequestError('invalid_header', `X-Request-Id must be one value of at most ${MAX_REQUEST_ID_LENGTH} characters`, 'X-Request-Id');
  }
}
