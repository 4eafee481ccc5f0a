import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SeededRandomSource } from '../common/random';
import type { UpstreamDefinition } from '../upstream/upstream.types';
import { leastLoadedOrder, loadBound, PrefixCandidate, prefixAwareOrder, weightedOrder } from './upstream-router';

const u = (name: string, weight = 1): UpstreamDefinition => ({ name, baseUrl: `http://${name}.test/v1`, models: ['m'], weight });

describe('leastLoadedOrder', () => {
  it('puts the least loaded per weight first', () => {
    const loads: Record<string, number> = { a: 4, b: 1, c: 3 };
    const order = leastLoadedOrder([u('a', 2), u('b'), u('c', 1)], (n) => loads[n], new SeededRandomSource(1));
    assert.deepEqual(order.map((x) => x.name), ['b', 'a', 'c']);
  });

  it('breaks ties at random, so equal upstreams share the traffic', () => {
    const random = new SeededRandomSource(3);
    const firsts = { a: 0, b: 0 };
    for (let i = 0; i < 400; i++) firsts[leastLoadedOrder([u('a'), u('b')], () => 0, random)[0].name as 'a' | 'b']++;
    assert.ok(firsts.a > 150 && firsts.b > 150, JSON.stringify(firsts));
  });

  it('puts a weight-0 standby last even when idle', () => {
    const order = leastLoadedOrder([u('standby', 0), u('main')], (n) => (n === 'main' ? 50 : 0), new SeededRandomSource(1));
    assert.deepEqual(order.map((x) => x.name), ['main', 'standby']);
  });
});

describe('weightedOrder', () => {
  it('puts an upstream first in proportion to its weight', () => {
    const random = new SeededRandomSource(9);
    let heavy = 0;
    for (let i = 0; i < 2000; i++) if (weightedOrder([u('heavy', 3), u('light', 1)], random)[0].name === 'heavy') heavy++;
    assert.ok(heavy > 1350 && heavy < 1650, `heavy first ${heavy}/2000`);
  });
});

const c = (name: string, matched: number, load: number, extra: { weight?: number; pressured?: boolean } = {}): PrefixCandidate => ({
  upstream: u(name, extra.weight ?? 1),
  matched,
  load,
  pressured: extra.pressured ?? false,
});
const names = (order: UpstreamDefinition[]) => order.map((x) => x.name);

describe('prefixAwareOrder', () => {
  it('puts the upstream with the longest held prefix first while it is within the load bound', () => {
    // Total load 3 (+1) over 3 upstreams: bound ceil(1.25 × 4 / 3) = 2, so all three are within it.
    const order = prefixAwareOrder([c('a', 1, 1), c('b', 5, 1), c('c', 0, 1)], 0.25, new SeededRandomSource(1));
    assert.deepEqual(names(order), ['b', 'a', 'c']);
  });

  it('passes over a holder above (1 + ε) × the average load, and takes the least loaded instead', () => {
    // Total load 4 (+1 for this request) over 3 upstreams: bound ceil(1.25 × 5 / 3) = 3; b carries 3.
    const order = prefixAwareOrder([c('a', 0, 1), c('b', 9, 3), c('c', 0, 0)], 0.25, new SeededRandomSource(1));
    assert.deepEqual(names(order), ['c', 'a', 'b']);
  });

  it('scores an upstream under KV-cache pressure down, even when it holds the prefix', () => {
    const order = prefixAwareOrder([c('a', 9, 0, { pressured: true }), c('b', 0, 2)], 0.25, new SeededRandomSource(1));
    assert.deepEqual(names(order), ['b', 'a']);
  });

  it('keeps one hot prefix within the bound: n requests never put more than (1 + ε) × average + 1 on one upstream', () => {
    const random = new SeededRandomSource(5);
    const loads: Record<string, number> = { a: 0, b: 0, c: 0, d: 0 };
    for (let i = 0; i < 400; i++) {
      const first = prefixAwareOrder(Object.keys(loads).map((n) => c(n, n === 'a' ? 10 : 0, loads[n])), 0.25, random)[0];
      loads[first.name]++;
      const total = i + 1;
      assert.ok(loads.a <= Math.ceil((1.25 * total) / 4) + 1, `after ${total}: ${JSON.stringify(loads)}`);
    }
    assert.ok(loads.a > 100, 'the holder still takes its share and more');
  });

  it('follows weights in the bound, and puts weight 0 last', () => {
    assert.equal(loadBound(2, 3, 4, 0), 2);
    assert.equal(loadBound(0, 3, 4, 1), 0);
    const order = prefixAwareOrder([c('standby', 9, 0, { weight: 0 }), c('a', 0, 0)], 0.25, new SeededRandomSource(1));
    assert.deepEqual(names(order), ['a', 'standby']);
  });
});
