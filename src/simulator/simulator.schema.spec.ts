import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sampleJson, SeededRandom, seedOf } from './simulator.schema';

describe('sampleJson', () => {
  const schema = {
    type: 'object',
    properties: {
      name: { type: 'string', minLength: 12, maxLength: 20 },
      count: { type: 'integer', minimum: 3, maximum: 5 },
      ratio: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
      active: { type: 'boolean' },
      color: { enum: ['red', 'green'] },
      kind: { const: 'fixed' },
      tags: { type: 'array', items: { type: 'string' }, minItems: 2, maxItems: 3 },
      nested: { type: 'object', properties: { deep: { type: 'array', items: { $ref: '#/$defs/point' } } }, required: ['deep'] },
      maybe: { anyOf: [{ type: 'null' }, { type: 'integer' }] },
      either: { type: ['null', 'string'] },
    },
    required: ['name', 'count', 'undeclared'],
    $defs: { point: { type: 'object', properties: { x: { type: 'number' }, y: { type: 'number' } }, required: ['x', 'y'] } },
  };

  it('fills every declared and required property with a value of its type', () => {
    const value = sampleJson(schema, 1) as Record<string, any>;
    assert.equal(typeof value.name, 'string');
    assert.ok(value.name.length >= 12 && value.name.length <= 20, value.name);
    assert.ok(Number.isInteger(value.count) && value.count >= 3 && value.count <= 5);
    assert.ok(typeof value.ratio === 'number' && value.ratio > 0 && value.ratio <= 1);
    assert.equal(typeof value.active, 'boolean');
    assert.ok(['red', 'green'].includes(value.color));
    assert.equal(value.kind, 'fixed');
    assert.ok(Array.isArray(value.tags) && value.tags.length >= 2 && value.tags.length <= 3);
    assert.ok(value.tags.every((t: unknown) => typeof t === 'string'));
    assert.ok(value.nested.deep.length >= 1);
    for (const point of value.nested.deep) assert.deepEqual(Object.keys(point), ['x', 'y']);
    assert.ok(Number.isInteger(value.maybe), 'a nullable field gets its real type');
    assert.equal(typeof value.either, 'string');
    assert.equal(typeof value.undeclared, 'string');
  });

  it('is a function of its seed', () => {
    assert.deepEqual(sampleJson(schema, 7), sampleJson(schema, 7));
    const seeds = Array.from({ length: 10 }, (_, i) => JSON.stringify(sampleJson(schema, i)));
    assert.ok(new Set(seeds).size > 1, 'different seeds give different values');
  });

  it('merges allOf and takes an object for a schema that is not one', () => {
    const value = sampleJson({ allOf: [{ type: 'object', properties: { a: { type: 'integer' } } }, { properties: { b: { type: 'boolean' } } }] }, 3) as Record<string, unknown>;
    assert.equal(typeof value.a, 'number');
    assert.equal(typeof value.b, 'boolean');
    assert.deepEqual(sampleJson(undefined, 1), {});
    assert.deepEqual(sampleJson({ type: 'object' }, 1), {});
  });

  it('stops at a self-referencing schema', () => {
    const tree = { type: 'object', properties: { child: { $ref: '#' } }, required: ['child'] };
    let node = sampleJson(tree, 1) as Record<string, unknown>;
    let depth = 0;
    while (node.child && depth < 100) {
      node = node.child as Record<string, unknown>;
      depth++;
    }
    assert.ok(depth < 100);
  });
});

describe('SeededRandom and seedOf', () => {
  it('repeat for the same seed and the same value', () => {
    const a = new SeededRandom(42);
    const b = new SeededRandom(42);
    for (let i = 0; i < 20; i++) {
      const x = a.next();
      assert.equal(x, b.next());
      assert.ok(x >= 0 && x < 1);
    }
    assert.equal(seedOf({ a: [1, 2] }), seedOf({ a: [1, 2] }));
    assert.notEqual(seedOf({ a: [1, 2] }), seedOf({ a: [2, 1] }));
  });
});
