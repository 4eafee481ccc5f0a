import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { FakeClock } from '../common/clock';
import { UpstreamSimulator } from '../simulator/simulator';
import { UpstreamRegistry } from './upstream-registry';
import { PolledFleetLoad, UpstreamLoadPoller } from './upstream-load.poller';

function poller(urls: Record<string, string>, clock = new FakeClock()) {
  const loads: PolledFleetLoad[] = [];
  const registry = new UpstreamRegistry({
    upstreams: Object.entries(urls).map(([name, baseUrl]) => ({ name, baseUrl, models: [], weight: 1 })),
    fallbacks: {},
  });
  const p = new UpstreamLoadPoller({ metricsPollMs: 1000 }, registry, clock);
  p.onRound((load) => loads.push(load));
  return { poller: p, loads, clock };
}

/** A loopback port with nothing listening on it. */
async function freePortForTests(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

describe('UpstreamLoadPoller', () => {
  it('reads the simulator\'s vLLM gauges from the origin of its base URL and feeds them in', async (t) => {
    const sim = new UpstreamSimulator({ capacity: 1, latencyMs: 0 });
    const { baseUrl } = await sim.start();
    t.after(() => sim.stop());
    const hold = new AbortController();
    const hang = (model: string) =>
      fetch(`${baseUrl}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model, messages: [{ role: 'user', content: 'x' }], x_sim: { fault: 'hang' } }),
        signal: hold.signal,
      }).catch(() => undefined);
    const pending = [hang('sim-small'), hang('sim-large'), hang('sim-large')];
    t.after(() => hold.abort());
    for (let i = 0; i < 200 && sim.stats.waiting < 2; i++) await new Promise((r) => setTimeout(r, 10));

    const { poller: p, loads, clock } = poller({ sim: baseUrl });
    const load = await p.pollOnce();
    assert.deepEqual(load, { waiting: 2, running: 1, kvCacheUsage: 1 });
    assert.deepEqual(loads, [{ waiting: 2, running: 1, kvCacheUsage: 1, observedAt: clock.now() }]);
    hold.abort();
    await Promise.all(pending);
  });

  it('stays quiet about an upstream without /metrics and stops asking it for a while', async (t) => {
    let hits = 0;
    const server = createServer((_req, res) => {
      hits++;
      res.writeHead(404).end('{"error":"not found"}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.after(() => new Promise((r) => server.close(r)));
    const port = (server.address() as AddressInfo).port;
    const { poller: p, loads, clock } = poller({ openai: `http://127.0.0.1:${port}/v1` });
    assert.equal(await p.pollOnce(), undefined);
    assert.equal(await p.pollOnce(), undefined);
    assert.equal(hits, 1, 'a 404 is not asked again at once');
    clock.advance(11 * 60_000);
    await p.pollOnce();
    assert.equal(hits, 2, 'asked again after the back-off');
    assert.deepEqual(loads, []);
  });

  it('reports nothing when an upstream cannot be reached, and sums the ones that answer', async (t) => {
    const sim = new UpstreamSimulator();
    const { baseUrl } = await sim.start();
    t.after(() => sim.stop());
    const closed = await freePortForTests();
    const { poller: p, loads } = poller({ gone: `http://127.0.0.1:${closed}/v1`, sim: baseUrl });
    const load = await p.pollOnce();
    assert.deepEqual(load, { waiting: 0, running: 0, kvCacheUsage: 0 });
    assert.equal(loads.length, 1);
    const { poller: lonely, loads: none } = poller({ gone: `http://127.0.0.1:${closed}/v1` });
    assert.equal(await lonely.pollOnce(), undefined);
    assert.deepEqual(none, []);
  });

  it('keeps each upstream\'s figures, with the prefix-cache hit rate over the last interval', async (t) => {
    const sim = new UpstreamSimulator({ latencyMs: 0, prefixCacheTokens: 1000, blockTokens: 2 });
    const { baseUrl } = await sim.start();
    t.after(() => sim.stop());
    const ask = () =>
      fetch(`${baseUrl}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'sim-small', messages: [{ role: 'user', content: 'one two three four' }] }),
      }).then((r) => r.text());
    await ask();
    const { poller: p, clock } = poller({ sim: baseUrl });
    await p.pollOnce();
    assert.equal(p.latest('sim')?.prefixCacheHitRate, 0, 'a cold cache: 4 tokens asked, none found');
    await ask();
    await ask();
    await p.pollOnce();
    assert.equal(p.latest('sim')?.prefixCacheHitRate, 1, 'since the last poll: 8 tokens asked, 8 found');
    assert.equal(p.kvCacheUsage('sim'), 0);
    clock.advance(31_000);
    assert.equal(p.latest('sim'), undefined, 'figures older than 30 s describe nothing');
  });
});
