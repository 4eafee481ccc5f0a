import 'reflect-metadata';
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ConfigurationError, parseSentinels, redactUrl, validateEnvironment, workerCount } from './environment';
import { adaptiveConfig } from './sections';

/** The ConfigurationError that `raw` causes; fails the test if it validates. */
function configError(raw: Record<string, unknown>): ConfigurationError {
  try {
    validateEnvironment(raw);
  } catch (error) {
    assert.ok(error instanceof ConfigurationError, `expected a ConfigurationError, got ${String(error)}`);
    return error;
  }
  assert.fail(`expected ${JSON.stringify(raw)} to be refused`);
}

describe('validateEnvironment', () => {
  it("fills in the contract's defaults when nothing is set", () => {
    const env = validateEnvironment({});
    assert.equal(env.PORT, 8000);
    assert.equal(env.HOST, '0.0.0.0');
    assert.equal(env.REDIS_URL, undefined);
    assert.equal(env.DATA_DIR, './data');
    assert.equal(env.UPSTREAM_URL, undefined);
    assert.equal(env.UPSTREAMS_FILE, undefined);
    assert.equal(env.REQUEST_TIMEOUT_MS, 60_000);
    assert.equal(env.STREAM_IDLE_TIMEOUT_MS, 30_000);
    assert.equal(env.MAX_QUEUE_SIZE, 50);
    assert.equal(env.MAX_CONCURRENT_REQUESTS, 3);
    assert.equal(env.QUEUE_REJECTION_THRESHOLD, 0.8);
    assert.equal(env.MAX_ABANDONED_REQUESTS, 10);
    assert.equal(env.RESET_INTERVAL_MS, 300_000);
    assert.equal(env.BREAKER_WINDOW_SIZE, 100);
    assert.equal(env.BREAKER_MIN_CALLS, 20);
    assert.equal(env.BREAKER_FAILURE_RATIO, 0.5);
    assert.equal(env.BREAKER_WINDOW_MS, 60_000);
    assert.equal(env.BREAKER_COOLDOWN_MS, 30_000);
    assert.equal(env.BREAKER_HALF_OPEN_PROBES, 3);
    assert.equal(env.RETRY_MAX_ATTEMPTS, 3);
    assert.equal(env.RETRY_BASE_DELAY_MS, 250);
    assert.equal(env.RETRY_MAX_DELAY_MS, 5000);
    assert.equal(env.RETRY_BUDGET_RATIO, 0.2);
    assert.equal(env.SHUTDOWN_GRACE_MS, 30_000);
    assert.equal(env.API_KEYS, undefined);
    assert.equal(env.ADMIN_API_KEY, undefined);
    assert.equal(env.RATE_LIMIT_RPM, 0);
    assert.equal(env.MAX_BODY_BYTES, 1_048_576);
    assert.equal(env.LOG_LEVEL, 'info');
  });

  it('turns numeric strings into numbers and ignores variables it does not know', () => {
    const env = validateEnvironment({ PORT: '0', MAX_QUEUE_SIZE: ' 7 ', QUEUE_REJECTION_THRESHOLD: '0.25', SOMETHING_ELSE: 'x' });
    assert.equal(env.PORT, 0);
    assert.equal(env.MAX_QUEUE_SIZE, 7);
    assert.equal(env.QUEUE_REJECTION_THRESHOLD, 0.25);
    assert.equal((env as unknown as Record<string, unknown>).SOMETHING_ELSE, undefined);
  });

  it('treats an empty optional URL or key as unset', () => {
    const env = validateEnvironment({ REDIS_URL: '', UPSTREAM_URL: '', API_KEYS: '' });
    assert.equal(env.REDIS_URL, undefined);
    assert.equal(env.UPSTREAM_URL, undefined);
    assert.equal(env.API_KEYS, undefined);
  });

  it('refuses MAX_QUEUE_SIZE=-3 with one message naming the variable, the value and the lower bound', () => {
    const { message } = configError({ MAX_QUEUE_SIZE: '-3' });
    assert.equal(message.split('\n').length, 1);
    assert.match(message, /MAX_QUEUE_SIZE=-3/);
    assert.match(message, /less than 1/);
  });

  it('refuses QUEUE_REJECTION_THRESHOLD=1.5, naming the upper bound', () => {
    const { message } = configError({ QUEUE_REJECTION_THRESHOLD: '1.5' });
    assert.match(message, /QUEUE_REJECTION_THRESHOLD=1\.5/);
    assert.match(message, /greater than 1/);
  });

  it('refuses REDIS_URL=nonsense, saying which schemes are allowed', () => {
    const { message } = configError({ REDIS_URL: 'nonsense' });
    assert.match(message, /REDIS_URL="nonsense"/);
    assert.match(message, /redis:\/\/ or rediss:\/\//);
  });

  it('accepts redis:// and rediss:// URLs, with credentials', () => {
    assert.equal(validateEnvironment({ REDIS_URL: 'redis://127.0.0.1:6379' }).REDIS_URL, 'redis://127.0.0.1:6379');
    assert.equal(validateEnvironment({ REDIS_URL: 'rediss://user:pw@redis.example:6380/2' }).REDIS_URL, 'rediss://user:pw@redis.example:6380/2');
  });

  it('names every bad variable in the one message', () => {
    const { message } = configError({ MAX_QUEUE_SIZE: '-3', LOG_LEVEL: 'loud', PORT: '70000' });
    assert.match(message, /MAX_QUEUE_SIZE=-3/);
    assert.match(message, /LOG_LEVEL="loud": must be one of the following values: fatal, error, warn, info, debug, trace, silent/);
    assert.match(message, /PORT=70000/);
  });

  it('refuses a non-integer where an integer is needed', () => {
    const { message } = configError({ RETRY_MAX_ATTEMPTS: '2.5' });
    assert.match(message, /RETRY_MAX_ATTEMPTS="2\.5"/);
    assert.match(message, /integer/);
  });

  it('never echoes a bad API_KEYS, ADMIN_API_KEY or UPSTREAM_API_KEY value', () => {
    const apiKeys = configError({ API_KEYS: 'sk-very-secret-value' }).message;
    assert.match(apiKeys, /API_KEYS=\(hidden\)/);
    assert.match(apiKeys, /key:tier/);
    assert.doesNotMatch(apiKeys, /sk-very-secret-value/);

    const admin = configError({ ADMIN_API_KEY: `adm-${'s'.repeat(600)}` }).message;
    assert.match(admin, /ADMIN_API_KEY=\(hidden\)/);
    assert.doesNotMatch(admin, /adm-sss/);

    const upstream = configError({ UPSTREAM_API_KEY: 12345 }).message;
    assert.match(upstream, /UPSTREAM_API_KEY=\(hidden\)/);
    assert.doesNotMatch(upstream, /12345/);
  });

  it('hides the password of a bad REDIS_URL or UPSTREAM_URL', () => {
    const redis = configError({ REDIS_URL: 'http://:hunter2@redis.example:6379' }).message;
    assert.match(redis, /REDIS_URL/);
    assert.doesNotMatch(redis, /hunter2/);

    const upstream = configError({ UPSTREAM_URL: 'ftp://bob:hunter2@llm.example/v1' }).message;
    assert.match(upstream, /UPSTREAM_URL="ftp:\/\/bob:\*\*\*@llm\.example\/v1"/);
    assert.doesNotMatch(upstream, /hunter2/);
  });

  it('accepts API_KEYS in key:tier form', () => {
    assert.equal(validateEnvironment({ API_KEYS: 'k1:high, k2:normal,k3:low' }).API_KEYS, 'k1:high, k2:normal,k3:low');
    assert.match(configError({ API_KEYS: 'k1:gold' }).message, /API_KEYS=\(hidden\)/);
  });

  it('refuses API_KEYS and API_KEYS_FILE together, naming no key', () => {
    const { message } = configError({ API_KEYS: 'sk-both-1:high', API_KEYS_FILE: '/etc/bulwark/keys.yaml' });
    assert.match(message, /API_KEYS and API_KEYS_FILE are both set/);
    assert.doesNotMatch(message, /sk-both-1/);
  });

  it('takes ROUTING least-loaded (the default), weighted or prefix-aware, and nothing else', () => {
    assert.equal(validateEnvironment({}).ROUTING, 'least-loaded');
    assert.equal(validateEnvironment({ ROUTING: 'weighted' }).ROUTING, 'weighted');
    assert.equal(validateEnvironment({ ROUTING: 'prefix-aware' }).ROUTING, 'prefix-aware');
    assert.match(configError({ ROUTING: 'random' }).message, /ROUTING="random"/);
  });

  it('validates the prefix-aware routing and hedging settings, with their defaults', () => {
    const env = validateEnvironment({});
    assert.deepEqual(
      [env.PREFIX_BLOCK_CHARS, env.PREFIX_INDEX_MAX_BLOCKS, env.PREFIX_INDEX_TTL_MS, env.PREFIX_LOAD_EPSILON, env.KV_CACHE_PRESSURE_THRESHOLD, env.HEDGE_BUDGET_RATIO],
      [256, 100_000, 600_000, 0.25, 0.9, 0.05],
    );
    assert.equal(validateEnvironment({ PREFIX_LOAD_EPSILON: '0.5' }).PREFIX_LOAD_EPSILON, 0.5);
    assert.match(configError({ HEDGE_BUDGET_RATIO: '1.5' }).message, /HEDGE_BUDGET_RATIO=1.5: must not be greater than 1/);
    assert.match(configError({ PREFIX_BLOCK_CHARS: '4' }).message, /PREFIX_BLOCK_CHARS=4: must not be less than 16/);
    assert.match(configError({ KV_CACHE_PRESSURE_THRESHOLD: 'high' }).message, /KV_CACHE_PRESSURE_THRESHOLD="high"/);
  });

  it('refuses UPSTREAM_URL and UPSTREAMS_FILE together', () => {
    const { message } = configError({ UPSTREAM_URL: 'http://llm:8000/v1', UPSTREAMS_FILE: '/etc/bulwark/upstreams.yaml' });
    assert.match(message, /UPSTREAM_URL and UPSTREAMS_FILE are both set/);
  });

  it('refuses an UPSTREAM_URL that is not http(s)', () => {
    assert.match(configError({ UPSTREAM_URL: 'llm:8000' }).message, /UPSTREAM_URL="llm:8000": must be an http:\/\/ or https:\/\/ base URL/);
  });

  it('refuses RETRY_MAX_DELAY_MS below RETRY_BASE_DELAY_MS', () => {
    assert.match(configError({ RETRY_BASE_DELAY_MS: '1000', RETRY_MAX_DELAY_MS: '500' }).message, /RETRY_MAX_DELAY_MS=500: must be at least RETRY_BASE_DELAY_MS \(1000\)/);
  });

  it('refuses BREAKER_MIN_CALLS above BREAKER_WINDOW_SIZE, which no breaker could ever reach', () => {
    assert.match(configError({ BREAKER_MIN_CALLS: '101' }).message, /BREAKER_MIN_CALLS=101: must be at most BREAKER_WINDOW_SIZE \(100\)/);
    assert.match(configError({ BREAKER_WINDOW_SIZE: '10' }).message, /BREAKER_MIN_CALLS=20: must be at most BREAKER_WINDOW_SIZE \(10\)/);
    assert.equal(validateEnvironment({ BREAKER_WINDOW_SIZE: '500', BREAKER_MIN_CALLS: '500' }).BREAKER_MIN_CALLS, 500);
  });

  describe('Redis through Sentinel', () => {
    const SENTINEL = { REDIS_SENTINELS: '10.0.0.1:26379, sentinel-b:26380,[::1]:26381', REDIS_SENTINEL_NAME: 'bulwark-primary' };

    it('accepts REDIS_SENTINELS with REDIS_SENTINEL_NAME and reads every address', () => {
      const env = validateEnvironment(SENTINEL);
      assert.deepEqual(parseSentinels(env.REDIS_SENTINELS!), [
        { host: '10.0.0.1', port: 26379 },
        { host: 'sentinel-b', port: 26380 },
        { host: '::1', port: 26381 },
      ]);
    });

    it('wants both or neither', () => {
      assert.match(configError({ REDIS_SENTINELS: '10.0.0.1:26379' }).message, /REDIS_SENTINELS and REDIS_SENTINEL_NAME go together/);
      assert.match(configError({ REDIS_SENTINEL_NAME: 'mymaster' }).message, /REDIS_SENTINELS and REDIS_SENTINEL_NAME go together/);
    });

    it('refuses Sentinel together with REDIS_URL', () => {
      assert.match(configError({ ...SENTINEL, REDIS_URL: 'redis://r:6379' }).message, /REDIS_URL and REDIS_SENTINELS are both set/);
    });

    it('refuses malformed addresses and ports out of range', () => {
      assert.match(configError({ ...SENTINEL, REDIS_SENTINELS: '10.0.0.1' }).message, /REDIS_SENTINELS="10.0.0.1": must be a comma-separated list of host:port/);
      assert.match(configError({ ...SENTINEL, REDIS_SENTINELS: 'a:26379,,b:1' }).message, /REDIS_SENTINELS/);
      assert.match(configError({ ...SENTINEL, REDIS_SENTINELS: 'a:99999' }).message, /port 99999 of a is outside 1-65535/);
    });

    it('takes passwords only with Sentinel, and never echoes them', () => {
      assert.equal(validateEnvironment({ ...SENTINEL, REDIS_PASSWORD: 'primary-secret', REDIS_SENTINEL_PASSWORD: 's' }).REDIS_PASSWORD, 'primary-secret');
      const { message } = configError({ REDIS_URL: 'redis://r:6379', REDIS_PASSWORD: 'primary-secret' });
      assert.match(message, /apply only with REDIS_SENTINELS/);
      assert.doesNotMatch(message, /primary-secret/);
      assert.doesNotMatch(configError({ ...SENTINEL, REDIS_PASSWORD: 'x'.repeat(600) }).message, /xxxx/);
    });
  });

  it('validates the VLLM_REJECTION_THRESHOLD alias like the variable it stands for', () => {
    assert.equal(validateEnvironment({ VLLM_REJECTION_THRESHOLD: '0.6' }).VLLM_REJECTION_THRESHOLD, 0.6);
    assert.match(configError({ VLLM_REJECTION_THRESHOLD: '2' }).message, /VLLM_REJECTION_THRESHOLD=2: must not be greater than 1/);
    assert.match(configError({ ABANDONED_REJECTION_THRESHOLD: '-0.1' }).message, /ABANDONED_REJECTION_THRESHOLD=-0\.1/);
  });
});

describe('redactUrl', () => {
  it('hides the password and keeps the user', () => {
    assert.equal(redactUrl('redis://:secret@host:6379'), 'redis://:***@host:6379');
    assert.equal(redactUrl('rediss://user:secret@host'), 'rediss://user:***@host');
  });

  it('hides a lone token and leaves URLs without credentials alone', () => {
    assert.equal(redactUrl('redis://token@host'), 'redis://***@host');
    assert.equal(redactUrl('redis://host:6379/0'), 'redis://host:6379/0');
  });
});

describe('adaptiveConfig: the abandoned-capacity threshold and its alias', () => {
  const names = ['ABANDONED_REJECTION_THRESHOLD', 'VLLM_REJECTION_THRESHOLD'] as const;
  let saved: Record<string, string | undefined>;

  beforeEach(() => {
    saved = Object.fromEntries(names.map((n) => [n, process.env[n]]));
    for (const n of names) delete process.env[n];
  });

  afterEach(() => {
    for (const n of names) {
      if (saved[n] === undefined) delete process.env[n];
      else process.env[n] = saved[n];
    }
  });

  it('defaults to 0.7', () => {
    assert.equal(adaptiveConfig().abandonedRejectionThreshold, 0.7);
  });

  it('takes VLLM_REJECTION_THRESHOLD when only the alias is set', () => {
    process.env.VLLM_REJECTION_THRESHOLD = '0.55';
    assert.equal(adaptiveConfig().abandonedRejectionThreshold, 0.55);
  });

  it('prefers ABANDONED_REJECTION_THRESHOLD when both are set', () => {
    process.env.VLLM_REJECTION_THRESHOLD = '0.55';
    process.env.ABANDONED_REJECTION_THRESHOLD = '0.4';
    assert.equal(adaptiveConfig().abandonedRejectionThreshold, 0.4);
  });

  it('takes an alias value of 0 as 0, not as unset', () => {
    process.env.VLLM_REJECTION_THRESHOLD = '0';
    assert.equal(adaptiveConfig().abandonedRejectionThreshold, 0);
  });
});

describe('WORKERS', () => {
  it('defaults to one process', () => {
    const env = validateEnvironment({});
    assert.equal(workerCount(env.WORKERS, 8), 1);
  });

  it('takes a whole number, or auto for one per core', () => {
    assert.equal(workerCount(validateEnvironment({ WORKERS: '4' }).WORKERS, 2), 4);
    assert.equal(workerCount(validateEnvironment({ WORKERS: 'auto' }).WORKERS, 6), 6);
    assert.equal(workerCount('auto', 0), 1);
  });

  for (const bad of ['0', '-1', '1.5', 'two', 'AUTO', '01', '1025', '']) {
    it(`refuses WORKERS=${JSON.stringify(bad)}, naming the variable and what it accepts`, () => {
      const error = configError({ WORKERS: bad });
      assert.match(error.message, /WORKERS=/);
      assert.match(error.message, /whole number of processes from 1 to 1024, or auto/);
    });
  }
});
