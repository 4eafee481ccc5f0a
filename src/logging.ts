import { trace } from '@opentelemetry/api';
import type { LoggerService } from '@nestjs/common';
import type { Params } from 'nestjs-pino';
import type { Logger } from 'pino';
import { format } from 'node:util';
import type { LogLevel } from './config/environment';

/** Headers and fields that carry secrets; pino replaces them before a line is written. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'apiKey',
  '*.apiKey',
];

const LEVEL_VALUES: Record<LogLevel, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };

/**
 * The level of a finished request's line. Refusals (429, 503) are expected under overload and arrive by
 * the thousand: they log at debug (metrics and the periodic refusal summary count them), and a line
 * below the configured level is skipped before pino-http builds it.
 */
export function requestLogLevel(statusCode: number, failed: boolean, configured: LogLevel): LogLevel {
  const level: LogLevel = statusCode === 503 || statusCode === 429 ? 'debug' : failed || statusCode >= 500 ? 'warn' : 'info';
  return LEVEL_VALUES[level] >= LEVEL_VALUES[configured] ? level : 'silent';
}

/** The active span's ids, on every line logged while tracing is on (the pino mixin). */
export function traceLogFields(): { trace_id?: string; span_id?: string } {
  const span = trace.getActiveSpan();
  if (!span) return {};
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}

/**
 * JSON lines with the request id on every line; one line per finished request. With tracing on, every
 * line logged inside a traced request or job also carries `trace_id` and `span_id`.
 */
export function loggerOptions(level: LogLevel, tracing = false): Params {
  return {
    pinoHttp: {
      level,
      ...(tracing ? { mixin: traceLogFields } : {}),
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      genReqId: (req) => (req as { id?: string }).id ?? 'unknown',
      autoLogging: { ignore: (req) => (req.url ?? '').startsWith('/health') || req.url === '/metrics' },
      serializers: {
        req: (req: { id?: string; method?: string; url?: string }) => ({ id: req.id, method: req.method, url: req.url }),
        res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
      },
      customLogLevel: (_req, res, error) => requestLogLevel(res.statusCode, Boolean(error), level),
    },
    forRoutes: ['*path'],
  };
}

/**
 * Sends what libraries print with `console.*` (BullMQ warns about a Redis eviction policy this way,
 * ioredis about an unhandled error) through `logger`, so that even those come out as one JSON line
 * each, an error's stack inside the line rather than across many.
 */
export function routeConsoleTo(logger: Logger): void {
  const child = logger.child({ source: 'console' });
  const to = (level: 'info' | 'debug' | 'warn' | 'error') => (...args: unknown[]) => child[level](format(...args));
  Object.assign(console, { log: to('info'), info: to('info'), debug: to('debug'), warn: to('warn'), error: to('error') });
}

/** Nest's own start-up chatter: one line per module and route, useful when debugging, noise otherwise. */
const NEST_STARTUP_CONTEXTS: ReadonlySet<string> = new Set(['InstanceLoader', 'RoutesResolver', 'RouterExplorer', 'NestFactory', 'NestApplication']);

/**
 * The application's Nest logger: forwards to `inner` (nestjs-pino), except that Nest's start-up lines
 * (InstanceLoader, RoutesResolver, RouterExplorer, NestFactory, NestApplication) log at debug instead
 * of info, so the start-up log shows Bulwark's own lines; and Nest's report of a failed listen moves to
 * debug too, as main.ts reports it in the operator's terms.
 */
export class NestStartupQuietLogger implements LoggerService {
  constructor(private readonly inner: LoggerService) {}

  log(message: unknown, ...rest: unknown[]): void {
    const context = rest.at(-1);
    if (typeof context === 'string' && NEST_STARTUP_CONTEXTS.has(context)) this.inner.debug?.(message, ...rest);
    else this.inner.log(message, ...rest);
  }

  error(message: unknown, ...rest: unknown[]): void {
    // main.ts reports a failed listen as one line naming PORT and HOST; Nest's own line would repeat it.
    if (rest.at(-1) === 'NestApplication' && typeof message === 'string' && /^Error: listen E[A-Z]+/.test(message)) this.inner.debug?.(message, ...rest);
    else this.inner.error(message, ...rest);
  }

  warn(message: unknown, ...rest: unknown[]): void {
    this.inner.warn(message, ...rest);
  }

  debug(message: unknown, ...rest: unknown[]): void {
    this.inner.debug?.(message, ...rest);
  }

  verbose(message: unknown, ...rest: unknown[]): void {
    this.inner.verbose?.(message, ...rest);
  }

  fatal(message: unknown, ...rest: unknown[]): void {
    (this.inner.fatal ?? this.inner.error).call(this.inner, message, ...rest);
  }
}
