import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { UpstreamSimulator } from '../src/simulator/simulator';
import { chatBody, expectErrorShape, postJson, postSse } from './support/http';
import { GatewayStack, startStack } from './support/stack';
import { waitFor } from './support/wait';

const REQUEST_TIMEOUT_MS = 1500;
/** Outer bound of every call here: far past any deadline, so a hang fails the test instead of stalling it. */
const OUTER_TIMEOUT_MS = 15_000;

describe('deadlines: no request outlives its deadline', () => {
  let stack: GatewayStack;
  let simulator: UpstreamSimulator;
  let chatUrl: string;

  before(async () => {
    stack = await startStack({
      simulator: { latencyMs: 5, chunkIntervalMs: 50 },
      env: {
        REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
        STREAM_IDLE_TIMEOUT_MS: '5000',
        RETRY_MAX_ATTEMPTS: '1',
        // Room for every concurrent request at once, so that all of them reach the hanging upstream.
        MAX_CONCURRENT_REQUESTS: '20',
        // Timeouts are provoked on purpose here: keep the breaker and load shedding out of the picture.
        BREAKER_MIN_CALLS: '100',
        MAX_ABANDONED_REQUESTS: '1000',
      },
    });
    simulator = stack.simulator;
    chatUrl = `${stack.url}/v1/chat/completions`;
  });

  after(() => stack?.stop());

  it('answers 504 timeout_error when the upstream hangs, and closes the upstream call', async () => {
    const abortsBefore = simulator.stats.clientAborts;
    const res = await postJson(chatUrl, chatBody({ x_sim: { fault: 'hang' } }), { 'x-request-timeout-ms': '400' }, OUTER_TIMEOUT_MS);
    assert.equal(res.status, 504);
    const error = expectErrorShape(res.json);
    assert.equal(error.type, 'timeout_error');
    assert.equal(error.code, 'request_timeout');
    assert.equal(res.headers.get('x-should-retry'), 'true');
    await simulator.waitForClientAborts(abortsBefore + 1, 5000);
  });

  // An uncapped deadline would outlast the outer fetch timeout: finishing with 504 at all is the proof.
  it('uses REQUEST_TIMEOUT_MS when the client names no deadline', async () => {
    const res = await postJson(chatUrl, chatBody({ x_sim: { fault: 'hang' } }), {}, OUTER_TIMEOUT_MS);
    assert.equal(res.status, 504);
    assert.equal(expectErrorShape(res.json).type, 'timeout_error');
  });

  it('caps a longer X-Request-Timeout-Ms at REQUEST_TIMEOUT_MS', async () => {
    const res = await postJson(chatUrl, chatBody({ x_sim: { fault: 'hang' } }), { 'x-request-timeout-ms': '600000' }, OUTER_TIMEOUT_MS);
    assert.equal(res.status, 504);
    assert.equal(expectErrorShape(res.json).type, 'timeout_error');
  });

  it('answers 504 when an upstream is merely slower than the deadline', async () => {
    const res = await postJson(chatUrl, chatBody({ x_sim: { latencyMs: 10_000 } }), { 'x-request-timeout-ms': '300' }, OUTER_TIMEOUT_MS);
    assert.equal(res.status, 504);
    assert.equal(expectErrorShape(res.json).type, 'timeout_error');
  });

  it('answers a stream request whose upstream hangs before the first byte with a JSON 504', async () => {
    const res = await postJson(chatUrl, chatBody({ stream: true, x_sim: { fault: 'hang' } }), { 'x-request-timeout-ms': '300' }, OUTER_TIMEOUT_MS);
    assert.equal(res.status, 504);
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    assert.equal(expectErrorShape(res.json).type, 'timeout_error');
  });

  it('ends a stream that outlives its deadline with an SSE timeout error, then [DONE]', async () => {
    const abortsBefore = simulator.stats.clientAborts;
    // 100 chunks 50 ms apart: the stream would need 5 s; its deadline is 1 s.
    const { status, events } = await postSse(chatUrl, chatBody({ stream: true, x_sim: { chunks: 100 } }), { 'x-request-timeout-ms': '1000' }, OUTER_TIMEOUT_MS);
    assert.equal(status, 200);
    assert.equal(events.at(-1), '[DONE]');
    assert.equal(expectErrorShape(JSON.parse(events.at(-2)!)).type, 'timeout_error');
    const delivered = events.slice(0, -2).map((e) => JSON.parse(e).choices[0].delta.content ?? '').join('');
    assert.ok(delivered.startsWith('word1 '), delivered);
    assert.ok(!delivered.includes('word100 '), 'the stream ran past its deadline');
    await simulator.waitForClientAborts(abortsBefore + 1, 5000);
  });

  /** Ten requests with a 300 ms deadline against a hanging upstream, at once. */
  async function tenAgainstHang() {
    const abortsBefore = simulator.stats.clientAborts;
    const chatCalls = () => simulator.stats.requestsByPath['/v1/chat/completions'] ?? 0;
    const callsBefore = chatCalls();
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        postJson(chatUrl, chatBody({ x_sim: { fault: 'hang' } }), { 'x-request-timeout-ms': '300', 'x-request-id': `deadline-${i}` }, OUTER_TIMEOUT_MS),
      ),
    );
    for (const [i, res] of results.entries()) {
      expectErrorShape(res.json);
      assert.equal(res.headers.get('x-request-id'), `deadline-${i}`);
    }
    // Every upstream call that was made is closed again.
    await simulator.waitForClientAborts(abortsBefore + (chatCalls() - callsBefore), 5000);
    // A call whose close is still on its way counts as in flight for a moment: none may stay open.
    await waitFor('every upstream call to be closed', () => simulator.stats.inFlight === 0, 5000);
    return results;
  }

  it('ends 10 concurrent requests against a hanging upstream within their deadline: none answered 200, none left hanging', async () => {
    const results = await tenAgainstHang();
    for (const res of results) {
      // A 504 from the deadline, or a 503 refusal at the door because the deadline looked unreachable.
      const error = expectErrorShape(res.json);
      assert.ok(
        (res.status === 504 && error.type === 'timeout_error') || (res.status === 503 && error.code === 'deadline_unreachable'),
        JSON.stringify({ status: res.status, error }),
      );
    }
  });

  it(
    'answers 10 concurrent requests against a hanging upstream with 504 each when there are slots for all of them',
    async () => {
      const results = await tenAgainstHang();
      assert.deepEqual(results.map((r) => r.status), Array(10).fill(504), JSON.stringify(results.map((r) => r.json.error.code)));
    },
  );

  it('still serves normally after the timeouts', async () => {
    const res = await postJson(chatUrl, chatBody({ x_sim: { chunks: 2 } }), {}, OUTER_TIMEOUT_MS);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.choices[0].message.content, 'word1 word2 ');
  });
});
