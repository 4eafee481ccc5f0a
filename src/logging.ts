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

/** JSON lines with the request id on every line; one line per finished request. */
export function loggerOptions(level: LogLevel): Params {
  return {
    pinoHttp: {
      level,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      genReqId: (req) => (req as { id?: string }).id ?? 'unknown',
      customProps: (req) => ({ requestId: (req as { id?: string }).id }),
      autoLogging: { ignore: (req) => (req.url ?? '').startsWith('/health') || req.url === '/metrics' },
      serializers: {
        req: (req: { id?: string; method?: string; url?: string }) => ({ id: req.id, method: req.method, url: req.url }),
        res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
      },
      customLogLevel: (_req, res, error) => (error || res.statusCode >= 500 ? 'warn' : 'info'),
    },
    forRoutes: ['*path'],
  };
}
