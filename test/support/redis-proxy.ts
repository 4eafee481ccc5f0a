import { createConnection, createServer, Socket } from 'node:net';

/** A TCP proxy in front of a test Redis that can slow down chosen connections: a real, partial network fault. */
export interface RedisProxy {
  url: string;
  /** From now on, holds every command sent on connections whose handshake names `clientName` for `ms`. */
  delay(clientName: string, ms: number): void;
  stop(): Promise<void>;
}

export async function startRedisProxy(targetPort: number): Promise<RedisProxy> {
  const rules = new Map<string, number>();
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = createConnection({ port: targetPort, host: '127.0.0.1' });
    sockets.add(client).add(upstream);
    let handshake = '';
    upstream.on('data', (data) => client.write(data));
    client.on('data', (data) => {
      if (handshake.length < 4096) handshake += data.toString('latin1');
      const held = [...rules].find(([name]) => handshake.includes(name))?.[1];
      if (held) setTimeout(() => upstream.write(data), held);
      else upstream.write(data);
    });
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', close).on('error', close);
    upstream.on('close', close).on('error', close);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `redis://127.0.0.1:${port}`,
    delay: (clientName, ms) => rules.set(clientName, ms),
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
