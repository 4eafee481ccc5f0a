import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { redisLogLine } from './embedded-redis';

describe('redisLogLine', () => {
  it("keeps redis-server's message and maps its warnings to warn, the rest to debug", () => {
    assert.deepEqual(redisLogLine('4242:M 30 Nov 2026 17:00:00.123 * Ready to accept connections tcp'), { level: 'debug', message: 'Ready to accept connections tcp' });
    assert.deepEqual(redisLogLine('4242:M 30 Nov 2026 17:00:00.123 # WARNING Memory overcommit must be enabled!'), { level: 'warn', message: 'WARNING Memory overcommit must be enabled!' });
  });

  it('passes other text on as a debug message and drops blank lines', () => {
    assert.deepEqual(redisLogLine('                _._                                                  '), { level: 'debug', message: '_._' });
    assert.equal(redisLogLine('   '), undefined);
  });
});
