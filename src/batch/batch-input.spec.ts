import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BatchInputCheck } from './batch-input';

const line = (value: unknown) => Buffer.from(JSON.stringify(value) + '\n');
const ok = (id: string, extra: Record<string, unknown> = {}) => ({ custom_id: id, method: 'POST', url: '/v1/embeddings', body: { model: 'm', input: 'x', ...extra } });

function firstError(lines: Buffer[]): string | undefined {
  const check = new BatchInputCheck('/v1/embeddings', (model) => model === 'm');
  try {
    for (const l of lines) check.add(l);
  } catch (error) {
    return (error as Error).message;
  }
  return undefined;
}

describe('BatchInputCheck', () => {
  it('accepts well-formed lines, CRLF line ends included', () => {
    assert.equal(firstError([line(ok('a')), Buffer.from(JSON.stringify(ok('b')) + '\r\n')]), undefined);
  });

  it('names the first bad line and what is wrong with it', () => {
    assert.match(firstError([line(ok('a')), Buffer.from('{"custom_id":\n')]) ?? '', /^Line 2 .*not valid JSON/);
    assert.match(firstError([line(ok('a')), line(ok('a'))]) ?? '', /^Line 2 .*"a" is used by an earlier line/);
    assert.match(firstError([line({ ...ok('a'), url: '/v1/chat/completions' })]) ?? '', /^Line 1 .*endpoint is \/v1\/embeddings/);
    assert.match(firstError([line({ ...ok('a'), method: 'GET' })]) ?? '', /^Line 1 .*method/);
    assert.match(firstError([line(ok('a')), line(ok('b')), line(ok('c', { model: 'other' }))]) ?? '', /^Line 3 .*no upstream serves model "other"/);
    assert.match(firstError([line({ method: 'POST', url: '/v1/embeddings', body: { model: 'm' } })]) ?? '', /^Line 1 .*custom_id/);
    assert.match(firstError([line(ok('a', { stream: true }))]) ?? '', /^Line 1 .*stream/);
    assert.match(firstError([Buffer.from('\n')]) ?? '', /^Line 1 .*empty/);
    assert.match(firstError([line([1, 2])]) ?? '', /^Line 1 .*not a JSON object/);
    assert.match(firstError([Buffer.from('{"__proto__": {}}\n')]) ?? '', /^Line 1 /);
  });
});
