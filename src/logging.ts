import { trace } from '@opentelemetry/api';
import type { LoggerService } from '@nestjs/common';
import type { Params } from 'nestjs-pino';
import type { Logger } from 'pino';
import { format } from 'node:util';
import type { LogLevel } from './config/environment';
import { requestLogFields } from './request-log';

export { requestLogLevel } from './request-log';

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

/** The active span's ids, on every line logged while tracing is on (the pino mixin). */
export function traceLogFields(): { trace_id?: string; span_id?: string } {
  const span = trace.getActiveSpan();
  if (!span) return {};
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}

/**
 * The root logger's settings: JSON lines, with the current request's `req` on every line logged while
 * it is served (see request-log.ts, which also writes the line per finished request) and, with tracing
 * on, the active span's `trace_id` and `span_id`. nestjs-pino mounts no middleware (`forRoutes: []`):
 * the request log runs as Fastify hooks.
 */
export function loggerOptions(level: LogLevel, tracing = false): Params {
  return {
    pinoHttp: {
      level,
      mixin: tracing ? () => ({ ...requestLogFields(), ...traceLogFields() }) : requestLogFields,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      serializers: {
        req: (req: { id?: string; method?: string; url?: string }) => ({ id: req.id, method: req.method, url: req.url }),
        res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
      },
    },
    forRoutes: [],
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
