import { registerAs } from '@nestjs/config';
import type { EnvironmentVariables } from './environment';
import { loadClientKeys, loadEnvironment, loadUpstreamTopology } from './load-environment';

export const serverConfig = registerAs('server', () => {
  const env = loadEnvironment();
  return {
    port: env.PORT,
    host: env.HOST,
    maxBodyBytes: env.MAX_BODY_BYTES,
    clientHeadersTimeoutMs: env.CLIENT_HEADERS_TIMEOUT_MS,
    clientRequestTimeoutMs: env.CLIENT_REQUEST_TIMEOUT_MS,
    requestTimeoutMs: env.REQUEST_TIMEOUT_MS,
    streamIdleTimeoutMs: env.STREAM_IDLE_TIMEOUT_MS,
    shutdownGraceMs: env.SHUTDOWN_GRACE_MS,
    logLevel: env.LOG_LEVEL,
  };
});

export const redisConfig = registerAs('redis', () => {
  const env = loadEnvironment();
  return { url: env.REDIS_URL, dataDir: env.DATA_DIR };
});

export const upstreamConfig = registerAs('upstream', () => {
  const env = loadEnvironment();
  return {
    url: env.UPSTREAM_URL,
    apiKey: env.UPSTREAM_API_KEY,
    /** Set when UPSTREAMS_FILE is; read and validated here so a bad file stops the start. */
    topology: env.UPSTREAMS_FILE ? loadUpstreamTopology(env.UPSTREAMS_FILE) : undefined,
    metricsPollMs: env.UPSTREAM_METRICS_POLL_MS,
    routing: env.ROUTING,
  };
});

/** How a request's upstream is chosen beyond the mode (`ROUTING`): prefix affinity, KV-cache pressure, hedge budget. */
export const routingConfig = registerAs('routing', () => {
  const env = loadEnvironment();
  return {
    mode: env.ROUTING,
    blockChars: env.PREFIX_BLOCK_CHARS,
    indexMaxBlocks: env.PREFIX_INDEX_MAX_BLOCKS,
    indexTtlMs: env.PREFIX_INDEX_TTL_MS,
    loadEpsilon: env.PREFIX_LOAD_EPSILON,
    kvCachePressureThreshold: env.KV_CACHE_PRESSURE_THRESHOLD,
    hedgeBudgetRatio: env.HEDGE_BUDGET_RATIO,
  };
});

export const queueConfig = registerAs('queue', () => {
  const env = loadEnvironment();
  return {
    maxQueueSize: env.MAX_QUEUE_SIZE,
    maxConcurrent: env.MAX_CONCURRENT_REQUESTS,
    jobResultTtlMs: env.JOB_RESULT_TTL_MS,
    jobTimeoutMs: env.JOB_TIMEOUT_MS,
    lockMs: env.QUEUE_LOCK_MS,
    workerEnabled: env.WORKER_ENABLED === 'true',
  };
});

/** Background responses: retention and the bounds of their resumable event logs. */
export const responsesConfig = registerAs('responses', () => {
  const env = loadEnvironment();
  return {
    ttlMs: env.RESPONSE_TTL_MS,
    maxEvents: env.RESPONSE_EVENTS_MAX,
    maxEventBytes: env.RESPONSE_EVENTS_MAX_BYTES,
  };
});

export const batchConfig = registerAs('batch', () => {
  const env = loadEnvironment();
  return {
    maxFileBytes: env.FILES_MAX_BYTES,
    maxLines: env.BATCH_MAX_LINES,
    lineTimeoutMs: env.BATCH_LINE_TIMEOUT_MS,
    lineMaxStarts: env.BATCH_LINE_MAX_STARTS,
    completionWindowMs: env.BATCH_COMPLETION_WINDOW_MS,
    idleHeadroom: env.BATCH_IDLE_HEADROOM,
    preempt: env.BATCH_PREEMPT === 'true',
    preemptAfterMs: env.BATCH_PREEMPT_AFTER_MS,
  };
});

