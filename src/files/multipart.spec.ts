import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BulwarkError } from '../common/errors';
import { splitLines } from './file-object';
import { filePart, parseMultipart, textField } from './multipart';

const CT = 'multipart/form-data; boundary=----b0undary';

function form(...parts: string[]): Buffer {
  return Buffer.from(parts.map((p) => `------b0undary\r\n${p}\r\n`).join('') + '------b0undary--\r\n');
}

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return error instanceof BulwarkError ? error.code : 'other';
  }
  return undefined;
}

describe('parseMultipart', () => {
  it('reads a file part and a text field as the openai SDK sends them', () => {
    const raw = form(
      'Content-Disposition: form-data; name="purpose"\r\n\r\nbatch',
      'Content-Disposition: form-data; name="file"; filename="in.jsonl"\r\nContent-Type: application/jsonl\r\n\r\n{"a":1}\r\n{"b":2}\n',
    );
    const parts = parseMultipart({ contentType: CT, raw });
    assert.equal(textField(parts, 'purpose'), 'batch');
    const file = filePart(parts, 1000);
    assert.equal(file.filename, 'in.jsonl');
    // The file's bytes stay exactly as sent, its own CRLF included.
    assert.equal(file.data.toString(), '{"a":1}\r\n{"b":2}\n');
  });

  it('refuses a body without boundary, an unclosed body, a file past the limit and a missing file part', () => {
    assert.equal(code(() => parseMultipart({ contentType: 'multipart/form-data', raw: Buffer.from('x') })), 'invalid_body');
    assert.equal(code(() => parseMultipart({ contentType: CT, raw: Buffer.from('------b0undary\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc') })), 'invalid_body');
    const parts = parseMultipart({ contentType: CT, raw: form('Content-Disposition: form-data; name="file"; filename="f"\r\n\r\n0123456789') });
    assert.equal(code(() => filePart(parts, 9)), 'body_too_large');
    assert.equal(code(() => filePart(parts, 10)), undefined);
    assert.equal(code(() => filePart([], 10)), 'invalid_body');
  });

  it('bounds the number of parts', () => {
    const many = Array.from({ length: 20 }, (_, i) => `Content-Disposition: form-data; name="f${i}"\r\n\r\nv`);
    assert.equal(code(() => parseMultipart({ contentType: CT, raw: form(...many) })), 'invalid_body');
  });
});

describe('splitLines', () => {
  it('keeps each line break with its line, so the lines are the file byte for byte', () => {
    for (const text of ['a\nb\n', 'a\r\nb', '\n\nx', '', 'one']) {
      const lines = splitLines(Buffer.from(text));
      assert.equal(Buffer.concat(lines).toString(), text);
    }
    assert.equal(splitLines(Buffer.from('a\nb\n')).length, 2);
    assert.equal(splitLines(Buffer.from('a\nb')).length, 2);
  });
});
