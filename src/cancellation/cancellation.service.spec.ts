import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CancelledError } from '../common/errors';
import { ClusterMember, clusterMember } from '../../test/support/cluster';
import { startRedis, TestRedis } from '../../test/support/redis-server';
import { waitFor } from '../../test/support/wait';
import { CancellationService } from './cancellation.service';

describe('CancellationService across two instances on a real redis-server', () => {
  let redis: TestRedis;
  const members: ClusterMember[] = [];

  async function instance(): Promise<{ member: ClusterMember; cancellation: CancellationService }> {
    const member = await clusterMember(redis.url, { renewing: false });
    members.push(member);
    const cancellation = new CancellationService(member.redis, member.signals);
    cancellation.onApplicationBootstrap();
    return { member, cancellation };
  }

  async function listening(member: ClusterMember): Promise<void> {
    await waitFor('the cancel channel subscribed', async () => {
      const [, count] = (await member.redis.client.pubsub('NUMSUB', 'bulwark:jobs:cancel')) as [string, number];
      return Number(count) >= 1 || undefined;
    });
  }

  before(async () => {
    redis = await startRedis();
  });

  after(async () => {
    await Promise.all(members.map((m) => m.close()));
    await redis?.stop();
  });

  it('a cancel from another instance aborts the job where it runs, and a cancel sent while its subscriber is away still lands', async () => {
    const runner = await instance();
    const other = await instance();
    await listening(runner.member);
    const first = runner.cancellation.open('job-1');
    await other.cancellation.cancel('job-1');
    await waitFor('job-1 aborted', () => first.signal.aborted || undefined);
    assert.ok(first.signal.reason instanceof CancelledError);

    const second = runner.cancellation.open('job-2');
    // Every subscriber is cut off: the message of this cancel reaches nobody, its key is found by the poll.
    await other.member.redis.client.client('KILL', 'TYPE', 'pubsub');
    await other.cancellation.cancel('job-2');
    await waitFor('job-2 aborted', () => second.signal.aborted || undefined);
    assert.equal(await runner.cancellation.cancelRequested('job-2'), true);
  });

  it('a job that ended is not aborted by a later cancel, and one job\'s cancel leaves the others running', async () => {
    const runner = await instance();
    const ended = runner.cancellation.open('job-ended');
    ended.close();
    const running = runner.cancellation.open('job-running');
    await runner.cancellation.cancel('job-ended');
    await runner.cancellation.cancel('job-other');
    assert.equal(ended.signal.aborted, false);
    assert.equal(running.signal.aborted, false);
    runner.cancellation.abortAll(new CancelledError('shutdown'));
    assert.equal(running.signal.aborted, true);
  });
});
