import 'reflect-metadata';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { plainToInstance } from 'class-transformer';
import { getMetadataStorage, validateSync } from 'class-validator';
import { FAST_CHECKS } from './fast-checks';
import { ChatCompletionRequestDto, CompletionRequestDto, EmbeddingRequestDto, ResponsesRequestDto } from './openai-requests.dto';

type Dto = new () => object;

const classValidatorAccepts = (dto: Dto, body: Record<string, unknown>) => validateSync(plainToInstance(dto, body), { forbidUnknownValues: false }).length === 0;

/** Edge values of each field: types, bounds on both sides, uncounted characters. */
const counts = [undefined, null, 0, 1, -1, 1.5, 128, 129, 10_000_000, 10_000_001, '5', NaN, Infinity, true];
const ratios = [undefined, null, 0, 1, 1.01, 2, 2.0001, -0.1, 0.5, '1', NaN, Infinity, -Infinity];
const texts = ['m', '', 'x'.repeat(64), 'x'.repeat(65), 'x'.repeat(256), 'x'.repeat(257), '\uFE0F', '\uFE0Fa', '😀', '😀'.repeat(128), '😀'.repeat(129), 5, null, undefined, true, {}, []];
const POOLS: Record<string, unknown[]> = {
  model: texts,
  stream: [undefined, null, true, false, 'true', 1, {}],
  background: [undefined, null, true, false, 'yes', 0, {}],
  max_tokens: counts,
  max_completion_tokens: counts,
  max_output_tokens: counts,
  n: counts,
  temperature: ratios,
  top_p: ratios,
  stream_options: [undefined, null, {}, { include_usage: true }, [], 'x', 5],
  messages: [
    undefined, null, [], 'x', [5], [null], [[]], [{}], [{ role: 'user', content: 'hi' }], [{ role: '' }], [{ role: 5 }],
    [{ role: 'x'.repeat(64) }], [{ role: 'x'.repeat(65) }], [{ role: '\uFE0F' }], [{ role: 'user' }, { role: null }], [{ role: 'user' }, 'x'],
  ],
  prompt: [undefined, null, 'hi', ['a'], [1, 2], 0, ''],
  input: [undefined, null, 'hi', ['a'], [{ role: 'user', content: 'x' }], 0, {}, ''],
  instructions: [undefined, null, 'be brief', 5, ''],
};

const CASES: [string, Dto, Record<string, unknown>][] = [
  ['chat', ChatCompletionRequestDto, { model: 'm', messages: [{ role: 'user', content: 'hi' }] }],
  ['completions', CompletionRequestDto, { model: 'm', prompt: 'hi' }],
  ['embeddings', EmbeddingRequestDto, { model: 'm', input: 'hi' }],
  ['responses', ResponsesRequestDto, { model: 'm', input: 'hi' }],
];

/** A small deterministic generator, so a failure can be replayed. */
function random(seed: number): () => number {
  let state = seed;
  return () => ((state = (state * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
}

describe('FAST_CHECKS', () => {
  it('has edge values for every field a DTO validates, so a new field cannot slip past its hand check', () => {
    for (const [name, dto] of CASES) {
      for (const meta of getMetadataStorage().getTargetValidationMetadatas(dto, '', true, false)) {
        assert.ok(meta.propertyName in POOLS, `${name}: ${meta.propertyName} has no edge values here`);
      }
    }
  });

  for (const [name, dto, valid] of CASES) {
    const check = FAST_CHECKS.get(dto)!;

    it(`${name}: passes a plain valid body without class-validator`, () => {
      assert.ok(check(valid));
      assert.ok(check({ ...valid, stream: true, max_tokens: 16, temperature: 0.7, top_p: 1, x_sim: { fault: 'none' }, tools: [] }));
    });

    it(`${name}: never passes a body that class-validator refuses (each field's edge values, then random mixes)`, () => {
      let passed = 0;
      let refused = 0;
      const judge = (body: Record<string, unknown>) => {
        const accepted = classValidatorAccepts(dto, body);
        if (check(body)) {
          assert.ok(accepted, `the fast check passed what class-validator refuses: ${JSON.stringify(body)}`);
          passed++;
        }
        if (!accepted) refused++;
      };
      for (const [field, values] of Object.entries(POOLS)) for (const value of values) judge({ ...valid, [field]: value });
      const next = random(name.length);
      for (let i = 0; i < 3000; i++) {
        const body: Record<string, unknown> = { ...valid };
        for (const [field, values] of Object.entries(POOLS)) if (next() < 0.3) body[field] = values[Math.floor(next() * values.length)];
        judge(body);
      }
      assert.ok(passed > 100 && refused > 100, `too few of either kind: ${passed} passed, ${refused} refused`);
    });
  }
});
