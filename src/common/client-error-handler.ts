import type { Socket } from 'node:net';
import { toErrorResponse } from './error-response';
import { BulwarkError, InvalidRequestError } from './errors';

/** What Node's HTTP parser reports on a request it cannot read, and the answer each gets. */
function answerFor(error: NodeJS.ErrnoException): { status: number; reason: string; error: BulwarkError } {
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return { status: 408, reason: 'Request Timeout', error: new BulwarkError('request_timeout', 'The request was not received in time') };
  }
  if (error.code === 'HPE_HEADER_OVERFLOW') {
    return { status: 431, reason: 'Request Header Fields Too Large', error: new InvalidRequestError('invalid_header', 'The request headers are too large') };
  }
  return { status: 400, reason: 'Bad Request', error: new InvalidRequestError('invalid_body', 'Malformed HTTP request') };
}

/**
 * Fastify's `clientErrorHandler`: answers a request that never reached a route (malformed HTTP,
 * oversized headers, a client too slow to send them) in the contract's error shape, then closes the
 * connection. Nothing of the request is echoed.
 */
export function answerClientError(error: NodeJS.ErrnoException, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  if (socket.writable) {
    const { status, reason, error: typed } = answerFor(error);
    const response = toErrorResponse(typed);
    const body = JSON.stringify(response.body);
    const headers = { ...response.headers, 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(body)), connection: 'close' };
    const head = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('');
    socket.write(`HTTP/1.1 ${status} ${reason}\r\n${head}\r\n${body}`);
  }
  socket.destroy();
}
