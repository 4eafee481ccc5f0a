import { connect, Socket } from 'node:net';

/** One HTTP/1.1 answer read off a raw socket. */
export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  json: any;
}

/** Builds request bytes by hand, so that tests can send what no well-behaved client would. */
export function rawRequest(
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: Buffer | string,
  options: { contentLength?: boolean } = {},
): Buffer {
  const payload = body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  const all: Record<string, string> = { host: '127.0.0.1', ...headers };
  if (options.contentLength !== false && body !== undefined && !('content-length' in all) && !('transfer-encoding' in all)) {
    all['content-length'] = String(payload.length);
  }
  const head = `${method} ${path} HTTP/1.1\r\n${Object.entries(all).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), payload]);
}

/** Parses a complete response from `data`, or undefined while more bytes are needed (`ended`: the peer closed). */
function parse(data: Buffer, ended: boolean): RawResponse | undefined {
  const split = data.indexOf('\r\n\r\n');
  if (split < 0) return undefined;
  const [statusLine, ...lines] = data.subarray(0, split).toString('latin1').split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let rest = data.subarray(split + 4);
  if (headers['content-length'] !== undefined) {
    const length = Number(headers['content-length']);
    if (rest.length < length) return undefined;
    rest = rest.subarray(0, length);
  } else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
    const chunks: Buffer[] = [];
    let at = 0;
    for (;;) {
      const eol = rest.indexOf('\r\n', at);
      if (eol < 0) return undefined;
      const size = parseInt(rest.subarray(at, eol).toString('latin1'), 16);
      if (size === 0) break;
      if (rest.length < eol + 2 + size + 2) return undefined;
      chunks.push(rest.subarray(eol + 2, eol + 2 + size));
      at = eol + 2 + size + 2;
    }
    rest = Buffer.concat(chunks);
  } else if (!ended) {
    return undefined;
  }
  const body = rest.toString('utf8');
  let json: any;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body, json };
}

/**
 * Opens a connection, lets `write` send whatever it likes, and resolves with the first response, or
 * rejects when none came within `timeoutMs`. The connection is closed afterwards.
 */
export async function exchange(
  port: number,
  write: (socket: Socket) => void | Promise<void>,
  timeoutMs = 10_000,
): Promise<RawResponse> {
  const socket = connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  try {
    return await new Promise<RawResponse>((resolve, reject) => {
      let data = Buffer.alloc(0);
      const timer = setTimeout(() => reject(new Error(`no response within ${timeoutMs} ms`)), timeoutMs);
      const settle = (ended: boolean) => {
        const response = parse(data, ended);
        if (response) {
          clearTimeout(timer);
          resolve(response);
        } else if (ended) {
          clearTimeout(timer);
          reject(new Error(`connection closed without a complete response: ${JSON.stringify(data.toString('latin1').slice(0, 200))}`));
        }
      };
      socket.on('data', (chunk: Buffer) => {
        data = Buffer.concat([data, chunk]);
        settle(false);
      });
      socket.once('close', () => settle(true));
      // A server that answers before reading everything may reset: what it sent first still counts.
      socket.on('error', () => undefined);
      socket.once('connect', () => void Promise.resolve(write(socket)).catch(() => undefined));
    });
  } finally {
    socket.destroy();
  }
}

/** Sends `bytes` in one write and reads the response. */
export function sendRaw(port: number, bytes: Buffer, timeoutMs?: number): Promise<RawResponse> {
  return exchange(port, (socket) => void socket.write(bytes), timeoutMs);
}
