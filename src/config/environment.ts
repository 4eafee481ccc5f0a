import { plainToInstance, Transform } from 'class-transformer';
import {
  IsIn,
  IsInt,
  IsNumber,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
  validateSync,
  ValidationError,
} from 'class-validator';

const toInt = ({ value }: { value: unknown }) =>
  typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value.trim()) : value;
const toNumber = ({ value }: { value: unknown }) =>
  typeof value === 'string' && value.trim() !== '' && !Number.isNaN(Number(value)) ? Number(value) : value;
const emptyToUndefined = ({ value }: { value: unknown }) => (value === '' ? undefined : value);

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Variables whose values must never be echoed back, not even in a start-up error. */
const SECRET_VARIABLES = new Set(['UPSTREAM_API_KEY', 'API_KEYS', 'ADMIN_API_KEY', 'REDIS_PASSWORD', 'REDIS_SENTINEL_PASSWORD']);

/** One Sentinel address: `host:port`, the host a name, an IPv4 address or a bracketed IPv6 address. */
const SENTINEL_ADDRESS = String.raw`(\[[0-9A-Fa-f:.]+\]|[^\s:,\[\]]+):\d{1,5}`;
const SENTINEL_LIST = new RegExp(String.raw`^\s*${SENTINEL_ADDRESS}\s*(,\s*${SENTINEL_ADDRESS}\s*)*$`);

/** Variables that may carry credentials in their URL; echoed with the password hidden. */
const URL_VARIABLES = new Set(['REDIS_URL', 'UPSTREAM_URL', 'OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']);

/**
 * Every environment variable of API.md §7, validated once at start-up.
 * Defaults follow the original Python server's.
 */
export class EnvironmentVariables {
  @Transform(toInt) @IsInt() @Min(0) @Max(65535)
  PORT = 8000;

  @IsString() @MaxLength(255)
  HOST = '0.0.0.0';

  @Transform(emptyToUndefined) @IsOptional() @IsString()
  @Matches(/^rediss?:\/\/[^\s]+$/, { message: 'must be a redis:// or rediss:// URL' })
  REDIS_URL?: string;

  /** Redis through Sentinel: `host:port,host:port`, with REDIS_SENTINEL_NAME; instead of REDIS_URL. */
  @Transform(emptyToUndefined) @IsOptional() @IsString()
  @Matches(SENTINEL_LIST, { message: 'must be a comma-separated list of host:port (e.g. 10.0.0.1:26379,10.0.0.2:26379)' })
  REDIS_SENTINELS?: string;

  /** The name the Sentinels know the Redis primary by (`sentinel monitor <name> ...`). */
  @Transform(emptyToUndefined) @IsOptional() @IsString() @MaxLength(255)
  @Matches(/^[A-Za-z0-9._-]+$/, { message: 'must be a Sentinel master name (letters, digits, . _ -)' })
  REDIS_SENTINEL_NAME?: string;

  /** Password of the Sentinels themselves (`requirepass` in sentinel.conf), if they have one. */
  @Transform(emptyToUndefined) @IsOptional() @IsString() @MaxLength(512)
  REDIS_SENTINEL_PASSWORD?: string;

  /** Password of the Redis primary and replicas found through Sentinel (with REDIS_URL, put it in the URL). */
  @Transform(emptyToUndefined) @IsOptional() @IsString() @MaxLength(512)
  REDIS_PASSWORD?: string;

  @IsString()
  DATA_DIR = './data';

  /** How long start-up waits for the Redis of REDIS_URL to answer before it exits naming REDIS_URL. */
  @Transform(toInt) @IsInt() @Min(0) @Max(3_600_000)
  REDIS_CONNECT_TIMEOUT_MS = 30_000;

  @Transform(emptyToUndefined) @IsOptional() @IsString()
  @Matches(/^https?:\/\/[^\s]+$/, { message: 'must be an http:// or https:// base URL, including /v1' })
  UPSTREAM_URL?: string;

  @Transform(emptyToUndefined) @IsOptional() @IsString()
  UPSTREAM_API_KEY?: string;

