import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigurationError, validateEnvironment } from '../config/environment';

/** The start-up checks of the auth and client-timeout variables (config/environment.ts). */
describe('auth configuration at start-up', () => {
  const refuses = (raw: Record<string, string>, pattern: RegExp, secret?: string) =>
    assert.throws(() => validateEnvironment(raw), (error: Error) => {
      assert.ok(error instanceof ConfigurationError);
      assert.match(error.message, pattern);
      if (secret) assert.ok(!error.message.includes(secret), 'the message echoes a key');
      return true;
    });

  it('accepts keys with tiers and a separate admin key', () => {
    const env = validateEnvironment({ API_KEYS: 'sk-a:high, sk-b:low', ADMIN_API_KEY: 'sk-admin' });
    assert.equal(env.API_KEYS, 'sk-a:high, sk-b:low');
  });

  it('refuses a key listed twice, naming the entry but not the key', () => {
    refuses({ API_KEYS: 'sk-twice-1:high,sk-other:low, sk-twice-1:low' }, /API_KEYS=\(hidden\): entry 3 repeats/, 'sk-twice-1');
  });

  it('refuses an admin key that is also a client key', () => {
    refuses({ API_KEYS: 'sk-shared-7:high', ADMIN_API_KEY: 'sk-shared-7' }, /ADMIN_API_KEY=\(hidden\): is also listed in API_KEYS/, 'sk-shared-7');
  });

  it('refuses a malformed API_KEYS without echoing it', () => {
    refuses({ API_KEYS: 'sk-bad-3:urgent' }, /API_KEYS=\(hidden\)/, 'sk-bad-3');
  });

  it('reads the client timeouts and refuses a headers timeout longer than the request timeout', () => {
    const env = validateEnvironment({ CLIENT_HEADERS_TIMEOUT_MS: '1000', CLIENT_REQUEST_TIMEOUT_MS: '2000' });
    assert.deepEqual([env.CLIENT_HEADERS_TIMEOUT_MS, env.CLIENT_REQUEST_TIMEOUT_MS], [1000, 2000]);
    const defaults = validateEnvironment({});
    assert.deepEqual([defaults.CLIENT_HEADERS_TIMEOUT_MS, defaults.CLIENT_REQUEST_TIMEOUT_MS], [10_000, 30_000]);
    refuses({ CLIENT_HEADERS_TIMEOUT_MS: '5000', CLIENT_REQUEST_TIMEOUT_MS: '2000' }, /CLIENT_HEADERS_TIMEOUT_MS=5000: must be at most CLIENT_REQUEST_TIMEOUT_MS/);
    refuses({ CLIENT_HEADERS_TIMEOUT_MS: '10' }, /CLIENT_HEADERS_TIMEOUT_MS=10/);
  });
});
