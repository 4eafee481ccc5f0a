import { UpstreamSimulator } from '../src/simulator/simulator';
import type { GatewayProcess } from '../test/support/gateway-process';
import { startRedis, type TestRedis } from '../test/support/redis-server';
import { startBenchGateway } from './bench-gateway';
import { type Haproxy, startHaproxy } from './haproxy';

/** One way to the upstream: a name, its chat-completions URL and the process doing the work (if any). */
export interface ProxyPath {
  name: 'direct' | 'HAProxy' | 'Bulwark';
  url: string;
  pid?: number;
}

/**
 * The same upstream simulator reached three ways: directly, through HAProxy, and through one Bulwark
 * gateway (its own redis-server), so every row of a part is measured in one run against one upstream.
 */
export interface ProxyPaths {
  simulator: UpstreamSimulator;
  redis: TestRedis;
  haproxy: Haproxy;
  gateway: GatewayProcess;
  paths: ProxyPath[];
  stop(): Promise<void>;
}

/** Starts the simulator (no latency), HAProxy and a gateway with `MAX_CONCURRENT_REQUESTS=maxConcurrent`. */
export async function startProxyPaths(maxConcurrent: number): Promise<ProxyPaths> {
  const simulator = new UpstreamSimulator({ latencyMs: 0, chunkIntervalMs: 0 });
  const { baseUrl } = await simulator.start();
  const started: { stop(): Promise<unknown> }[] = [{ stop: () => simulator.stop() }];
  const stop = async () => {
    for (const part of started.reverse()) await part.stop().catch(() => undefined);
  };
  try {
    const redis = await startRedis();
    started.push(redis);
    const haproxy = await startHaproxy(new URL(baseUrl));
    started.push(haproxy);
    const gateway = await startBenchGateway({
      REDIS_URL: redis.url,
      UPSTREAM_URL: baseUrl,
      MAX_CONCURRENT_REQUESTS: String(maxConcurrent),
      MAX_QUEUE_SIZE: '100000',
    });
    started.push({ stop: () => gateway.stop('SIGKILL') });
    const path = '/v1/chat/completions';
    return {
      simulator,
      redis,
      haproxy,
      gateway,
      paths: [
        { name: 'direct', url: new URL(baseUrl).origin + path },
        { name: 'HAProxy', url: haproxy.url + path, pid: haproxy.pid },
        { name: 'Bulwark', url: gateway.url + path, pid: gateway.child.pid },
      ],
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
