import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import Redis from 'ioredis';
import { RELEASE } from '../src/queue/slot-scripts';
import { chatBody, postJson } from './support/http';
import { GatewayStack, startStack } from './support/stack';
import { startMonitor } from './support/redis-monitor';
import { waitFor } from './support/wait';

/** One command as MONITOR shows it: the connection it came from and its words. */
interface Seen {
  addr: string;
  words: string[];
}

/** What a command is, for telling the background's commands from a request's: its name, and for a script its sha. */
function signature(words: string[]): string {
  const name = words[0]?.toLowerCase() ?? '';
  return name === 'evalsha' ? `evalsha ${words[1]}` : name;
}

/**
 * Round trips in `seen`, leaving out commands whose signature is in `background`: each command is one,
 * except that a MULTI … EXEC block is one in all (it goes out and comes back as one), and is left out
 * when every command in it is a background one.
 */
function roundTrips(seen: Seen[], background: Set<string>): { count: number; commands: string[] } {
  const open = new Map<string, string[]>();
  const commands: string[] = [];
  for (const { addr, words } of seen) {
    const name = words[0]?.toLowerCase();
    const block = open.get(addr);
    if (name === 'multi') open.set(addr, []);
    else if (name === 'exec' && block) {
      open.delete(addr);
      if (block.some((c) => !background.has(c))) commands.push(`multi[${block.join(', ')}]`);
    } else if (block) block.push(signature(words));
    else if (!background.has(signature(words))) commands.push(signature(words));
  }
  return { count: commands.length, commands };
}

describe('Redis round trips of one request (one gateway, the rest idle)', () => {
  let stack: GatewayStack;
  let monitoring: Redis | undefined;
  let seen: Seen[] = [];
  let background = new Set<string>();
  /** Connections that only listen or poll on their own schedule (subscribers, the delivery inbox). */
  let listeners = new Set<string>();

  before(async () => {
    // One slot; renewals far apart, so that no lease renewal falls into a measured request.
    stack = await startStack({ env: { MAX_CONCURRENT_REQUESTS: '1', QUEUE_LOCK_MS: '60000', UPSTREAM_METRICS_POLL_MS: '0' } });
    // Warm up: scripts loaded and connections used once, on the fast lane and through the queue.
    await postJson(`${stack.url}/v1/chat/completions`, chatBody());
    const blocker = postJson(`${stack.url}/v1/chat/completions`, chatBody({ x_sim: { latencyMs: 600 } }));
    await waitFor('the blocker to run', () => stack.simulator.stats.running === 1);
    await Promise.all([blocker, postJson(`${stack.url}/v1/chat/completions`, chatBody())]);
    await postJson(`${stack.url}/v1/chat/completions`, chatBody());

    const control = new Redis(stack.redis.url, { maxRetriesPerRequest: 1 });
    control.on('error', () => undefined); // a failed CLIENT LIST rejects, and says why
    try {
      const clients = String(await control.client('LIST'));
      listeners = new Set(
        clients
          .split('\n')
          .filter((line) => /name=\S*(wake|cancel|inbox|breaker|signal|subscriber)/.test(line) || /sub=[1-9]|psub=[1-9]/.test(line))
          .map((line) => /addr=(\S+)/.exec(line)?.[1] ?? ''),
      );
    } finally {
      control.disconnect();
    }
    monitoring = await startMonitor(stack.redis.url);
    // Lua's own calls show with the source `lua`: they are part of their script's one round trip.
    monitoring.on('monitor', (_time: string, args: string[], source: string) => {
      if (source !== 'lua' && !listeners.has(source)) seen.push({ addr: source, words: args.map(String) });
    });
    // What an idle gateway sends on its own (figures refresh, stalled-job check, cancel poll, …).
    seen = [];
    await new Promise((r) => setTimeout(r, 2500));
    background = new Set(seen.map((s) => signature(s.words)));
    // Timers of the instance that an idle window may miss: the cancel poll (one MGET of the cancel marks
    // of all its running jobs, every 150 ms while work runs here) and the breakers' resync (a SCAN, every 5 s).
    background.add('mget');
    background.add('scan');
    seen = [];
  });

  after(async () => {
    monitoring?.disconnect();
    await stack?.stop();
  });

  /** The request's own round trips among what was seen: background signatures left out. */
  function requestRoundTrips(): { count: number; commands: string[] } {
    return roundTrips(seen, background);
  }

  it('a fast-lane request: one script takes its slot, one gives it back', async () => {
    seen = [];
    const answer = await postJson(`${stack.url}/v1/chat/completions`, chatBody());
    assert.equal(answer.status, 200);
    await new Promise((r) => setTimeout(r, 100));
    const { count, commands } = requestRoundTrips();
    assert.ok(count <= 2, `${count} round trips: ${commands.join(' | ')}`);
    assert.ok(count >= 2, `the admission and the release must both show: ${commands.join(' | ')}`);
  });

  it('a queued sync request: at most five round trips from arrival to release', async () => {
    const blocker = postJson(`${stack.url}/v1/chat/completions`, chatBody({ x_sim: { latencyMs: 800 } }));
    await waitFor('the blocker to run', () => stack.simulator.stats.running === 1);
    await new Promise((r) => setTimeout(r, 50));
    seen = [];
    const queued = postJson(`${stack.url}/v1/chat/completions`, chatBody({ x_sim: { latencyMs: 10 } }));
    const [first, second] = await Promise.all([blocker, queued]);
    assert.deepEqual([first.status, second.status], [200, 200]);
    await new Promise((r) => setTimeout(r, 100));
    const { count, commands } = requestRoundTrips();
    // The blocker's own release (one RELEASE on its own, which hands its slot to the queued request) is
    // the blocker's second round trip, not the queued request's.
    const releaseSha = createHash('sha1').update(RELEASE).digest('hex');
    const blockersRelease = commands.filter((c) => c === `evalsha ${releaseSha}`).length;
    assert.equal(blockersRelease, 1, commands.join(' | '));
    assert.ok(count - blockersRelease <= 5, `${count - blockersRelease} round trips: ${commands.join(' | ')}`);
  });
});
