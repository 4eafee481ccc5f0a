import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FakeClock } from '../common/clock';
import { ClusterMember, clusterMember } from '../../test/support/cluster';
import { startRedis, TestRedis } from '../../test/support/redis-server';
import { waitFor } from '../../test/support/wait';

describe('ClusterSignals on a real redis-server', () => {
  let redis: TestRedis;
  const members: ClusterMember[] = [];

  async function member(clock = new FakeClock()): Promise<ClusterMember & { clock: FakeClock }> {
    const m = await clusterMember(redis.url, { clock, renewing: false });
    members.push(m);
    return { ...m, clock };
  }

  /** Resolves once `count` subscribers listen on `channel`. */
  async function subscribed(m: ClusterMember, channel: string, count = 1): Promise<void> {
    await waitFor(`a subscriber on ${channel}`, async () => {
      const [, listening] = (await m.redis.client.pubsub('NUMSUB', channel)) as [string, number];
      return Number(listening) >= count || undefined;
    });
  }

  before(async () => {
    redis = await startRedis();
  });

  after(async () => {
    await Promise.all(members.map((m) => m.close()));
    await redis?.stop();
  });

  it('a throwing handler never keeps the other handlers from a message, nor from the next one', async () => {
    const m = await member();
    const heard: string[] = [];
    m.signals.subscribe('isolation', () => {
      throw new Error('a broken consumer');
    });
    m.signals.subscribe('isolation', () => Promise.reject(new Error('a broken async consumer')));
    m.signals.subscribe('isolation', (message) => void heard.push(message));
    await subscribed(m, 'isolation');
    assert.equal(await m.signals.publish('isolation', 'one'), true);
    assert.equal(await m.signals.publish('isolation', 'two'), true);
    await waitFor('both messages', () => heard.length === 2 || undefined);
    assert.deepEqual(heard, ['one', 'two']);
  });

  it('one connection subscribes every channel of the process', async () => {
    const m = await member();
    const pubsubClients = async () => String(await m.redis.client.call('CLIENT', 'LIST', 'TYPE', 'pubsub')).split('\n').filter((line) => line.includes('name=bulwark:cluster-signals'));
    const idOf = (line: string) => /(?:^|\s)id=(\d+)/.exec(line)?.[1];
    const before = new Set((await pubsubClients()).map(idOf));
    m.signals.subscribe('first', () => undefined);
    m.signals.subscribe('second', () => undefined);
    m.signals.subscribe('second', () => undefined);
    await subscribed(m, 'first');
    await subscribed(m, 'second');
    const added = (await pubsubClients()).filter((line) => !before.has(idOf(line)));
    assert.equal(added.length, 1, 'one new subscriber connection');
    assert.match(added[0], / sub=2 /, 'holding both channels');
  });

  it('a message published while the subscriber is disconnected still reaches its handler, through the poll after the reconnect', async () => {
    const m = await member();
    const marks = ['job-a', 'job-b'];
    const delivered = new Map<string, 'message' | 'poll'>();
    const deliver = (id: string, via: 'message' | 'poll') => {
      if (!delivered.has(id)) delivered.set(id, via);
    };
    // The fake clock never moves: the poll runs only when it is owed (first run, after a reconnect).
    m.signals.subscribe('cancel', (id) => deliver(id, 'message'), {
      everyMs: 60_000,
      run: async () => {
        const found = await m.redis.client.mget(marks.map((id) => `mark:${id}`));
        found.forEach((mark, i) => mark !== null && deliver(marks[i], 'poll'));
      },
    });
    await subscribed(m, 'cancel');
    await m.signals.publish('cancel', 'job-a');
    await waitFor('job-a by message', () => delivered.get('job-a'));
    assert.equal(delivered.get('job-a'), 'message');

    // Kill the subscriber and publish before it is back: pub/sub drops the message.
    const replies = (await m.redis.client.multi().client('KILL', 'TYPE', 'pubsub').set('mark:job-b', '1').publish('cancel', 'job-b').exec()) ?? [];
    const receivers = replies[2]?.[1];
    assert.equal(receivers, 0, 'nobody heard the message');
    await waitFor('job-b through the poll', () => delivered.get('job-b'));
    assert.equal(delivered.get('job-b'), 'poll');

    // And the channel itself works again.
    await subscribed(m, 'cancel');
    await m.redis.client.del('mark:job-b');
    marks.push('job-c');
    await m.signals.publish('cancel', 'job-c');
    await waitFor('job-c by message', () => delivered.get('job-c'));
    assert.equal(delivered.get('job-c'), 'message');
  });

  it('runs a poll on the shared tick once its interval has passed on the clock, and again on the next tick after it failed', async () => {
    const m = await member();
    let runs = 0;
    let failNext = false;
    m.signals.subscribe('polled', () => undefined, {
      everyMs: 1_000,
      run: () => {
        runs++;
        if (failNext) {
          failNext = false;
          throw new Error('Redis did not answer');
        }
      },
    });
    await waitFor('the first run', () => runs === 1 || undefined);
    for (let i = 0; i < 5; i++) m.signals.tick();
    assert.equal(runs, 1, 'not due before its interval');
    m.clock.advance(1_000);
    failNext = true;
    m.signals.tick();
    assert.equal(runs, 2, 'due once the clock moved on');
    await waitFor('a retry of the failed run, the clock unmoved', () => {
      m.signals.tick();
      return runs === 3 || undefined;
    });
    for (let i = 0; i < 5; i++) m.signals.tick();
    assert.equal(runs, 3, 'a run that succeeded is not owed');
  });

  it('unsubscribing the last handler leaves the channel and stops its poll', async () => {
    const m = await member();
    let heard = 0;
    let polled = 0;
    const unsubscribe = m.signals.subscribe('leaving', () => void heard++, { everyMs: 1_000, run: () => void polled++ });
    await subscribed(m, 'leaving');
    await waitFor('the first poll', () => polled === 1 || undefined);
    unsubscribe();
    await waitFor('the channel left', async () => {
      const [, listening] = (await m.redis.client.pubsub('NUMSUB', 'leaving')) as [string, number];
      return Number(listening) === 0 || undefined;
    });
    m.clock.advance(10_000);
    m.signals.tick();
    assert.equal(polled, 1);
    assert.equal(heard, 0);
  });
});
