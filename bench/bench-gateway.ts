import { type GatewayProcess, startGateway } from '../test/support/gateway-process';
import { freePort } from '../test/support/redis-server';

/**
 * Node options for every gateway the benchmark starts, from `BENCH_GATEWAY_NODE_OPTIONS` (e.g.
 * `--max-semi-space-size=64` to compare young-generation sizes, or `--cpu-prof`); none by default.
 */
const NODE_OPTIONS = process.env.BENCH_GATEWAY_NODE_OPTIONS;

/**
 * Starts a real gateway process for the benchmark on a free port, with `env` on top of LOG_LEVEL=warn:
 * at info, the request log writes one JSON line per request, which would be measured as well.
 */
export async function startBenchGateway(env: Record<string, string>): Promise<GatewayProcess> {
  return startGateway({ env: { LOG_LEVEL: 'warn', PORT: String(await freePort()), ...(NODE_OPTIONS ? { NODE_OPTIONS } : {}), ...env } });
}