  @Transform(emptyToUndefined) @IsOptional() @IsString()
  UPSTREAMS_FILE?: string;

  @Transform(toInt) @IsInt() @Min(100) @Max(3_600_000)
  REQUEST_TIMEOUT_MS = 60_000;

  @Transform(toInt) @IsInt() @Min(100) @Max(3_600_000)
  STREAM_IDLE_TIMEOUT_MS = 30_000;

  @Transform(toInt) @IsInt() @Min(1) @Max(1_000_000)
  MAX_QUEUE_SIZE = 50;

  @Transform(toInt) @IsInt() @Min(1) @Max(10_000)
  MAX_CONCURRENT_REQUESTS = 3;

  @Transform(toNumber) @IsNumber() @Min(0) @Max(1)
  QUEUE_REJECTION_THRESHOLD = 0.8;

  @Transform(toNumber) @IsOptional() @IsNumber() @Min(0) @Max(1)
  ABANDONED_REJECTION_THRESHOLD?: number;

  /** Alias kept from the original server. */
  @Transform(toNumber) @IsOptional() @IsNumber() @Min(0) @Max(1)
  VLLM_REJECTION_THRESHOLD?: number;

  @Transform(toInt) @IsInt() @Min(1) @Max(1_000_000)
  MAX_ABANDONED_REQUESTS = 10;

  @Transform(toInt) @IsInt() @Min(1000) @Max(86_400_000)
  RESET_INTERVAL_MS = 300_000;

  @Transform(toInt) @IsInt() @Min(1) @Max(100_000)
  BREAKER_WINDOW_SIZE = 100;

  @Transform(toInt) @IsInt() @Min(1) @Max(100_000)
  BREAKER_MIN_CALLS = 20;

  @Transform(toNumber) @IsNumber() @Min(0.01) @Max(1)
  BREAKER_FAILURE_RATIO = 0.5;

  @Transform(toInt) @IsInt() @Min(100) @Max(86_400_000)
  BREAKER_WINDOW_MS = 60_000;

  @Transform(toInt) @IsInt() @Min(10) @Max(3_600_000)
  BREAKER_COOLDOWN_MS = 30_000;

  @Transform(toInt) @IsInt() @Min(1) @Max(1000)
  BREAKER_HALF_OPEN_PROBES = 3;

  /** Calls slower than this count as slow (resilience4j's slow-call rate). */
  @Transform(toInt) @IsInt() @Min(1) @Max(3_600_000)
  BREAKER_SLOW_CALL_MS = 30_000;

  @Transform(toNumber) @IsNumber() @Min(0.01) @Max(1)
  BREAKER_SLOW_CALL_RATIO = 1;

  @Transform(toInt) @IsInt() @Min(1) @Max(10)
  RETRY_MAX_ATTEMPTS = 3;

  @Transform(toInt) @IsInt() @Min(0) @Max(60_000)
  RETRY_BASE_DELAY_MS = 250;

  @Transform(toInt) @IsInt() @Min(0) @Max(300_000)
  RETRY_MAX_DELAY_MS = 5000;

  @Transform(toNumber) @IsNumber() @Min(0) @Max(1)
  RETRY_BUDGET_RATIO = 0.2;

  @Transform(toInt) @IsInt() @Min(0) @Max(600_000)
  SHUTDOWN_GRACE_MS = 30_000;

  @Transform(emptyToUndefined) @IsOptional() @IsString()
  @Matches(/^\s*[^:,\s]+:(high|normal|low)\s*(,\s*[^:,\s]+:(high|normal|low)\s*)*$/, {
    message: 'must be a comma-separated list of key:tier with tier high, normal or low',
  })
  API_KEYS?: string;

  /** YAML or JSON file of client keys with name, tier, weight and caps (see api-keys-file.ts); instead of API_KEYS. */
  @Transform(emptyToUndefined) @IsOptional() @IsString()
  API_KEYS_FILE?: string;

  @Transform(emptyToUndefined) @IsOptional() @IsString() @MaxLength(512)
  ADMIN_API_KEY?: string;

