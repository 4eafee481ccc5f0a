import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseNotice, parseOpenEntry } from './breaker-notice';

const open = { key: 'up:m', state: 'open', remainingMs: 900, cooldownMs: 1000, openEnded: false, origin: 'a' };

describe('breaker notices', () => {
  it('reads a well-formed notice', () => {
    assert.deepEqual(parseNotice(JSON.stringify(open)), open);
    assert.equal(parseNotice(JSON.stringify({ ...open, state: 'closed', remainingMs: 0 }))?.state, 'closed');
  });

  it('refuses malformed notices: bad JSON, bad key, unknown state, negative or missing durations', () => {
    for (const bad of ['{', 'null', '[]', { ...open, key: 'nocolon' }, { ...open, key: ':m' }, { ...open, key: `u:${'x'.repeat(600)}` },
      { ...open, state: 'half_open' }, { ...open, remainingMs: -1 }, { ...open, cooldownMs: 0 }, { ...open, origin: undefined }]) {
      assert.equal(parseNotice(typeof bad === 'string' ? bad : JSON.stringify(bad)), undefined, JSON.stringify(bad));
    }
  });

  it("takes an open entry's time left from its TTL in Redis, not from the writer's clock", () => {
    assert.equal(parseOpenEntry('up:m', JSON.stringify(open), 250)?.remainingMs, 250);
  });

  it('adopts no entry without a running TTL, of another key, or that is not an opening', () => {
    assert.equal(parseOpenEntry('up:m', JSON.stringify(open), -1), undefined);
    assert.equal(parseOpenEntry('up:m', JSON.stringify(open), -2), undefined);
    assert.equal(parseOpenEntry('up:m', null, 100), undefined);
    assert.equal(parseOpenEntry('up:other', JSON.stringify(open), 100), undefined);
    assert.equal(parseOpenEntry('up:m', JSON.stringify({ ...open, state: 'closed' }), 100), undefined);
  });
});
