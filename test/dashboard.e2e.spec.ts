import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parsePrometheusText } from '../src/metrics/prometheus-text';
import { UpstreamSimulator } from '../src/simulator/simulator';
import { GatewayProcess } from './support/gateway-process';
import { chatBody, getJson, postJson } from './support/http';
import { GatewayStack, startStack } from './support/stack';
import { waitFor } from './support/wait';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
/** `WRITE_SCREENSHOT=1` runs the load longer and saves the page under load as docs/dashboard.png. */
const SCREENSHOT = process.env.WRITE_SCREENSHOT === '1' ? resolve(__dirname, '../../docs/dashboard.png') : undefined;
const PRIORITIES = ['high', 'normal', 'low'];

describe('dashboard: live page, JSON snapshot and SSE stream', () => {
  let stack: GatewayStack;
  let simulator: UpstreamSimulator;
  let gateway: GatewayProcess;

  before(async () => {
    ({ simulator, gateway } = stack = await startStack({
      env: { MAX_CONCURRENT_REQUESTS: '2', MAX_QUEUE_SIZE: '8', BREAKER_MIN_CALLS: '2', BREAKER_WINDOW_SIZE: '4', RETRY_MAX_ATTEMPTS: '1' },
    }));
  });

  after(() => stack?.stop());

  /** Mixed traffic from `clients` loops for `ms`: all priorities, some streams, some to a failing model. */
  async function load(ms: number, clients = 10): Promise<number[]> {
    const statuses: number[] = [];
    const until = Date.now() + ms;
    await Promise.all(
      Array.from({ length: clients }, async (_, c) => {
        for (let i = 0; Date.now() < until; i++) {
          // Client 0 keeps asking for the failing model at high priority, so even a critical gateway admits it.
          const failing = c === 0;
          const body = chatBody({ model: failing ? 'sim-large' : 'sim-small', stream: i % 3 === 0 });
          const priority = failing ? 'high' : PRIORITIES[(c + i) % 3];
          const res = await postJson(`${gateway.url}/v1/chat/completions`, body, { 'x-priority': priority }, 20_000).catch(() => ({ status: 0 }));
          statuses.push(res.status);
          if (res.status === 503) await new Promise((r) => setTimeout(r, 100));
        }
      }),
    );
    return statuses;
  }

  it('serves one self-contained page that may fetch nothing from elsewhere', async () => {
    const res = await fetch(`${gateway.url}/dashboard`, { signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /connect-src 'self'/);
    const html = await res.text();
    assert.doesNotMatch(html, /<(script|link|img|iframe)[^>]+(src|href)=/i, 'no external resources');
    assert.doesNotMatch(html, /@import|url\(/i, 'no external styles or fonts');
    assert.match(html, /\/dashboard\/stream/);
  });

  it('answers a JSON snapshot with history, and streams a sample a second until the client leaves', async () => {
    const data = await getJson(`${gateway.url}/dashboard/data`);
    assert.equal(data.status, 200);
    assert.equal(data.json.config.max_concurrent, 2);
    const sample = await waitFor('a first sample', async () => (await getJson(`${gateway.url}/dashboard/data`)).json.history.at(-1));
    for (const key of ['t', 'queue', 'waiting', 'active', 'admittedPerS', 'refusedByReason', 'upstreamLatencyMs', 'ttftMs', 'breakers', 'abandoned', 'timeUntilResetS', 'strategy', 'healthScore']) {
      assert.ok(key in sample, `sample lacks ${key}`);
    }

    const controller = new AbortController();
    const response = await fetch(`${gateway.url}/dashboard/stream`, { signal: AbortSignal.any([controller.signal, AbortSignal.timeout(10_000)]) });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    while ((text.match(/\n\ndata: /g) ?? []).length < 2) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    assert.match(text, /^retry: \d+\nevent: history\ndata: \{/);
    assert.ok((text.match(/\n\ndata: /g) ?? []).length >= 2, 'two ticks arrived');
    controller.abort();
    await reader.cancel().catch(() => undefined);
    // Only the scrape itself is left in flight once the server has ended the stream.
    await waitFor('the stream to end on the server', async () => {
      const metrics = parsePrometheusText((await getJson(`${gateway.url}/metrics`)).text);
      return metrics.find((s) => s.name === 'bulwark_http_inflight_requests')?.value === 1;
    });
  });

  it('shows live figures in headless Chromium that change under load', async (t) => {
    if (!existsSync(CHROMIUM)) {
      t.skip(`${CHROMIUM} is not installed`);
      return;
    }
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      const problems: string[] = [];
      page.on('console', (message) => {
        if (message.type() === 'error') problems.push(message.text());
      });
      page.on('pageerror', (error) => problems.push(error.message));
      await page.goto(`${gateway.url}/dashboard`, { timeout: 15_000 });
      // Expressions as strings: they run in the page, and the test's TypeScript has no DOM types.
      await page.waitForFunction("document.getElementById('conn').textContent === 'live'", undefined, { timeout: 10_000 });
      await page.waitForFunction("document.getElementById('updated').textContent !== 'never'", undefined, { timeout: 10_000 });
      const before = Number(await page.textContent('#admitted-total'));
      assert.equal(await page.textContent('#strategy'), 'healthy');

      simulator.configure({ latencyMs: 300, modelFaults: { 'sim-large': { fault: 'error', status: 503 } } });
      const traffic = load(SCREENSHOT ? 60_000 : 5000);
      let sawQueue = false;
      let sawInflight = false;
      await waitFor(
        'the page to show a queue and work in flight',
        async () => {
          sawQueue ||= Number(await page.textContent('#queue-total')) > 0;
          sawInflight ||= Number(await page.textContent('#inflight')) > 0;
          return sawQueue && sawInflight;
        },
        15_000,
        100,
      );
      if (SCREENSHOT) {
        await new Promise((r) => setTimeout(r, 55_000));
        mkdirSync(resolve(SCREENSHOT, '..'), { recursive: true });
        await page.screenshot({ path: SCREENSHOT, fullPage: true });
      }
      const statuses = await traffic;
      simulator.configure({ latencyMs: 5, modelFaults: {} });
      assert.ok(statuses.includes(200), `some requests were served: ${statuses.length}`);
      await waitFor('the admitted total to grow', async () => Number(await page.textContent('#admitted-total')) > before, 5000, 100);
      const tripped = page.locator('#breakers tr').filter({ has: page.locator('td.st-open, td.st-half_open') });
      await waitFor('a tripped breaker for the failing model', async () => (await tripped.allTextContents()).some((row) => row.includes('sim-large')), 5000, 100);
      assert.match((await page.textContent('#latency')) ?? '', /^\d+$/, 'upstream latency is shown');
      assert.equal(await page.locator('#chart-queue path').count() > 0, true, 'the queue chart has lines');
      assert.deepEqual(problems, [], 'no script errors and no CSP violations');
    } finally {
      await browser.close();
    }
  });

  // Last: it stops the gateway.
  it('ends open streams as soon as the instance drains, so a dashboard never holds up a shutdown', async () => {
    const response = await fetch(`${gateway.url}/dashboard/stream`, { signal: AbortSignal.timeout(30_000) });
    assert.equal(response.status, 200);
    const reader = response.body!.getReader();
    await reader.read();
    const stopped = gateway.stop('SIGTERM');
    let ended = false;
    for (;;) {
      const { done } = await reader.read();
      if (done) {
        ended = true;
        break;
      }
    }
    assert.ok(ended, 'the server ended the stream');
    assert.equal(await stopped, 0);
    const messages = gateway.logLines().map((l) => String(l.msg));
    assert.ok(!messages.some((m) => m.includes('grace period over')), `the drain waited for nothing: ${messages.filter((m) => /drain|grace/.test(m)).join(' | ')}`);
  });
});