  /**
   * How a model's upstreams are chosen: the least loaded (across instances, per weight), weighted random,
   * or prefix-aware (the upstream that holds the prompt's prefix, under a load bound).
   */
  @IsIn(['least-loaded', 'weighted', 'prefix-aware'])
  ROUTING: 'least-loaded' | 'weighted' | 'prefix-aware' = 'least-loaded';

  /** Prefix-aware routing: characters of canonical prompt text per hashed block. */
  @Transform(toInt) @IsInt() @Min(16) @Max(65_536)
  PREFIX_BLOCK_CHARS = 256;

  /** Prefix-aware routing: block hashes the shared index keeps (oldest dropped first), across instances. */
  @Transform(toInt) @IsInt() @Min(100) @Max(10_000_000)
  PREFIX_INDEX_MAX_BLOCKS = 100_000;

  /** Prefix-aware routing: a block hash not served again within this time leaves the index. */
  @Transform(toInt) @IsInt() @Min(1000) @Max(86_400_000)
  PREFIX_INDEX_TTL_MS = 600_000;

  /** Prefix-aware routing: no upstream takes more than (1 + ε) × the average load per weight of its model's upstreams. */
  @Transform(toNumber) @IsNumber() @Min(0) @Max(10)
  PREFIX_LOAD_EPSILON = 0.25;

  /** Polled KV-cache use (0..1) at or above which an upstream is scored down. */
  @Transform(toNumber) @IsNumber() @Min(0) @Max(1)
  KV_CACHE_PRESSURE_THRESHOLD = 0.9;

  /** Hedged attempts (UPSTREAMS_FILE `hedge`) allowed as a share of recent calls, across instances. */
  @Transform(toNumber) @IsNumber() @Min(0) @Max(1)
  HEDGE_BUDGET_RATIO = 0.05;

  @Transform(toInt) @IsInt() @Min(0) @Max(1_000_000)
  RATE_LIMIT_RPM = 0;

  /** Output tokens a request without max_tokens (or its kin) reserves against its key's token limits. */
  @Transform(toInt) @IsInt() @Min(1) @Max(10_000_000)
  TOKEN_LIMIT_DEFAULT_MAX_TOKENS = 4096;

  @Transform(toInt) @IsInt() @Min(1024) @Max(104_857_600)
  MAX_BODY_BYTES = 1_048_576;

  /** Slow-loris guard: a client must send all its request headers within this time. */
  @Transform(toInt) @IsInt() @Min(100) @Max(600_000)
  CLIENT_HEADERS_TIMEOUT_MS = 10_000;

  /** Slow-loris guard: a client must send its whole request (headers and body) within this time. */
  @Transform(toInt) @IsInt() @Min(100) @Max(3_600_000)
  CLIENT_REQUEST_TIMEOUT_MS = 30_000;

  @IsIn(LOG_LEVELS)
  LOG_LEVEL: LogLevel = 'info';

  /** `none`: /metrics is open; `admin`: it needs the admin key. */
  @IsIn(['none', 'admin'])
  METRICS_AUTH: 'none' | 'admin' = 'none';

  /** `none`: /health details are public; `admin`: they need the admin key. */
  @IsIn(['none', 'admin'])
  HEALTH_DETAILS: 'none' | 'admin' = 'none';

  /** max_tokens cap applied while the strategy is `degraded` or `critical`. */
  @Transform(toInt) @IsInt() @Min(1) @Max(1_000_000)
  DEGRADED_MAX_TOKENS = 256;

  /** How long completed job results stay readable through the jobs API. */
  @Transform(toInt) @IsInt() @Min(1000) @Max(30 * 86_400_000)
  JOB_RESULT_TTL_MS = 3_600_000;

  /** Whole deadline of an async job (POST /v1/jobs): queue wait plus upstream work. */
  @Transform(toInt) @IsInt() @Min(1000) @Max(7 * 86_400_000)
  JOB_TIMEOUT_MS = 600_000;

  /**
   * How long a background response (`POST /v1/responses` with `background: true`) and its event log stay
   * readable, counted from its last change (and never less than its deadline while it waits or runs).
   */
  @Transform(toInt) @IsInt() @Min(1000) @Max(30 * 86_400_000)
  RESPONSE_TTL_MS = 3_600_000;

