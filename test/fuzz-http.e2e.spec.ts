import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { UpstreamSimulator } from '../src/simulator/simulator';
import { GatewayProcess } from './support/gateway-process';
import { chatBody, expectErrorShape, postJson } from './support/http';
import { exchange, rawRequest, sendRaw } from './support/raw-http';
import { GatewayStack, startStack } from './support/stack';

const KEY = 'sk-http-client-41d9';
const MAX_BODY_BYTES = 8192;
const AUTH = { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' };

/** Writes `bytes` one at a time, `gapMs` apart, until done or the server closes; returns how many went out. */
async function trickle(socket: Socket, bytes: Buffer, gapMs: number, sent: { count: number }): Promise<void> {
  for (const byte of bytes) {
    if (socket.destroyed || !socket.writable) return;
    socket.write(Buffer.of(byte));
    sent.count++;
    await sleep(gapMs);
  }
}

describe('hostile HTTP: slow clients, framing lies, oversized headers', () => {
  let stack: GatewayStack;
  let simulator: UpstreamSimulator;
  let gateway: GatewayProcess;
  const generations = () => simulator.stats.requestsByPath['/v1/chat/completions'] ?? 0;

  before(async () => {
    ({ simulator, gateway } = stack = await startStack({
      simulator: { latencyMs: 1 },
      env: {
        API_KEYS: `${KEY}:normal`,
        MAX_BODY_BYTES: String(MAX_BODY_BYTES),
        CLIENT_HEADERS_TIMEOUT_MS: '1000',
        CLIENT_REQUEST_TIMEOUT_MS: '2000',
      },
    }));
  });

  after(() => stack?.stop());

  it('cuts off a client that sends its headers byte by byte (slow loris) with 408', async () => {
    const request = rawRequest('POST', '/v1/chat/completions', { ...AUTH, 'x-padding': 'p'.repeat(300) }, JSON.stringify(chatBody()));
    const sent = { count: 0 };
    const response = await exchange(gateway.port, (socket) => trickle(socket, request, 100, sent), 20_000);
    assert.equal(response.status, 408);
    assert.equal(expectErrorShape(response.json).type, 'timeout_error');
    assert.ok(sent.count < request.length, `the whole request (${request.length} bytes) went out before the cut`);
  });

  it('cuts off a client that sends its body byte by byte with 408', async () => {
    const body = Buffer.from(JSON.stringify(chatBody({ padding: 'p'.repeat(200) })));
    const head = rawRequest('POST', '/v1/chat/completions', { ...AUTH, 'content-length': String(body.length) });
    const sent = { count: 0 };
    const response = await exchange(gateway.port, async (socket) => {
      socket.write(head);
      await trickle(socket, body, 100, sent);
    }, 20_000);
    assert.equal(response.status, 408);
    expectErrorShape(response.json);
    assert.ok(sent.count < body.length);
  });

  it('refuses a Content-Length over the limit at once, without waiting for the body', async () => {
    // The body never comes: an answer proves the server did not wait to read it.
    const head = rawRequest('POST', '/v1/chat/completions', { ...AUTH, 'content-length': String(50 * MAX_BODY_BYTES) }, '{"model":', { contentLength: false });
    const response = await exchange(gateway.port, (socket) => void socket.write(head));
    assert.equal(response.status, 413);
    assert.equal(expectErrorShape(response.json).code, 'body_too_large');
  });

  it('refuses a chunked body as soon as it passes the limit, before it ends', async () => {
    const chunk = Buffer.from(`400\r\n${'x'.repeat(0x400)}\r\n`);
    const head = rawRequest('POST', '/v1/chat/completions', { ...AUTH, 'transfer-encoding': 'chunked' });
    const response = await exchange(gateway.port, (socket) => {
      socket.write(Buffer.concat([head, Buffer.from('400\r\n{"model":"' + 'x'.repeat(0x400 - 10) + '\r\n')]));
      // Past the limit, and never the final zero-size chunk.
      for (let i = 0; i < MAX_BODY_BYTES / 0x400 + 2; i++) socket.write(chunk);
    });
    assert.equal(response.status, 413);
    assert.equal(expectErrorShape(response.json).code, 'body_too_large');
  });

  it('reads only the declared bytes of a body longer than its Content-Length, and sends nothing upstream', async () => {
    const before = generations();
    const body = JSON.stringify(chatBody());
    const lie = rawRequest('POST', '/v1/chat/completions', { ...AUTH, 'content-length': '12' }, body, { contentLength: false });
    const response = await sendRaw(gateway.port, lie);
    assert.equal(response.status, 400);
    // The 12 bytes are not JSON (invalid_json); the bytes after them are no HTTP request (invalid_body).
    assert.ok(['invalid_json', 'invalid_body'].includes(expectErrorShape(response.json).code!));
    await sleep(200);
    assert.equal(generations(), before);
  });

  it('answers headers over the size limit with 431 in the contract shape', async () => {
    const response = await sendRaw(gateway.port, rawRequest('POST', '/v1/chat/completions', { ...AUTH, 'x-big': 'b'.repeat(40_000) }, '{}'));
    assert.equal(response.status, 431);
    assert.equal(expectErrorShape(response.json).code, 'invalid_header');
  });

  it('answers an X-Request-Id over 128 characters with 400 invalid_header, and one of 128 normally', async () => {
    const long = await postJson(`${gateway.url}/v1/chat/completions`, chatBody(), { ...AUTH, 'x-request-id': 'r'.repeat(129) });
    assert.equal(long.status, 400);
    assert.equal(expectErrorShape(long.json).code, 'invalid_header');
    const fine = await postJson(`${gateway.url}/v1/chat/completions`, chatBody(), { ...AUTH, 'x-request-id': 'r'.repeat(128) });
    assert.equal(fine.status, 200);
    assert.equal(fine.headers.get('x-request-id'), 'r'.repeat(128));
  });

  it('is still alive and serving afterwards', async () => {
    assert.equal(gateway.child.exitCode, null);
    const res = await postJson(`${gateway.url}/v1/chat/completions`, chatBody(), AUTH);
    assert.equal(res.status, 200);
  });
});
