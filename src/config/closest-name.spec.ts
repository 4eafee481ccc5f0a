import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { closestName, editDistance } from './closest-name';

describe('editDistance', () => {
  it('counts insertions, deletions, substitutions and neighbour swaps', () => {
    assert.equal(editDistance('models', 'models'), 0);
    assert.equal(editDistance('modles', 'models'), 1);
    assert.equal(editDistance('weigth', 'weight'), 1);
    assert.equal(editDistance('url', 'urls'), 1);
    assert.equal(editDistance('nme', 'name'), 1);
    assert.equal(editDistance('kitten', 'sitting'), 3);
    assert.equal(editDistance('', 'abc'), 3);
  });
});

describe('closestName', () => {
  const keys = ['name', 'url', 'apiKeyEnv', 'models', 'maxConcurrency', 'weight'];

  it('finds what a typo meant, ignoring case', () => {
    assert.equal(closestName('modles', keys), 'models');
    assert.equal(closestName('weigth', keys), 'weight');
    assert.equal(closestName('apikeyenv', keys), 'apiKeyEnv');
    assert.equal(closestName('maxConcurency', keys), 'maxConcurrency');
    assert.equal(closestName('URL', keys), 'url');
  });

  it('suggests nothing for a word that is not close to any name', () => {
    assert.equal(closestName('timeout', keys), undefined);
    assert.equal(closestName('x', ['upstreams', 'fallbacks']), undefined);
  });
});
