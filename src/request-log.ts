import { AsyncLocalStorage } from 'node:async_hooks';
import type { FastifyInstance } from 'fastify';
import type { ServerResponse } from 'node:http';
import { PinoLogger } from 'nestjs-pino';
import type { LogLevel } from './config/environment';

/** What every line logged while a request is served says about it (the pino `req` serializer's shape). */
interface RequestFields {
  req: { id: string; method: string; url: string };
}

const current = new AsyncLocalStorage<RequestFields>();

/** Paths that get no line of their own: probes and scrapes arrive every few seconds. */
const isQuiet = (url: string) => url.startsWith('/health') || url === '/metrics';

const LEVELS: Record<LogLevel, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };

/**
 * The level of a finished request's line. Refusals (429, 503) are expected under overload and arrive by
 * the thousand: they log at debug (metrics and the periodic refusal summary count them), and a line
 * below the configured level is skipped before it is built.
 */
export function requestLogLevel(statusCode: number, failed: boolean, configured: LogLevel): LogLevel {
  const level: LogLevel = statusCode === 503 || statusCode === 429 ? 'debug' : failed || statusCode >= 500 ? 'warn' : 'info';
  return LEVELS[level] >= LEVELS[configured] ? level : 'silent';
}

/** The pino `mixin` that puts the current request's `req` on every line logged while it is served. */
export function requestLogFields(): Partial<RequestFields> {
  return current.getStore() ?? {};
}

/**
 * The request log, as Fastify hooks rather than Nest middleware: every line logged while a request is
 * served carries its `req` (id, method, url; through {@link requestLogFields}), and each finished
 * request gets one `request completed` line (`request errored` for a 5xx or a failed response) with its
 * status and `responseTime`, at the level of {@link requestLogLevel}. Built to cost nothing it does not
 * have to: no child logger per request, and no listeners when the configured level would drop the line.
 */
export function registerRequestLog(fastify: FastifyInstance, level: LogLevel): void {
  // A finished request logs at debug (refusals), info or warn (failures): below that level, never.
  const completedLines = LEVELS[level] <= LEVELS.warn;
  fastify.addHook('onRequest', (request, reply, done) => {
    const raw = request.raw;
    const url = raw.url ?? '';
    if (isQuiet(url)) return done();
    const fields: RequestFields = { req: { id: String(request.id), method: raw.method ?? '', url } };
    if (completedLines) {
      const startedAt = Date.now();
      const res = reply.raw;
      const complete = (error?: Error) => {
        res.off('close', complete);
        res.off('finish', complete);
        res.off('error', complete);
        logCompleted(fields, res, error, Date.now() - startedAt, level);
      };
      res.on('close', complete);
      res.on('finish', complete);
      res.on('error', complete);
    }
    current.run(fields, done);
  });
}

/** The finished request's line; `res` goes to the `res` serializer as the response itself (status null when no header went out). */
function logCompleted(fields: RequestFields, res: ServerResponse, error: Error | undefined, responseTime: number, configured: LogLevel): void {
  const statusCode = res.statusCode;
  const lineLevel = requestLogLevel(statusCode, Boolean(error), configured);
  if (lineLevel === 'silent') return;
  const logger = PinoLogger.root;
  if (error || statusCode >= 500) {
    const err = error ?? new Error(`failed with status code ${statusCode}`);
    logger[lineLevel]({ req: fields.req, res, err, responseTime }, 'request errored');
  } else {
    logger[lineLevel]({ req: fields.req, res, responseTime }, 'request completed');
  }
}