export const adaptiveConfig = registerAs('adaptive', () => {
  const env = loadEnvironment();
  return {
    queueRejectionThreshold: env.QUEUE_REJECTION_THRESHOLD,
    abandonedRejectionThreshold: env.ABANDONED_REJECTION_THRESHOLD ?? env.VLLM_REJECTION_THRESHOLD ?? 0.7,
    maxAbandoned: env.MAX_ABANDONED_REQUESTS,
    resetIntervalMs: env.RESET_INTERVAL_MS,
    degradedMaxTokens: env.DEGRADED_MAX_TOKENS,
  };
});

export const breakerConfig = registerAs('breaker', () => {
  const env = loadEnvironment();
  return {
    windowSize: env.BREAKER_WINDOW_SIZE,
    minCalls: env.BREAKER_MIN_CALLS,
    failureRatio: env.BREAKER_FAILURE_RATIO,
    windowMs: env.BREAKER_WINDOW_MS,
    cooldownMs: env.BREAKER_COOLDOWN_MS,
    halfOpenProbes: env.BREAKER_HALF_OPEN_PROBES,
    slowCallMs: env.BREAKER_SLOW_CALL_MS,
    slowCallRatio: env.BREAKER_SLOW_CALL_RATIO,
    /** TTL of the cluster's half-open probe permit: long enough for a probe call to end. */
    probeRoundMs: env.REQUEST_TIMEOUT_MS + 1000,
  };
});

export const retryConfig = registerAs('retry', () => {
  const env = loadEnvironment();
  return {
    maxAttempts: env.RETRY_MAX_ATTEMPTS,
    baseDelayMs: env.RETRY_BASE_DELAY_MS,
    maxDelayMs: env.RETRY_MAX_DELAY_MS,
    budgetRatio: env.RETRY_BUDGET_RATIO,
  };
});

export const authConfig = registerAs('auth', () => {
  const env = loadEnvironment();
  return {
    apiKeys: env.API_KEYS,
    /** Set when API_KEYS_FILE is; read and validated here (keys as digests only). */
    clientKeys: env.API_KEYS_FILE ? loadClientKeys(env.API_KEYS_FILE, env.ADMIN_API_KEY) : undefined,
    adminApiKey: env.ADMIN_API_KEY,
    rateLimitRpm: env.RATE_LIMIT_RPM,
    tokenLimitDefaultMaxTokens: env.TOKEN_LIMIT_DEFAULT_MAX_TOKENS,
    metricsAuth: env.METRICS_AUTH,
    healthDetails: env.HEALTH_DETAILS,
  };
});

/**
 * Tracing settings from the standard OTel variables: on when an OTLP endpoint is set (and the SDK is not
 * disabled). Other OTEL_* variables (OTEL_EXPORTER_OTLP_HEADERS, OTEL_BSP_*, OTEL_TRACES_SAMPLER…) are
 * read by the OpenTelemetry SDK itself.
 */
export function tracingSettings(env: EnvironmentVariables): { enabled: boolean; tracesUrl?: string; serviceName: string } {
  const tracesUrl = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? (env.OTEL_EXPORTER_OTLP_ENDPOINT && `${env.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, '')}/v1/traces`);
  const enabled = tracesUrl !== undefined && env.OTEL_SDK_DISABLED !== 'true';
  return { enabled, tracesUrl: enabled ? tracesUrl : undefined, serviceName: env.OTEL_SERVICE_NAME ?? 'bulwark' };
}

export const tracingConfig = registerAs('tracing', () => tracingSettings(loadEnvironment()));

export const allConfigSections = [
  serverConfig,
  redisConfig,
  upstreamConfig,
  routingConfig,
  queueConfig,
  responsesConfig,
  batchConfig,
  adaptiveConfig,
  breakerConfig,
  retryConfig,
  authConfig,
  tracingConfig,
];
