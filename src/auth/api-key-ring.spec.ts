import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { describe, it } from 'node:test';
import { keyDigest } from '../config/api-keys-file';
import { ADMIN_IDENTITY, ApiKeyRing, clientIdOf, definitionsFromApiKeys, parseApiKeys, presentedKey } from './api-key-ring';

const KEYS = 'sk-alpha-0001:high, sk-beta-0002:normal,sk-gamma-0003:low';

describe('parseApiKeys', () => {
  it('reads key:tier pairs, trimming spaces around entries', () => {
    assert.deepEqual(parseApiKeys(KEYS), [
      { key: 'sk-alpha-0001', tier: 'high' },
      { key: 'sk-beta-0002', tier: 'normal' },
      { key: 'sk-gamma-0003', tier: 'low' },
    ]);
  });

  it('gives no keys for an unset or blank variable', () => {
    assert.deepEqual(parseApiKeys(undefined), []);
    assert.deepEqual(parseApiKeys('  '), []);
  });

  it('refuses a repeated key or an unknown tier without echoing the key', () => {
    assert.throws(() => parseApiKeys('sk-secret-1:high,sk-secret-1:low'), (error: Error) => {
      assert.match(error.message, /entry 2 repeats/);
      assert.doesNotMatch(error.message, /sk-secret-1/);
      return true;
    });
    assert.throws(() => parseApiKeys('sk-secret-2:urgent'), (error: Error) => !error.message.includes('sk-secret-2'));
  });
});

describe('clientIdOf', () => {
  it('is a stable short hash prefix that does not contain the key', () => {
    const id = clientIdOf('sk-alpha-0001');
    assert.match(id, /^key_[0-9a-f]{8}$/);
    assert.equal(clientIdOf('sk-alpha-0001'), id);
    assert.notEqual(clientIdOf('sk-alpha-0002'), id);
    assert.ok(!id.includes('alpha'));
  });
});

describe('ApiKeyRing', () => {
  const ring = new ApiKeyRing(definitionsFromApiKeys(parseApiKeys(KEYS)), 'admin-key-0009');

  it('identifies each configured key with its tier and a non-secret id', () => {
    assert.deepEqual(ring.identify('sk-alpha-0001'), { id: clientIdOf('sk-alpha-0001'), name: clientIdOf('sk-alpha-0001'), tier: 'high', admin: false, weight: 1 });
    assert.deepEqual(ring.identify('sk-beta-0002'), { id: clientIdOf('sk-beta-0002'), name: clientIdOf('sk-beta-0002'), tier: 'normal', admin: false, weight: 1 });
    assert.deepEqual(ring.identify('sk-gamma-0003'), { id: clientIdOf('sk-gamma-0003'), name: clientIdOf('sk-gamma-0003'), tier: 'low', admin: false, weight: 1 });
  });

  it('knows no near miss: prefix, extension, other case, padding, empty', () => {
    for (const near of ['sk-alpha-000', 'sk-alpha-00011', 'SK-ALPHA-0001', ' sk-alpha-0001', '', 'sk-alpha-0001\0']) {
      assert.equal(ring.identify(near), undefined, JSON.stringify(near));
    }
    assert.equal(ring.identify(undefined), undefined);
  });

  it('identifies the admin key as admin with tier high, but never as a client key', () => {
    assert.equal(ring.identify('admin-key-0009'), ADMIN_IDENTITY);
    assert.equal(ring.clientIdentity('admin-key-0009'), undefined);
    assert.equal(ring.isAdminKey('admin-key-0009'), true);
    assert.equal(ring.isAdminKey('sk-alpha-0001'), false);
    assert.equal(ring.isAdminKey('admin-key-000'), false);
    assert.equal(ring.isAdminKey(undefined), false);
  });

  it('grants a file key its configured name, weight and caps, with the same id a listed key would have', () => {
    const fileRing = new ApiKeyRing(
      [
        { name: 'team-a', tier: 'normal', weight: 3, maxConcurrent: 4, maxQueueShare: 0.25, digest: keyDigest('sk-team-a-77') },
        { name: 'batch', tier: 'low', weight: 1, digest: keyDigest('sk-batch-88') },
      ],
      undefined,
      'API_KEYS_FILE',
    );
    assert.deepEqual(fileRing.identify('sk-team-a-77'), {
      id: clientIdOf('sk-team-a-77'), name: 'team-a', tier: 'normal', admin: false, weight: 3, maxConcurrent: 4, maxQueueShare: 0.25,
    });
    assert.deepEqual(fileRing.identify('sk-batch-88'), { id: clientIdOf('sk-batch-88'), name: 'batch', tier: 'low', admin: false, weight: 1 });
    assert.equal(fileRing.identify('sk-team-a-7'), undefined);
    assert.deepEqual(fileRing.describe().map((d) => d.name), ['team-a', 'batch']);
  });

  it('has no admin key when none is configured, and enforces nothing without client keys', () => {
    const open = new ApiKeyRing([]);
    assert.equal(open.enforcing, false);
    assert.equal(open.hasAdminKey, false);
    assert.equal(open.isAdminKey(''), false);
    assert.equal(ring.enforcing, true);
    assert.equal(ring.hasAdminKey, true);
  });

  it('keeps digests only: no configured key survives in the object or its description', () => {
    const dump = inspect(ring, { depth: 10, showHidden: true }) + JSON.stringify(ring.describe());
    for (const key of ['sk-alpha-0001', 'sk-beta-0002', 'sk-gamma-0003', 'admin-key-0009']) assert.ok(!dump.includes(key), key);
    assert.deepEqual(ring.describe().map((d) => d.tier), ['high', 'normal', 'low']);
  });
});

describe('presentedKey', () => {
  it('takes a Bearer token, whatever the scheme case', () => {
    assert.equal(presentedKey({ authorization: 'Bearer sk-1' }), 'sk-1');
    assert.equal(presentedKey({ authorization: 'bearer   sk-1 ' }), 'sk-1');
  });

  it('falls back to X-API-Key, and prefers the Bearer token when both are sent', () => {
    assert.equal(presentedKey({ 'x-api-key': ' sk-2 ' }), 'sk-2');
    assert.equal(presentedKey({ authorization: 'Bearer sk-1', 'x-api-key': 'sk-2' }), 'sk-1');
    assert.equal(presentedKey({ authorization: 'Basic c2stMQ==', 'x-api-key': 'sk-2' }), 'sk-2');
  });

  it('finds nothing in other schemes, empty values or a Bearer without a token', () => {
    assert.equal(presentedKey({}), undefined);
    assert.equal(presentedKey({ authorization: 'Basic c2stMQ==' }), undefined);
    assert.equal(presentedKey({ authorization: 'Bearer ' }), undefined);
    assert.equal(presentedKey({ authorization: 'Bearer a b' }), undefined);
    assert.equal(presentedKey({ 'x-api-key': '   ' }), undefined);
  });
});
