import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SimulatorOptions, UpstreamSimulator } from '../../src/simulator/simulator';
import { GatewayProcess, startGateway } from './gateway-process';
import { startRedis, TestRedis } from './redis-server';

/** A file in a fresh temp dir, and how to remove it again. */
export interface TempFile {
  path: string;
  /** Removes the file and its dir; idempotent. */
  remove(): void;
}

/** Writes `content` as JSON into an UPSTREAMS_FILE in a fresh temp dir. */
export function writeUpstreamsFile(content: unknown): TempFile {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-upstreams-'));
  const path = join(dir, 'upstreams.json');
  writeFileSync(path, JSON.stringify(content));
  return { path, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface StackOptions {
  /** The upstream simulator's options; default `{ latencyMs: 5, chunkIntervalMs: 5 }` (given options replace it, unmerged). */
  simulator?: SimulatorOptions;
  /**
   * The upstreams as an UPSTREAMS_FILE, given the simulator's base URL; the gateways then get
   * UPSTREAMS_FILE instead of UPSTREAM_URL.
   */
  upstreams?: (upstreamUrl: string) => unknown;
  /** Environment of every gateway of the stack, on top of REDIS_URL and UPSTREAM_URL (or UPSTREAMS_FILE). */
  env?: Record<string, string>;
  /** `false`: start no gateway now; the test starts its own with `startGateway`. */
  gateway?: false;
}

/** A private redis-server and an in-process upstream simulator, for gateways to run against. */
export interface Stack {
  redis: TestRedis;
  simulator: UpstreamSimulator;
  /** The simulator's base URL (`http://127.0.0.1:PORT/v1`). */
  upstreamUrl: string;
  /** Every gateway this stack started, in order. */
  gateways: GatewayProcess[];
  /** Starts another gateway on this stack, with `env` on top of the stack's environment; `stop()` stops it too. */
  startGateway(env?: Record<string, string>): Promise<GatewayProcess>;
  /**
   * Stops every gateway started so far (Redis and the simulator keep running): for an `afterEach`, so
   * that a test that failed half-way leaves no worker behind to take the next test's jobs.
   */
  stopGateways(signal?: NodeJS.Signals): Promise<void>;
  /** Stops the gateways (with `signal`, all at once), then the simulator, then Redis; idempotent. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** A {@link Stack} with the gateway it started. */
export interface GatewayStack extends Stack {
  gateway: GatewayProcess;
  /** The gateway's URL, e.g. `http://127.0.0.1:PORT`. */
  url: string;
}

/**
 * Starts Redis, the upstream simulator and (unless `gateway: false`) one gateway on them. On a
 * failure it stops what it started before rethrowing, so a suite's `after` need only stop a stack it got.
 */
export function startStack(options: StackOptions & { gateway: false }): Promise<Stack>;
export function startStack(options?: StackOptions): Promise<GatewayStack>;
export async function startStack(options: StackOptions = {}): Promise<Stack | GatewayStack> {
  let redis: TestRedis | undefined;
  let file: TempFile | undefined;
  const simulator = new UpstreamSimulator(options.simulator ?? { latencyMs: 5, chunkIntervalMs: 5 });
  const gateways: GatewayProcess[] = [];
  let stopping: Promise<void> | undefined;
  const stop = (signal?: NodeJS.Signals) =>
    (stopping ??= (async () => {
      await Promise.all(gateways.map((g) => g.stop(signal)));
      await simulator.stop();
      await redis?.stop();
      file?.remove();
    })());
  try {
    redis = await startRedis();
    const { baseUrl: upstreamUrl } = await simulator.start();
    file = options.upstreams && writeUpstreamsFile(options.upstreams(upstreamUrl));
    const upstream: Record<string, string> = file ? { UPSTREAMS_FILE: file.path } : { UPSTREAM_URL: upstreamUrl };
    const base = { REDIS_URL: redis.url, ...upstream, ...options.env };
    const stack: Stack = {
      redis,
      simulator,
      upstreamUrl,
      gateways,
      startGateway: async (env = {}) => {
        const gateway = await startGateway({ env: { ...base, ...env } });
        gateways.push(gateway);
        return gateway;
      },
      stopGateways: async (signal = 'SIGKILL') => {
        await Promise.all(gateways.splice(0).map((g) => g.stop(signal)));
      },
      stop,
    };
    if (options.gateway === false) return stack;
    const gateway = await stack.startGateway();
    return { ...stack, gateway, url: gateway.url };
  } catch (error) {
    await stop('SIGKILL');
    throw error;
  }
}
