import { randomUUID } from 'node:crypto';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Logger as PinoLogger } from 'nestjs-pino';
import type { IncomingMessage } from 'node:http';
import { AppModule } from './app.module';
import { answerClientError } from './common/client-error-handler';
import { registerJsonBodyParser } from './common/json-body-parser';
import { registerMultipartParser } from './files/multipart';
import { ShutdownService } from './common/shutdown.service';
import { AdaptiveService } from './adaptive/adaptive.service';
import { AdmissionService } from './adaptive/admission.service';
import { AuthService } from './auth/auth.service';
import { toErrorResponse } from './common/error-response';
import { ShuttingDownError } from './common/errors';
import { HttpMetricsHook } from './metrics/http-metrics.hook';
import { NestStartupQuietLogger } from './logging';
import { registerRequestLog } from './request-log';
import type { EnvironmentVariables } from './config/environment';
import { tracingSettings } from './config/sections';
import { registerServerSpanHooks } from './tracing/server-span.hooks';
import { TracingService } from './tracing/tracing.service';
import type { Runtime } from './runtime';

/** Upstream-bound routes, whose requests may be shed before routing (see the onRequest hook). */
const INFERENCE_PATHS = new Set(['/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/responses', '/v1/jobs']);

/** Any X-Request-Id of 1 to 128 characters without control characters is echoed back (API.md §2). */
const REQUEST_ID = /^[^\x00-\x1f\x7f]{1,128}$/;

/** The caller's X-Request-Id when it is a sane token, else a new UUID. */
function requestId(raw: IncomingMessage): string {
  const given = raw.headers['x-request-id'];
  const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
  // pino-http reads the id from the raw request, so every log line of this request carries it.
  (raw as IncomingMessage & { id?: string }).id = id;
  return id;
}

/** Builds the Nest application on Fastify with Bulwark's HTTP settings; does not listen. */
export async function createApp(runtime: Runtime, env: EnvironmentVariables): Promise<NestFastifyApplication> {
  const adapter = new FastifyAdapter({
    bodyLimit: env.MAX_BODY_BYTES,
    genReqId: requestId,
    // Slow-loris guard: a client must deliver its headers, then its whole request, within these bounds;
    // Node checks them every connectionsCheckingInterval (30 s by default, too coarse for short bounds).
    requestTimeout: env.CLIENT_REQUEST_TIMEOUT_MS,
    http: {
      headersTimeout: env.CLIENT_HEADERS_TIMEOUT_MS,
      connectionsCheckingInterval: Math.min(1000, env.CLIENT_HEADERS_TIMEOUT_MS),
      // Node would answer a request without Host with a bare 400; ApiKeyGuard answers it in the contract's shape.
      requireHostHeader: false,
    },
    clientErrorHandler: answerClientError,
    keepAliveTimeout: 65_000,
    routerOptions: { maxParamLength: 512 },
    return503OnClosing: false,
    // main.ts drains before closing, so whatever is still open at close (idle keep-alive sockets,
    // clients that never sent a request) is closed rather than waited for.
    forceCloseConnections: true,
  });
  // The front door is the first onRequest hook, registered before Nest adds its middleware (logging),
  // so that a request shed there costs no routing, guard, body parsing or log line.
  const door: { services?: FrontDoorServices; tracing?: TracingService } = {};
  const tracing = tracingSettings(env).enabled;
  // Before the front door, so that requests it sheds are traced too.
  if (tracing) registerServerSpanHooks(adapter.getInstance(), () => door.tracing);
  registerFrontDoor(adapter.getInstance(), () => door.services);
  registerRequestLog(adapter.getInstance(), env.LOG_LEVEL);
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forRoot(runtime, env.LOG_LEVEL, tracing), adapter, {
    bufferLogs: true,
    abortOnError: false,
    // Bulwark's own strict JSON parser replaces Nest's (see registerJsonBodyParser).
    bodyParser: false,
  });
  app.useLogger(new NestStartupQuietLogger(app.get(PinoLogger)));
  registerJsonBodyParser(app.getHttpAdapter().getInstance(), env.MAX_BODY_BYTES);
  // File uploads (POST /v1/files) have their own, larger bound.
  registerMultipartParser(app.getHttpAdapter().getInstance(), env.FILES_MAX_BYTES);
  if (tracing) door.tracing = app.get(TracingService);
  door.services = {
    shutdown: app.get(ShutdownService),
    adaptive: app.get(AdaptiveService),
    admission: app.get(AdmissionService),
    auth: app.get(AuthService),
    metrics: app.get(HttpMetricsHook),
  };
  return app;
}

interface FrontDoorServices {
  shutdown: ShutdownService;
  adaptive: AdaptiveService;
  admission: AdmissionService;
  auth: AuthService;
  metrics: HttpMetricsHook;
}

/** The calling client key as the door sees it; none for a missing or unknown key (the guards answer that). */
function callerAtDoor(auth: AuthService, request: FastifyRequest): { id: string; weight: number; queueShare?: number } | undefined {
  try {
    const identity = auth.authorize('inference', request.headers);
    return identity && { id: identity.id, weight: identity.weight, queueShare: auth.queueShareOf(identity) };
  } catch {
    return undefined;
  }
}

/**
 * Every request's first step: its id and degradation headers, in-flight counting for the drain, HTTP
 * metrics, and shedding at the door: when every upstream-bound request would be refused anyway (draining,
 * queue full, queue store away, abandoned capacity exhausted), or every one of its client key (at its
 * share of the queue), the answer goes out right here.
 */
function registerFrontDoor(fastify: FastifyInstance, services: () => FrontDoorServices | undefined): void {
  fastify.addHook('onRequest', (request, reply, done) => {
    const door = services();
    if (!door) return done();
    void reply.header('x-request-id', String(request.id));
    void reply.header('x-degradation-level', door.adaptive.strategy);
    door.shutdown.requestStarted();
    reply.raw.once('close', () => door.shutdown.requestEnded());
    door.metrics.observe(request, reply);
    if (request.method === 'POST' && INFERENCE_PATHS.has(request.routeOptions.url ?? '')) {
      const refusal = door.shutdown.draining
        ? new ShuttingDownError()
        : (door.admission.refusalForAll() ?? door.admission.refusalForKey(() => callerAtDoor(door.auth, request)));
      if (refusal) {
        const { status, headers, body } = toErrorResponse(refusal);
        void reply.code(status).headers(headers).send(body);
        return;
      }
    }
    done();
  });
}
