import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { keyDigest, loadApiKeysFile } from './api-keys-file';
import { closestName } from './closest-name';
import { ConfigurationError } from './environment';

const TEAM_A_KEY = 'sk-team-a-5f2e91c0';
const BATCH_KEY = 'sk-batch-0c77aa31';

describe('loadApiKeysFile', () => {
  let dir: string;
  let n = 0;
  const write = (text: string, ext = 'yaml'): string => {
    const path = join(dir, `keys-${n++}.${ext}`);
    writeFileSync(path, text);
    return path;
  };
  /** The message of the ConfigurationError that loading `path` causes; it must name the file and hold no key. */
  const refusal = (path: string, env: Record<string, string | undefined> = {}, admin?: string): string => {
    try {
      loadApiKeysFile(path, env, admin);
    } catch (error) {
      assert.ok(error instanceof ConfigurationError, `expected a ConfigurationError, got ${String(error)}`);
      assert.ok(error.message.includes(`API_KEYS_FILE=${JSON.stringify(path)}`), error.message);
      for (const key of [TEAM_A_KEY, BATCH_KEY, ...Object.values(env)]) if (key) assert.ok(!error.message.includes(key), 'a key leaks');
      return error.message;
    }
    assert.fail(`expected ${path} to be refused`);
  };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'bulwark-keys-'));
  });

  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads YAML: hashed keys and keys from named variables become digests; defaults tier normal, weight 1', () => {
    const path = write(
      [
        'keys:',
        '  - name: team-a',
        '    keyEnv: TEAM_A_KEY',
        '    tier: high',
        '    weight: 3',
        '    maxConcurrent: 4',
        '    maxQueueShare: 0.25',
        '  - name: batch',
        `    keyHash: sha256:${keyDigest(BATCH_KEY).toUpperCase()}`,
      ].join('\n'),
    );
    assert.deepEqual(loadApiKeysFile(path, { TEAM_A_KEY: TEAM_A_KEY }), [
      { name: 'team-a', tier: 'high', weight: 3, maxConcurrent: 4, maxQueueShare: 0.25, digest: keyDigest(TEAM_A_KEY), serviceTiers: ['priority', 'default', 'flex'] },
      { name: 'batch', tier: 'normal', weight: 1, maxConcurrent: undefined, maxQueueShare: undefined, digest: keyDigest(BATCH_KEY), serviceTiers: ['default', 'flex'] },
    ]);
  });

  it('reads JSON the same way', () => {
    const path = write(JSON.stringify({ keys: [{ name: 'batch', tier: 'low', keyHash: `sha256:${keyDigest(BATCH_KEY)}` }] }), 'json');
    assert.equal(loadApiKeysFile(path, {})[0].tier, 'low');
  });

  it('rejects unknown fields with the closest valid name, at the top and in an entry', () => {
    const message = refusal(write('keyz: []\n'));
    assert.match(message, /unknown field `keyz` \(did you mean `keys`\?\)/);
    const entry = refusal(write(`keys:\n  - name: team-a\n    weigth: 2\n    keyHash: sha256:${keyDigest(BATCH_KEY)}\n`));
    assert.match(entry, /keys\[0\] \(team-a\): unknown field `weigth` \(did you mean `weight`\?\)/);
  });

  it('never takes a plain key: `key:` is refused with the way to give one', () => {
    const message = refusal(write(`keys:\n  - name: team-a\n    key: ${TEAM_A_KEY}\n`));
    assert.match(message, /keys\[0\] \(team-a\): unknown field `key`/);
    assert.match(message, /give exactly one of keyHash .* or keyEnv/);
  });

  it('names each bad value: tier, weight, caps, hash form, variable name', () => {
    const hash = `sha256:${keyDigest(BATCH_KEY)}`;
    const cases: [string, RegExp][] = [
      [`{name: a, tier: urgent, keyHash: "${hash}"}`, /keys\[0\] \(a\): tier must be high, normal or low/],
      [`{name: a, weight: 0, keyHash: "${hash}"}`, /weight must be a number in \(0, 1000\]/],
      [`{name: a, maxConcurrent: 1.5, keyHash: "${hash}"}`, /maxConcurrent must be an integer/],
      [`{name: a, maxQueueShare: 1.5, keyHash: "${hash}"}`, /maxQueueShare must be a fraction of MAX_QUEUE_SIZE/],
      ['{name: a, keyHash: "md5:abc"}', /keyHash must be sha256:<64 hex digits>/],
      ['{name: a, keyEnv: lower-case}', /keyEnv must name an environment variable/],
      ['{name: a, keyEnv: MISSING_KEY}', /keyEnv: MISSING_KEY is not set/],
      [`{name: "a b", keyHash: "${hash}"}`, /keys\[0\]: name must be/],
      ['[1]', /keys\[0\]: must be a mapping/],
    ];
    for (const [entry, expected] of cases) assert.match(refusal(write(`keys:\n  - ${entry}\n`)), expected, entry);
  });

  it('reads token and request limits and service tiers per tier, a key overriding its tier field by field', () => {
    const hash = `sha256:${keyDigest(BATCH_KEY)}`;
    const path = write(
      [
        'tiers:',
        '  normal: {tokensPerMinute: 50000, tokensPerDay: 1000000, serviceTiers: [default]}',
        '  low: {requestsPerMinute: 30}',
        'keys:',
        '  - {name: team-a, keyEnv: TEAM_A_KEY, tokensPerMinute: 90000, serviceTiers: [priority, default, flex]}',
        `  - {name: batch, tier: low, keyHash: "${hash}"}`,
      ].join('\n'),
    );
    const [teamA, batch] = loadApiKeysFile(path, { TEAM_A_KEY });
    assert.deepEqual(teamA.limits, { tokensPerMinute: 90_000, tokensPerDay: 1_000_000 });
    assert.deepEqual(teamA.serviceTiers, ['priority', 'default', 'flex']);
    assert.deepEqual(batch.limits, { requestsPerMinute: 30 });
    assert.deepEqual(batch.serviceTiers, ['default', 'flex'], 'by its tier when nothing lists them');
  });

  it('names each bad limit, service tier and tier entry', () => {
    const hash = `sha256:${keyDigest(BATCH_KEY)}`;
    const cases: [string, RegExp][] = [
      [`keys:\n  - {name: a, tokensPerMinute: 0, keyHash: "${hash}"}\n`, /keys\[0\] \(a\): tokensPerMinute must be an integer from 1/],
      [`keys:\n  - {name: a, tokensPerDay: 1.5, keyHash: "${hash}"}\n`, /tokensPerDay must be an integer/],
      [`keys:\n  - {name: a, requestsPerMinute: -1, keyHash: "${hash}"}\n`, /requestsPerMinute must be an integer/],
      [`keys:\n  - {name: a, serviceTiers: [turbo], keyHash: "${hash}"}\n`, /serviceTiers must be a non-empty list of distinct values from priority, default, flex/],
      [`keys:\n  - {name: a, serviceTiers: [flex, flex], keyHash: "${hash}"}\n`, /serviceTiers must be/],
      [`keys:\n  - {name: a, tokensPerMinut: 5, keyHash: "${hash}"}\n`, /unknown field `tokensPerMinut` \(did you mean `tokensPerMinute`\?\)/],
      [`tiers: {urgent: {tokensPerMinute: 5}}\nkeys:\n  - {name: a, keyHash: "${hash}"}\n`, /tiers: unknown field `urgent`/],
      [`tiers: {low: {tokensPerMinute: 5, weight: 2}}\nkeys:\n  - {name: a, keyHash: "${hash}"}\n`, /tiers.low: unknown field `weight`/],
      [`tiers: [low]\nkeys:\n  - {name: a, keyHash: "${hash}"}\n`, /tiers: must be a mapping/],
    ];
    for (const [text, expected] of cases) assert.match(refusal(write(text)), expected, text);
  });

  it('refuses repeated names, a key listed twice (hash and variable alike) and the admin key', () => {
    const hash = `sha256:${keyDigest(TEAM_A_KEY)}`;
    const twice = refusal(write(`keys:\n  - {name: a, keyHash: "${hash}"}\n  - {name: b, keyEnv: TEAM_A_KEY}\n  - {name: a, keyHash: "sha256:${keyDigest(BATCH_KEY)}"}\n`), { TEAM_A_KEY });
    assert.match(twice, /keys\[1\] \(b\): is the same key as keys\[0\]/);
    assert.match(twice, /keys\[2\] \(a\): repeats the name of keys\[0\]/);
    const admin = refusal(write(`keys:\n  - {name: a, keyHash: "${hash}"}\n`), {}, TEAM_A_KEY);
    assert.match(admin, /is the admin key \(ADMIN_API_KEY\)/);
  });

  it('refuses an unreadable, unparsable, empty or wrongly shaped file', () => {
    assert.match(refusal(join(dir, 'absent.yaml')), /cannot read it \(ENOENT\)/);
    assert.match(refusal(write('{not json', 'json')), /not valid JSON or YAML/);
    assert.match(refusal(write('')), /must hold a mapping with a `keys` list, not nothing/);
    assert.match(refusal(write('- a\n- b\n')), /not a list/);
    assert.match(refusal(write('keys: []\n')), /keys: must be a non-empty list/);
  });
});

describe('closestName', () => {
  it('suggests a near miss and nothing for an unrelated word', () => {
    assert.equal(closestName('weigth', ['name', 'weight', 'tier']), 'weight');
    assert.equal(closestName('maxConcurent', ['maxConcurrent', 'maxQueueShare']), 'maxConcurrent');
    assert.equal(closestName('colour', ['name', 'weight', 'tier']), undefined);
  });
});
