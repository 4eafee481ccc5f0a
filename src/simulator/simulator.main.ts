import { parseArgs } from 'node:util';
import { type SimulatorOptions, UpstreamSimulator } from './simulator';

/** Parsed command line of the standalone simulator. */
export interface SimulatorCli {
  port: number;
  host: string;
  options: SimulatorOptions;
}

const USAGE =
  'usage: simulator.main.js [--port 9000] [--host 127.0.0.1] [--latency-ms 20] [--chunk-interval-ms 10]' +
  ' [--chunks 8] [--capacity 0] [--models a,b] [--api-key KEY] [--prefix-cache-tokens 0] [--block-tokens 16]' +
  ' [--prefill-ms-per-token 0] [--stall-share 0] [--stall-ms 0]';

function nonNegativeInt(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new Error(`--${name} must be a non-negative integer, got "${raw}"`);
  return value;
}

function nonNegativeNumber(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} must be a non-negative number, got "${raw}"`);
  return value;
}

function stallOf(share: string | undefined, ms: string | undefined): { share: number; ms: number } | undefined {
  if (share === undefined && ms === undefined) return undefined;
  const s = nonNegativeNumber('stall-share', share) ?? 0;
  if (s > 1) throw new Error(`--stall-share must be from 0 to 1, got "${share}"`);
  return { share: s, ms: nonNegativeNumber('stall-ms', ms) ?? 0 };
}

/** Parses `argv` (without the node and script entries); throws on invalid input. */
export function parseSimulatorArgs(argv: string[]): SimulatorCli {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      port: { type: 'string', default: '9000' },
      host: { type: 'string', default: '127.0.0.1' },
      'latency-ms': { type: 'string' },
      'chunk-interval-ms': { type: 'string' },
      chunks: { type: 'string' },
      capacity: { type: 'string' },
      models: { type: 'string' },
      'api-key': { type: 'string' },
      'prefix-cache-tokens': { type: 'string' },
      'block-tokens': { type: 'string' },
      'prefill-ms-per-token': { type: 'string' },
      'stall-share': { type: 'string' },
      'stall-ms': { type: 'string' },
    },
  });
  const port = nonNegativeInt('port', values.port)!;
  if (port > 65535) throw new Error(`--port must be at most 65535, got ${port}`);
  const models = values.models
    ?.split(',')
    .map((m) => m.trim())
    .filter(Boolean);
  if (models !== undefined && models.length === 0) throw new Error('--models must name at least one model');
  const options: SimulatorOptions = {
    latencyMs: nonNegativeInt('latency-ms', values['latency-ms']),
    chunkIntervalMs: nonNegativeInt('chunk-interval-ms', values['chunk-interval-ms']),
    defaultChunks: nonNegativeInt('chunks', values.chunks),
    capacity: nonNegativeInt('capacity', values.capacity),
    models,
    apiKey: values['api-key'],
    prefixCacheTokens: nonNegativeInt('prefix-cache-tokens', values['prefix-cache-tokens']),
    blockTokens: nonNegativeInt('block-tokens', values['block-tokens']),
    prefillMsPerToken: nonNegativeNumber('prefill-ms-per-token', values['prefill-ms-per-token']),
    stall: stallOf(values['stall-share'], values['stall-ms']),
  };
  for (const key of Object.keys(options) as Array<keyof SimulatorOptions>) {
    if (options[key] === undefined) delete options[key];
  }
  return { port, host: values.host ?? '127.0.0.1', options };
}

function log(fields: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify({ time: new Date().toISOString(), ...fields }) + '\n');
}

async function main(): Promise<void> {
  let cli: SimulatorCli;
  try {
    cli = parseSimulatorArgs(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n${USAGE}\n`);
    process.exitCode = 2;
    return;
  }
  const simulator = new UpstreamSimulator(cli.options);
  const { baseUrl, port } = await simulator.start(cli.port, cli.host);
  const { apiKey, ...shown } = cli.options;
  log({ level: 'info', msg: 'upstream simulator listening', url: baseUrl, port, auth: apiKey !== undefined, ...shown });

  const shutdown = (signal: NodeJS.Signals): void => {
    process.off('SIGTERM', shutdown);
    process.off('SIGINT', shutdown);
    simulator.stop().then(
      () => log({ level: 'info', msg: 'upstream simulator stopped', signal }),
      (error: unknown) => {
        log({ level: 'error', msg: 'upstream simulator failed to stop', error: String(error) });
        process.exitCode = 1;
      },
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`upstream simulator failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  });
}
