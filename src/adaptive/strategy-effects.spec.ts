import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PRIORITIES } from '../common/priority';
import { capMaxTokens, strategyEffects } from './strategy-effects';

describe('strategyEffects', () => {
  it('healthy and stressed admit all, no cap, retries on', () => {
    for (const s of ['healthy', 'stressed'] as const) {
      const e = strategyEffects(s, 256);
      assert.ok(PRIORITIES.every((p) => e.admits(p)), s);
      assert.equal(e.maxTokensCap, null, s);
      assert.equal(e.retriesAllowed, true, s);
    }
  });

  it('degraded admits all, caps, stops retries', () => {
    const e = strategyEffects('degraded', 256);
    assert.ok(PRIORITIES.every((p) => e.admits(p)));
    assert.equal(e.maxTokensCap, 256);
    assert.equal(e.retriesAllowed, false);
  });

  it('critical admits high only, caps, stops retries', () => {
    const e = strategyEffects('critical', 256);
    assert.deepEqual(PRIORITIES.filter((p) => e.admits(p)), ['high']);
    assert.equal(e.maxTokensCap, 256);
    assert.equal(e.retriesAllowed, false);
  });

  it('rejects a non-positive cap', () => {
    assert.throws(() => strategyEffects('degraded', 0), RangeError);
  });
});

describe('capMaxTokens', () => {
  it('lowers max_tokens above the cap without mutating the input', () => {
    const body = { model: 'm', max_tokens: 4000 };
    const result = capMaxTokens(body, 256);
    assert.deepEqual(result, { body: { model: 'm', max_tokens: 256 }, capped: true });
    assert.deepEqual(body, { model: 'm', max_tokens: 4000 });
  });

  it('sets max_tokens when no limit is given', () => {
    const body: Record<string, unknown> = { model: 'm' };
    const result = capMaxTokens(body, 256);
    assert.deepEqual(result, { body: { model: 'm', max_tokens: 256 }, capped: true });
    assert.equal('max_tokens' in body, false);
  });

  it('leaves max_tokens at or below the cap', () => {
    assert.deepEqual(capMaxTokens({ max_tokens: 100 }, 256), { body: { max_tokens: 100 }, capped: false });
    assert.deepEqual(capMaxTokens({ max_tokens: 256 }, 256), { body: { max_tokens: 256 }, capped: false });
  });

  it('caps max_output_tokens, and only it, for the Responses API', () => {
    assert.deepEqual(capMaxTokens({ model: 'm' }, 256, 'responses'), { body: { model: 'm', max_output_tokens: 256 }, capped: true });
    assert.deepEqual(capMaxTokens({ max_output_tokens: 4000 }, 256, 'responses'), { body: { max_output_tokens: 256 }, capped: true });
    const within = { max_output_tokens: 100 };
    assert.equal(capMaxTokens(within, 256, 'responses').body, within);
    assert.equal(capMaxTokens(within, 256, 'responses').capped, false);
  });

  it('caps max_completion_tokens too', () => {
    const body = { max_tokens: 4000, max_completion_tokens: 5000 };
    assert.deepEqual(capMaxTokens(body, 256), {
      body: { max_tokens: 256, max_completion_tokens: 256 },
      capped: true,
    });
    assert.deepEqual(capMaxTokens({ max_completion_tokens: 5000 }, 256), {
      body: { max_completion_tokens: 256 },
      capped: true,
    });
  });

  it('changes nothing without a cap', () => {
    const body = { model: 'm' };
    const result = capMaxTokens(body, null);
    assert.equal(result.capped, false);
    assert.equal(result.body, body);
  });
});
