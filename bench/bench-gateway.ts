import { type GatewayProcess, startGateway } from '../test/support/gateway-process';
import { freePort } from '../test/support/redis-server';

/**
 * Starts a real gateway process for the benchmark on a free port, with `env` on top of LOG_LEVEL=warn:
 * at info, pino-http writes one JSON line per request, which would be measured as well.
 */
export async function startBenchGateway(env: Record<string, string>): Promise<GatewayProcess> {
  return startGateway({ env: { LOG_LEVEL: 'warn', PORT: String(await freePort()), ...env } });
}