  /** Most stream events kept per background response for resuming; the oldest go first past it. */
  @Transform(toInt) @IsInt() @Min(10) @Max(1_000_000)
  RESPONSE_EVENTS_MAX = 10_000;

  /** Most bytes of stream events kept per background response for resuming; the oldest go first past it. */
  @Transform(toInt) @IsInt() @Min(1024) @Max(1_073_741_824)
  RESPONSE_EVENTS_MAX_BYTES = 4_194_304;

  /** `false` runs this instance as a front door only: it queues requests that other instances' workers run. */
  @IsIn(['true', 'false'])
  WORKER_ENABLED: 'true' | 'false' = 'true';

  /**
   * Gateway processes on this machine, sharing one port through `node:cluster`: a whole number, or `auto`
   * for one per core. Each is a full instance on the same Redis.
   */
  @Matches(/^(auto|[1-9]\d{0,2}|10[01]\d|102[0-4])$/, { message: 'must be a whole number of processes from 1 to 1024, or auto (one per core)' })
  @IsString()
  WORKERS = '1';

  /**
   * Lease of a running request's slot and lock of its job: renewed while it runs, so a crashed instance's
   * slots come back and its async jobs are picked up by another instance about this long after the crash.
   */
  @Transform(toInt) @IsInt() @Min(1000) @Max(600_000)
  QUEUE_LOCK_MS = 5_000;

  /** Largest file accepted by `POST /v1/files` (a batch's JSONL input), in bytes. */
  @Transform(toInt) @IsInt() @Min(1024) @Max(536_870_912)
  FILES_MAX_BYTES = 52_428_800;

  /** Most request lines one batch may hold. */
  @Transform(toInt) @IsInt() @Min(1) @Max(1_000_000)
  BATCH_MAX_LINES = 50_000;

  /** Deadline of one batch line's upstream work (retries included), counted from when it starts. */
  @Transform(toInt) @IsInt() @Min(1000) @Max(86_400_000)
  BATCH_LINE_TIMEOUT_MS = 120_000;

  /** How many times a batch line is started before it is written to the error file (its instance died each time). */
  @Transform(toInt) @IsInt() @Min(1) @Max(100)
  BATCH_LINE_MAX_STARTS = 3;

  /** Time a batch has to finish (the API's `completion_window: "24h"`); lines not done by then end `batch_expired`. */
  @Transform(toInt) @IsInt() @Min(1000) @Max(7 * 86_400_000)
  BATCH_COMPLETION_WINDOW_MS = 86_400_000;

  /** Global slots that batch lines leave free for interactive requests to arrive into (0: batches may fill every free slot). */
  @Transform(toInt) @IsInt() @Min(0) @Max(10_000)
  BATCH_IDLE_HEADROOM = 0;

  /** `true`: an interactive request that finds every slot taken stops the batch line started last (it runs again later). */
  @IsIn(['true', 'false'])
  BATCH_PREEMPT: 'true' | 'false' = 'true';

  /** How long a queued interactive request waits for a slot to free by itself before a batch line is stopped for it. */
  @Transform(toInt) @IsInt() @Min(0) @Max(60_000)
  BATCH_PREEMPT_AFTER_MS = 100;

  /** Poll period of the upstreams' own /metrics (vLLM load figures); 0 turns polling off. */
  @Transform(toInt) @IsInt() @Min(0) @Max(3_600_000)
  UPSTREAM_METRICS_POLL_MS = 5000;

  /**
   * OpenTelemetry (standard variable): base URL of an OTLP/HTTP collector; traces go to `<url>/v1/traces`.
   * Tracing is off unless this or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set.
   */
  @Transform(emptyToUndefined) @IsOptional() @IsString()
  @Matches(/^https?:\/\/[^\s]+$/, { message: 'must be an http:// or https:// URL of an OTLP/HTTP collector' })
  OTEL_EXPORTER_OTLP_ENDPOINT?: string;

