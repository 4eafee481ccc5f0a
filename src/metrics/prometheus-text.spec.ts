import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parsePrometheusText, PrometheusFormatError } from './prometheus-text';

describe('parsePrometheusText', () => {
  it('reads names, labels, values and skips comments and blank lines', () => {
    const samples = parsePrometheusText(
      ['# HELP a_total A.', '# TYPE a_total counter', 'a_total{route="/v1/x",status="200"} 3', '', 'b 1.5e3 1700000000000', 'c{} -2'].join('\n'),
    );
    assert.deepEqual(samples, [
      { name: 'a_total', labels: { route: '/v1/x', status: '200' }, value: 3 },
      { name: 'b', labels: {}, value: 1500 },
      { name: 'c', labels: {}, value: -2 },
    ]);
  });

  it('unescapes label values and accepts colons in names, a trailing comma, Inf and NaN', () => {
    const [a, b, c, d] = parsePrometheusText('vllm:x{m="a\\"b\\\\c\\nd",} +Inf\nh_bucket{le="+Inf"} 7\nn NaN\nm Nan\n');
    assert.deepEqual(a, { name: 'vllm:x', labels: { m: 'a"b\\c\nd' }, value: Number.POSITIVE_INFINITY });
    assert.deepEqual(b.labels, { le: '+Inf' });
    assert.ok(Number.isNaN(c.value));
    assert.ok(Number.isNaN(d.value), 'prom-client writes NaN as `Nan`, which Prometheus accepts');
  });

  it('skips malformed lines, or throws on them when strict', () => {
    const text = 'ok 1\nbroken{a="1" 2\n1bad 3\nnovalue\nx{a=1} 2\n';
    assert.deepEqual(parsePrometheusText(text).map((s) => s.name), ['ok']);
    assert.throws(() => parsePrometheusText(text, { strict: true }), PrometheusFormatError);
  });

  it('rejects trailing garbage after the value', () => {
    assert.throws(() => parsePrometheusText('a 1 2 3', { strict: true }), PrometheusFormatError);
    assert.throws(() => parsePrometheusText('a 1 notatimestamp', { strict: true }), PrometheusFormatError);
  });
});
