import type { Runtime } from '../runtime';
import { EnvironmentVariables, redactUrl } from './environment';

/** An upstream as the start-up line shows it: its URL without credentials, never its key. */
export interface UpstreamSummary {
  name: string;
  url: string;
  /** The models it serves, or `*` when it serves whatever it is asked for. */
  models: string[] | '*';
  weight: number;
  maxConcurrency?: number;
  apiKey: 'set' | 'unset';
}

/** The start-up summary of what this instance runs with; holds no secret. */
export interface EffectiveSettings {
  upstreamSource: 'UPSTREAM_URL' | 'UPSTREAMS_FILE' | 'simulator';
  upstreams: UpstreamSummary[];
  fallbacks: Record<string, string[]>;
  queue: { maxQueueSize: number; maxConcurrent: number; rejectionThreshold: number; workerEnabled: boolean };
  deadlines: { requestTimeoutMs: number; streamIdleTimeoutMs: number; jobTimeoutMs: number; shutdownGraceMs: number };
  retries: { maxAttempts: number; budgetRatio: number };
  auth: { clientKeys: number | 'off' | 'API_KEYS_FILE'; adminKey: 'set' | 'unset'; rateLimitRpm: number; metrics: string; healthDetails: string };
  redis: { mode: 'embedded'; url: string; dataDir: string } | { mode: 'url'; url: string; connectTimeoutMs: number } | { mode: 'sentinel'; sentinels: string; name: string };
}

/** A URL with its user info and query values hidden (either may carry a credential). */
export function redactSecretsOfUrl(url: string): string {
  return redactUrl(url).replace(/([?&][^=&#]*)=[^&#]*/g, '$1=***');
}

/** What the start-up line reports: the effective configuration, secrets replaced by `set`/`unset` or counts. */
export function effectiveSettings(env: EnvironmentVariables, runtime: Runtime): EffectiveSettings {
  const clientKeys = (env.API_KEYS ?? '').split(',').filter((entry) => entry.trim() !== '').length;
  return {
    upstreamSource: runtime.simulated ? 'simulator' : env.UPSTREAMS_FILE ? 'UPSTREAMS_FILE' : 'UPSTREAM_URL',
    upstreams: runtime.topology.upstreams.map((u) => ({
      name: u.name,
      url: redactSecretsOfUrl(u.baseUrl),
      models: u.models.length === 0 ? '*' : u.models,
      weight: u.weight,
      ...(u.maxConcurrency !== undefined ? { maxConcurrency: u.maxConcurrency } : {}),
      apiKey: u.apiKey ? 'set' : 'unset',
    })),
    fallbacks: runtime.topology.fallbacks,
    queue: {
      maxQueueSize: env.MAX_QUEUE_SIZE,
      maxConcurrent: env.MAX_CONCURRENT_REQUESTS,
      rejectionThreshold: env.QUEUE_REJECTION_THRESHOLD,
      workerEnabled: env.WORKER_ENABLED === 'true',
    },
    deadlines: {
      requestTimeoutMs: env.REQUEST_TIMEOUT_MS,
      streamIdleTimeoutMs: env.STREAM_IDLE_TIMEOUT_MS,
      jobTimeoutMs: env.JOB_TIMEOUT_MS,
      shutdownGraceMs: env.SHUTDOWN_GRACE_MS,
    },
    retries: { maxAttempts: env.RETRY_MAX_ATTEMPTS, budgetRatio: env.RETRY_BUDGET_RATIO },
    auth: {
      clientKeys: env.API_KEYS_FILE ? 'API_KEYS_FILE' : clientKeys > 0 ? clientKeys : 'off',
      adminKey: env.ADMIN_API_KEY ? 'set' : 'unset',
      rateLimitRpm: env.RATE_LIMIT_RPM,
      metrics: env.METRICS_AUTH,
      healthDetails: env.HEALTH_DETAILS,
    },
    redis:
      runtime.redis.kind === 'sentinel'
        ? { mode: 'sentinel', sentinels: runtime.redis.sentinels.map((s) => `${s.host}:${s.port}`).join(','), name: runtime.redis.name }
        : env.REDIS_URL
          ? { mode: 'url', url: redactSecretsOfUrl(env.REDIS_URL), connectTimeoutMs: env.REDIS_CONNECT_TIMEOUT_MS }
          : { mode: 'embedded', url: runtime.redis.url, dataDir: env.DATA_DIR },
  };
}