  /** OpenTelemetry (standard variable): the full traces URL; wins over OTEL_EXPORTER_OTLP_ENDPOINT. */
  @Transform(emptyToUndefined) @IsOptional() @IsString()
  @Matches(/^https?:\/\/[^\s]+$/, { message: 'must be an http:// or https:// URL (the full /v1/traces URL)' })
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?: string;

  /** OpenTelemetry (standard variable): `service.name` of every span. */
  @Transform(emptyToUndefined) @IsOptional() @IsString() @MaxLength(255)
  OTEL_SERVICE_NAME?: string;

  /** OpenTelemetry (standard variable): `true` turns tracing off even when an endpoint is set. */
  @IsIn(['true', 'false'])
  OTEL_SDK_DISABLED: 'true' | 'false' = 'false';
}

export class ConfigurationError extends Error {
  override readonly name = 'ConfigurationError';
}

function describe(error: ValidationError): string {
  const value = SECRET_VARIABLES.has(error.property)
    ? '(hidden)'
    : URL_VARIABLES.has(error.property)
      ? JSON.stringify(redactUrl(String(error.value)))
      : JSON.stringify(error.value);
  const constraints = Object.values(error.constraints ?? {}).map((m) => m.replace(`${error.property} `, ''));
  return `${error.property}=${value}: ${constraints.join('; ')}`;
}

/** Hides the password of a URL (`redis://:secret@host` → `redis://:***@host`). */
export function redactUrl(url: string): string {
  return url.replace(/^(\w+:\/\/)([^@/]*)@/, (_m, scheme: string, auth: string) =>
    auth.includes(':') ? `${scheme}${auth.split(':')[0]}:***@` : `${scheme}***@`,
  );
}

/**
 * Parses and validates the environment. Throws one ConfigurationError whose message names each bad
 * variable, its value (secrets hidden) and what is allowed.
 */
