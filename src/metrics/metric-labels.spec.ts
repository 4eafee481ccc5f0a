import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ModelLabels, NO_MODEL, OTHER_MODEL, routeLabel, statusLabel, UNMATCHED_ROUTE } from './metric-labels';

describe('ModelLabels', () => {
  it('keeps configured models and turns every other value into `other`', () => {
    const labels = new ModelLabels(['sim-small', 'sim-large']);
    assert.equal(labels.label('sim-small'), 'sim-small');
    assert.equal(labels.label('gpt-made-up'), OTHER_MODEL);
    assert.equal(labels.label('sk-secret-key-pasted-as-model'), OTHER_MODEL);
    assert.equal(labels.label({ toString: () => 'sim-small' }), OTHER_MODEL);
    assert.equal(labels.label(42), OTHER_MODEL);
  });

  it('says `none` when no model was named', () => {
    const labels = new ModelLabels([]);
    assert.equal(labels.label(undefined), NO_MODEL);
    assert.equal(labels.label(''), NO_MODEL);
    assert.equal(labels.label(null), NO_MODEL);
  });

  it('learns models an upstream served, up to a bound', () => {
    const labels = new ModelLabels([], 2);
    labels.learn('a');
    labels.learn('a');
    labels.learn('b');
    labels.learn('c');
    assert.equal(labels.label('a'), 'a');
    assert.equal(labels.label('b'), 'b');
    assert.equal(labels.label('c'), OTHER_MODEL);
  });

  it('never learns implausible ids or the reserved labels', () => {
    const labels = new ModelLabels([]);
    for (const bad of ['has space', 'x'.repeat(200), 'line\nbreak', OTHER_MODEL, NO_MODEL]) labels.learn(bad);
    assert.equal(labels.label('has space'), OTHER_MODEL);
    assert.equal(labels.label('x'.repeat(200)), OTHER_MODEL);
  });
});

describe('routeLabel and statusLabel', () => {
  it('uses the route pattern, or `unmatched`', () => {
    assert.equal(routeLabel('/v1/jobs/:id'), '/v1/jobs/:id');
    assert.equal(routeLabel(undefined), UNMATCHED_ROUTE);
    assert.equal(routeLabel('*'), UNMATCHED_ROUTE);
  });

  it('reports 499 when the client left before any header was sent', () => {
    assert.equal(statusLabel(200, true), '200');
    assert.equal(statusLabel(200, false), '499');
  });
});
