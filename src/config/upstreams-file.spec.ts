import 'reflect-metadata';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigurationError } from './environment';
import { loadUpstreamsFile } from './upstreams-file';

describe('loadUpstreamsFile', () => {
  let dir: string;
  const write = (name: string, text: string): string => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  /** The message of the ConfigurationError that loading `path` causes. */
  const refusal = (path: string, env: Record<string, string | undefined> = {}): string => {
    try {
      loadUpstreamsFile(path, env);
    } catch (error) {
      assert.ok(error instanceof ConfigurationError, `expected a ConfigurationError, got ${String(error)}`);
      assert.ok(error.message.includes(`UPSTREAMS_FILE=${JSON.stringify(path)}`), error.message);
      return error.message;
    }
    assert.fail(`expected ${path} to be refused`);
  };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'bulwark-upstreams-'));
  });

  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads a JSON file: base URLs lose their trailing slash, weight defaults to 1, keys resolve from env', () => {
    const path = write(
      'upstreams.json',
      JSON.stringify({
        upstreams: [
          { name: 'vllm-a', url: 'http://vllm-a:8000/v1/', apiKeyEnv: 'VLLM_A_KEY', models: ['llama'], maxConcurrency: 4, weight: 3 },
          { name: 'vllm-b', url: 'https://vllm-b/v1', models: ['llama', 'mistral'] },
        ],
        fallbacks: { llama: ['mistral'] },
      }),
    );
    const topology = loadUpstreamsFile(path, { VLLM_A_KEY: 'sk-a' });
    assert.deepEqual(topology, {
      upstreams: [
        { name: 'vllm-a', baseUrl: 'http://vllm-a:8000/v1', apiKey: 'sk-a', models: ['llama'], maxConcurrency: 4, weight: 3 },
        { name: 'vllm-b', baseUrl: 'https://vllm-b/v1', apiKey: undefined, models: ['llama', 'mistral'], maxConcurrency: undefined, weight: 1 },
      ],
      fallbacks: { llama: ['mistral'] },
    });
  });

  it('reads the same topology from YAML', () => {
    const path = write(
      'upstreams.yaml',
      [
        'upstreams:',
        '  - name: vllm-a',
        '    url: http://vllm-a:8000/v1',
        '    apiKeyEnv: VLLM_A_KEY',
        '    models: [llama]',
        '  - name: local',
        '    url: http://127.0.0.1:8080/v1',
        '    models:',
        '      - mistral',
        '    weight: 0.5',
        'fallbacks:',
        '  llama: [mistral]',
        '',
      ].join('\n'),
    );
    const topology = loadUpstreamsFile(path, { VLLM_A_KEY: 'sk-a' });
    assert.deepEqual(
      topology.upstreams.map((u) => [u.name, u.baseUrl, u.apiKey, u.models, u.weight]),
      [
        ['vllm-a', 'http://vllm-a:8000/v1', 'sk-a', ['llama'], 1],
        ['local', 'http://127.0.0.1:8080/v1', undefined, ['mistral'], 0.5],
      ],
    );
    assert.deepEqual(topology.fallbacks, { llama: ['mistral'] });
  });

  it('gives an empty fallback map when the file has none', () => {
    const path = write('nofallbacks.yml', 'upstreams:\n  - name: a\n    url: http://a/v1\n    models: [m]\n');
    assert.deepEqual(loadUpstreamsFile(path, {}).fallbacks, {});
  });

  it('refuses a file whose apiKeyEnv names an unset variable, without echoing any key', () => {
    const path = write('key.yaml', 'upstreams:\n  - name: a\n    url: http://a/v1\n    apiKeyEnv: A_KEY\n    models: [m]\n');
    const message = refusal(path, { OTHER_KEY: 'sk-other' });
    assert.match(message, /upstreams\[0\] \(a\)\.apiKeyEnv: A_KEY is not set/);
    assert.doesNotMatch(message, /sk-other/);
    assert.equal(loadUpstreamsFile(path, { A_KEY: 'sk-a' }).upstreams[0].apiKey, 'sk-a');
  });

  it('refuses an apiKeyEnv that is not a variable name', () => {
    const path = write('keyname.json', JSON.stringify({ upstreams: [{ name: 'a', url: 'http://a/v1', apiKeyEnv: 'sk-literal-key', models: ['m'] }] }));
    assert.match(refusal(path, {}), /apiKeyEnv must name an environment variable/);
  });

  it('refuses a file that cannot be read', () => {
    assert.match(refusal(join(dir, 'missing.yaml')), /cannot read it \(ENOENT\)/);
  });

  it('refuses broken JSON and broken YAML', () => {
    assert.match(refusal(write('broken.json', '{"upstreams": [')), /not valid JSON or YAML/);
    assert.match(refusal(write('broken.yaml', 'upstreams: [\n')), /not valid JSON or YAML/);
  });

  it('refuses an empty file and one without upstreams', () => {
    assert.match(refusal(write('empty.yaml', '')), /upstreams must contain at least 1 elements/);
    assert.match(refusal(write('none.json', '{"upstreams": []}')), /upstreams must contain at least 1 elements/);
  });

  it('refuses a top level that is not a mapping with a ConfigurationError, not a crash', () => {
    assert.match(refusal(write('scalar.json', '"hello"')), /must hold a mapping/);
    assert.match(refusal(write('scalar.yaml', 'just words\n')), /must hold a mapping/);
    assert.match(refusal(write('list.json', '[{"name": "a"}]')), /must hold a mapping/);
  });

  it('refuses upstreams that are not a list of mappings with a ConfigurationError, not a crash', () => {
    assert.match(refusal(write('upobj.json', '{"upstreams": {"a": 1}}')), /upstreams must be an array/);
    assert.match(refusal(write('upnum.json', '{"upstreams": 5}')), /upstreams must be an array/);
    assert.match(refusal(write('upnull.json', '{"upstreams": [null]}')), /upstreams\[0\]/);
  });

  it('names each problem of each entry by its path', () => {
    const path = write(
      'bad.json',
      JSON.stringify({
        upstreams: [
          { name: 'a', url: 'http://a/v1', models: ['m'] },
          { name: 'a', url: 'ftp://b', models: 'm', maxConcurrency: 0, weight: -1 },
          { name: 'bad name!', url: 'http://c/v1', models: ['m'] },
        ],
        fallbacks: { m: 'n' },
      }),
    );
    const message = refusal(path);
    assert.match(message, /upstreams\[1\]\.url: url must be an http\(s\) base URL/);
    assert.match(message, /upstreams\[1\]\.models: models must be an array/);
    assert.match(message, /upstreams\[1\]\.maxConcurrency: maxConcurrency must not be less than 1/);
    assert.match(message, /upstreams\[1\]\.weight: weight must not be less than 0/);
    assert.match(message, /upstreams\[2\]\.name: name must be 1-64 letters/);
    assert.match(message, /upstreams: duplicate name a/);
    assert.match(message, /fallbacks\.m: must be a list of model names/);
  });

  it('refuses fallbacks that are not a mapping of model lists', () => {
    const path = write('fallbacks.yaml', 'upstreams:\n  - name: a\n    url: http://a/v1\n    models: [m]\nfallbacks:\n  m: [n, 3]\n');
    assert.match(refusal(path), /fallbacks\.m: must be a list of model names/);
  });

  it('refuses an unknown key of an upstream, naming the key it most likely meant', () => {
    const path = write('typo.yaml', 'upstreams:\n  - name: a\n    url: http://a/v1\n    modles: [m]\n    weigth: 2\n');
    const message = refusal(path);
    assert.match(message, /unknown key `modles` in upstreams\[0\]; did you mean `models`\?/);
    assert.match(message, /unknown key `weigth` in upstreams\[0\]; did you mean `weight`\?/);
    // The typo also leaves the upstream without a model list, which is reported on its own.
    assert.match(message, /upstreams\[0\] \(a\)\.models: missing: .*models: \["\*"\]/);
  });

  it('does not check fallbacks against a model list that is itself wrong (no cascade of errors)', () => {
    const message = refusal(write('typo-fallback.yaml', 'upstreams:\n  - name: a\n    url: http://a/v1\n    modles: [m, n]\nfallbacks:\n  m: [n]\n'));
    assert.match(message, /unknown key `modles`/);
    assert.doesNotMatch(message, /fallbacks/);
  });

  it('refuses an unknown top-level key, listing the valid ones when none is close', () => {
    const close = refusal(write('top.json', JSON.stringify({ upstreams: [{ name: 'a', url: 'http://a/v1', models: ['m'] }], fallback: {} })));
    assert.match(close, /unknown key `fallback` in the top level; did you mean `fallbacks`\?/);
    const far = refusal(write('top2.json', JSON.stringify({ upstreams: [{ name: 'a', url: 'http://a/v1', models: ['m'], timeoutMs: 5 }] })));
    assert.match(far, /unknown key `timeoutMs` in upstreams\[0\] \(valid: name, url, apiKeyEnv, models, maxConcurrency, weight\)/);
  });

  it('refuses an empty model list, saying how to write "any model"', () => {
    const message = refusal(write('empty-models.yaml', 'upstreams:\n  - name: a\n    url: http://a/v1\n    models: []\n'));
    assert.match(message, /upstreams\[0\] \(a\)\.models: empty: list the models it serves .*or write models: \["\*"\] to send it any model/);
  });

  it('reads models: ["*"] as "any model", and refuses "*" mixed with names', () => {
    const path = write('any.yaml', 'upstreams:\n  - name: a\n    url: http://a/v1\n    models: ["*"]\n  - name: b\n    url: http://b/v1\n    models: [m]\n');
    assert.deepEqual(loadUpstreamsFile(path, {}).upstreams.map((u) => u.models), [[], ['m']]);
    assert.match(refusal(write('mixed.yaml', 'upstreams:\n  - name: a\n    url: http://a/v1\n    models: ["*", m]\n')), /"\*" \(any model\) must stand alone/);
  });

  it('refuses fallbacks that name a model no upstream serves, suggesting the closest served one', () => {
    const path = write(
      'fallback-models.yaml',
      'upstreams:\n  - name: a\n    url: http://a/v1\n    models: [llama, mistral]\nfallbacks:\n  llama: [mistrall]\n  gpt-4: [llama]\n',
    );
    const message = refusal(path);
    assert.match(message, /fallbacks\.llama: no upstream serves model `mistrall`; did you mean `mistral`\? \(served: llama, mistral\)/);
    assert.match(message, /fallbacks\.gpt-4: no upstream serves model `gpt-4` \(served: llama, mistral\)/);
    assert.doesNotMatch(message, /model `llama`/);
  });

  it('accepts fallbacks to any model when an upstream serves any model', () => {
    const path = write('fallback-any.yaml', 'upstreams:\n  - name: a\n    url: http://a/v1\n    models: ["*"]\nfallbacks:\n  big: [small]\n');
    assert.deepEqual(loadUpstreamsFile(path, {}).fallbacks, { big: ['small'] });
  });

  it('reads hedge per model, with default bounds, and none when the file has no hedge', () => {
    const two = 'upstreams:\n  - name: a\n    url: http://a/v1\n    models: [llama]\n  - name: b\n    url: http://b/v1\n    models: [llama]\n';
    const path = write('hedge.yaml', `${two}hedge:\n  llama: {minDelayMs: 100}\n`);
    assert.deepEqual(loadUpstreamsFile(path, {}).hedge, { llama: { minDelayMs: 100, maxDelayMs: 2000 } });
    assert.equal(loadUpstreamsFile(write('no-hedge.yaml', two), {}).hedge, undefined);
  });

  it('refuses a hedge on a model with one upstream, unknown hedge keys and inverted bounds', () => {
    const path = write(
      'hedge-bad.yaml',
      'upstreams:\n  - name: a\n    url: http://a/v1\n    models: [llama, qwen]\n  - name: b\n    url: http://b/v1\n    models: [qwen]\n' +
        'hedge:\n  llama: {}\n  qwen: {minDelayMs: 900, maxDelayMs: 100, maxDelay: 5}\n  phi: 3\n',
    );
    const message = refusal(path);
    assert.match(message, /hedge\.llama: a hedge goes to another upstream of the model, but only one upstream serves `llama`/);
    assert.match(message, /unknown key `maxDelay` in hedge\.qwen; did you mean `maxDelayMs`\?/);
    assert.match(message, /hedge\.qwen: minDelayMs \(900\) must be at most maxDelayMs \(100\)/);
    assert.match(message, /hedge\.phi: must be a mapping/);
  });
});
