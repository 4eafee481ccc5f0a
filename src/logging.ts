import { trace } from '@opentelemetry/api';
import type { Params } from 'nestjs-pino';
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
