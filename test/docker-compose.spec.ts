import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';

const ROOT = resolve(__dirname, '../..');
const compose = readFileSync(resolve(ROOT, 'docker-compose.yml'), 'utf8');

/** The commented Sentinel variant of docker-compose.yml, uncommented. */
function sentinelVariant(): any {
  const block = /# sentinel-variant-begin\n([\s\S]*?)# sentinel-variant-end/.exec(compose)?.[1];
  assert.ok(block, 'the Sentinel variant is marked');
  return parse(block.split('\n').map((line) => line.replace(/^#/, '')).join('\n'), { merge: true });
}

describe('docker-compose.yml: the scale-out it promises', () => {
  const file = parse(compose);

  it('runs two bulwark replicas on the shared redis, publishing no port of their own', () => {
    const bulwark = file.services.bulwark;
    assert.equal(bulwark.deploy.replicas, 2);
    assert.equal(bulwark.ports, undefined, 'only the load balancer publishes a port');
    assert.equal(bulwark.environment.REDIS_URL, 'redis://redis:6379');
    assert.ok(file.services.redis);
  });

  it('puts a load balancer in front that checks /health/ready', () => {
    const lb = file.services.lb;
    assert.match(lb.image, /^haproxy:/);
    assert.deepEqual(lb.ports, ['8000:8000']);
    const mount = lb.volumes.find((v: string) => v.startsWith('./deploy/haproxy.cfg:'));
    assert.ok(mount, 'the checked-in haproxy.cfg is mounted');
    const cfg = readFileSync(resolve(ROOT, 'deploy/haproxy.cfg'), 'utf8');
    assert.match(cfg, /http-check send meth GET uri \/health\/ready/);
    assert.match(cfg, /server-template bulwark \d+ bulwark:8000 check/);
  });

  it('has a haproxy.cfg that haproxy accepts', { skip: spawnSync('haproxy', ['-v'], { stdio: 'ignore' }).error ? 'haproxy is not installed' : false }, () => {
    const check = spawnSync('haproxy', ['-c', '-f', resolve(ROOT, 'deploy/haproxy.cfg')], { encoding: 'utf8' });
    assert.equal(check.status, 0, check.stdout + check.stderr);
  });

  it('shows a Sentinel variant that parses and wires bulwark to three Sentinels of one master name', () => {
    const variant = sentinelVariant();
    for (const name of ['redis-primary', 'redis-replica', 'sentinel-1', 'sentinel-2', 'sentinel-3']) assert.ok(variant.services[name], name);
    const env = variant.services.bulwark.environment;
    assert.equal(env.REDIS_URL, undefined);
    assert.equal(env.REDIS_SENTINELS, 'sentinel-1:26379,sentinel-2:26379,sentinel-3:26379');
    const script = variant.services['sentinel-1'].command.join(' ');
    assert.match(script, new RegExp(`sentinel monitor ${env.REDIS_SENTINEL_NAME} redis-primary 6379 2`));
    assert.equal(variant.services['sentinel-3'].image, 'redis:7-alpine', 'the merge key carries the shared settings');
    assert.ok('redis-primary-data' in variant.volumes);
  });
});
