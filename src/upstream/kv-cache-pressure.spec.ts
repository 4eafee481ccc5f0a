import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KvCachePressure } from './kv-cache-pressure';
import type { PolledUpstream, UpstreamLoadPoller } from './upstream-load.poller';

function pressure(polled: Record<string, PolledUpstream | undefined>, threshold = 0.9) {
  const poller = { latest: (name: string) => polled[name], kvCacheUsage: (name: string) => polled[name]?.load.kvCacheUsage } as unknown as UpstreamLoadPoller;
  return new KvCachePressure(poller, { kvCachePressureThreshold: threshold });
}

describe('KvCachePressure', () => {
  it('is under pressure at or above the threshold, and not without a fresh figure', () => {
    const p = pressure({
      full: { load: { waiting: 3, running: 8, kvCacheUsage: 0.95 }, observedAt: 0 },
      edge: { load: { waiting: 0, running: 1, kvCacheUsage: 0.9 }, observedAt: 0 },
      calm: { load: { waiting: 0, running: 1, kvCacheUsage: 0.4 }, observedAt: 0 },
      plain: { load: { waiting: 0, running: 1 }, observedAt: 0 },
    });
    assert.deepEqual(['full', 'edge', 'calm', 'plain', 'unknown'].map((n) => p.pressured(n)), [true, true, false, false, false]);
  });

  it('gives /health and the dashboard each upstream\'s polled figures, null where unknown', () => {
    const p = pressure({ a: { load: { waiting: 2, running: 5, kvCacheUsage: 0.91234 }, prefixCacheHitRate: 0.8, observedAt: 0 } });
    assert.deepEqual(p.figures('a'), { kv_cache_usage: 0.912, kv_cache_pressure: true, prefix_cache_hit_rate: 0.8, upstream_waiting: 2, upstream_running: 5 });
    assert.deepEqual(p.figures('b'), { kv_cache_usage: null, kv_cache_pressure: false, prefix_cache_hit_rate: null, upstream_waiting: null, upstream_running: null });
  });
});
