import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SeededRandomSource } from '../common/random';
import type { UpstreamDefinition } from '../upstream/upstream.types';
import { leastLoadedOrder, weightedOrder } from './upstream-router';

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