export function validateEnvironment(raw: Record<string, unknown>): EnvironmentVariables {
  const known = Object.keys(new EnvironmentVariables());
  const picked: Record<string, unknown> = {};
  for (const key of [...known, 'REDIS_URL', 'REDIS_SENTINELS', 'REDIS_SENTINEL_NAME', 'REDIS_SENTINEL_PASSWORD', 'REDIS_PASSWORD',
    'UPSTREAM_URL', 'UPSTREAM_API_KEY', 'UPSTREAMS_FILE', 'API_KEYS', 'API_KEYS_FILE', 'ADMIN_API_KEY',
    'ABANDONED_REJECTION_THRESHOLD', 'VLLM_REJECTION_THRESHOLD',
    'OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'OTEL_SERVICE_NAME']) {
    if (raw[key] !== undefined) picked[key] = raw[key];
  }
  const env = plainToInstance(EnvironmentVariables, picked);
  const errors = validateSync(env, { skipMissingProperties: false, forbidUnknownValues: false });
  if (errors.length > 0) {
    throw new ConfigurationError(`Invalid configuration: ${errors.map(describe).join(' | ')}`);
  }
  if (env.UPSTREAM_URL && env.UPSTREAMS_FILE) {
    throw new ConfigurationError(
      'Invalid configuration: UPSTREAM_URL and UPSTREAMS_FILE are both set: set one (a single upstream) or the other (several)',
    );
  }
  // Two sources of keys would make a key's tier and caps depend on which one wins: one source only.
  if (env.API_KEYS && env.API_KEYS_FILE) {
    throw new ConfigurationError(
      'Invalid configuration: API_KEYS and API_KEYS_FILE are both set: set one (simple key:tier list) or the other (keys with names, weights and caps)',
    );
  }
  const redisProblem = redisSettingsProblem(env);
  if (redisProblem) throw new ConfigurationError(`Invalid configuration: ${redisProblem}`);
  if (env.CLIENT_HEADERS_TIMEOUT_MS > env.CLIENT_REQUEST_TIMEOUT_MS) {
    throw new ConfigurationError(
      `Invalid configuration: CLIENT_HEADERS_TIMEOUT_MS=${env.CLIENT_HEADERS_TIMEOUT_MS}: must be at most CLIENT_REQUEST_TIMEOUT_MS (${env.CLIENT_REQUEST_TIMEOUT_MS})`,
    );
  }
  const keyProblem = apiKeysProblem(env.API_KEYS, env.ADMIN_API_KEY);
  if (keyProblem) throw new ConfigurationError(`Invalid configuration: ${keyProblem}`);
  if (env.RETRY_MAX_DELAY_MS < env.RETRY_BASE_DELAY_MS) {
    throw new ConfigurationError(
      `Invalid configuration: RETRY_MAX_DELAY_MS=${env.RETRY_MAX_DELAY_MS}: must be at least RETRY_BASE_DELAY_MS (${env.RETRY_BASE_DELAY_MS})`,
    );
  }
  // The breaker keeps BREAKER_WINDOW_SIZE outcomes: it could never see more calls than that.
  if (env.BREAKER_MIN_CALLS > env.BREAKER_WINDOW_SIZE) {
    throw new ConfigurationError(
      `Invalid configuration: BREAKER_MIN_CALLS=${env.BREAKER_MIN_CALLS}: must be at most BREAKER_WINDOW_SIZE (${env.BREAKER_WINDOW_SIZE})`,
    );
  }
  return env;
}

/** The largest WORKERS a start accepts; `auto` never asks for more. */
const MAX_WORKERS = 1024;

/** How many gateway processes WORKERS asks for (`auto`: one per core, `cores` being what the machine offers). */
export function workerCount(workers: string, cores: number): number {
  return workers === 'auto' ? Math.max(1, Math.min(MAX_WORKERS, cores)) : Number(workers);
}

/** Sentinel settings come as a pair, replace REDIS_URL, and have ports in range. Names no password. */
function redisSettingsProblem(env: EnvironmentVariables): string | undefined {
  const sentinel = env.REDIS_SENTINELS !== undefined || env.REDIS_SENTINEL_NAME !== undefined;
  if (!sentinel) {
    if (env.REDIS_SENTINEL_PASSWORD !== undefined || env.REDIS_PASSWORD !== undefined) {
      return 'REDIS_SENTINEL_PASSWORD and REDIS_PASSWORD apply only with REDIS_SENTINELS; with REDIS_URL, put the password in the URL (redis://:password@host:6379)';
    }
    return undefined;
  }
  if (env.REDIS_SENTINELS === undefined || env.REDIS_SENTINEL_NAME === undefined) {
    return 'REDIS_SENTINELS and REDIS_SENTINEL_NAME go together: set both (Sentinel addresses and the master name) or neither';
  }
  if (env.REDIS_URL !== undefined) return 'REDIS_URL and REDIS_SENTINELS are both set: set one (a single Redis) or the other (Redis through Sentinel)';
  const bad = parseSentinels(env.REDIS_SENTINELS).find((s) => s.port < 1 || s.port > 65535);
  return bad ? `REDIS_SENTINELS=${JSON.stringify(env.REDIS_SENTINELS)}: port ${bad.port} of ${bad.host} is outside 1-65535` : undefined;
}

/** `host:port,host:port` (as validated) → addresses; brackets of IPv6 hosts are removed. */
export function parseSentinels(list: string): { host: string; port: number }[] {
  return list.split(',').map((item) => {
    const entry = item.trim();
    const colon = entry.lastIndexOf(':');
    return { host: entry.slice(0, colon).replace(/^\[(.*)\]$/, '$1'), port: Number(entry.slice(colon + 1)) };
  });
}

/** A key listed twice, or the admin key also listed as a client key, makes its tier ambiguous. Names no key. */
function apiKeysProblem(apiKeys: string | undefined, adminKey: string | undefined): string | undefined {
  const keys = (apiKeys ?? '').split(',').map((item) => item.trim().split(':')[0]).filter((key) => key !== '');
  const repeated = keys.findIndex((key, index) => keys.indexOf(key) !== index);
  if (repeated >= 0) return `API_KEYS=(hidden): entry ${repeated + 1} repeats an earlier key; list each key once`;
  if (adminKey !== undefined && keys.includes(adminKey)) return 'ADMIN_API_KEY=(hidden): is also listed in API_KEYS; use a separate admin key';
  return undefined;
}
