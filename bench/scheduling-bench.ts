/**
 * Scheduling benchmark: noisy neighbour, two replicas of one model, mixed request sizes, multi-turn
 * chats on a fleet of simulated inference servers (least-loaded against prefix-aware routing), and a
 * replica that stalls (without and with hedging), run against one or more gateway builds so that a
 * change can be compared with the main it started from. Not a test: it prints figures (Markdown
 * tables, or JSON with `--json`).
 *
 * Run: `npm run bench:scheduling -- [--gateway [label=]path/to/dist/src/main.js]… [--seconds 15]
 *       [--scenario noisy-neighbour|two-replicas|mixed-sizes|multi-turn|stalled-replica]… [--json]`
 * Default gateway: this checkout's build (`now`). Needs redis-server on PATH.
 */
import { resolve } from 'node:path';
import { MixedSizesResult, NoisyNeighbourResult, ReplicasResult, mixedSizes, noisyNeighbour, twoReplicas } from './scheduling-scenarios';
import { MultiTurnResult, multiTurn, StalledReplicaResult, stalledReplica } from './scheduling-inference';
import { schedulingReport } from './scheduling-report';

/** A gateway build to measure: its label in the tables and its entry point. */
export interface GatewayBuild {
  label: string;
  /** Path of the build's `dist/src/main.js`. */
  main: string;
}

export const SCENARIOS = ['noisy-neighbour', 'two-replicas', 'mixed-sizes', 'multi-turn', 'stalled-replica'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export interface SchedulingBenchOptions {
  /** Builds to compare, in table order; default this checkout's build, labelled `now`. */
  gateways?: GatewayBuild[];
  /** Length of each scenario's load, per build; default 15. */
  seconds?: number;
  /** Scenarios to run; default all three. */
  scenarios?: ScenarioName[];
  /** Progress lines (which scenario and build runs now); default stderr. */
  log?: (line: string) => void;
}

/** Each scenario's figures per build label. */
export interface SchedulingBenchResult {
  gateways: GatewayBuild[];
  seconds: number;
  noisyNeighbour?: Record<string, NoisyNeighbourResult>;
  twoReplicas?: Record<string, ReplicasResult>;
  mixedSizes?: Record<string, MixedSizesResult>;
  /** Per build: today's least-loaded routing and prefix-aware routing on the same fleet. */
  multiTurn?: Record<string, { leastLoaded: MultiTurnResult; prefixAware: MultiTurnResult }>;
  /** Per build: without and with hedging. */
  stalledReplica?: Record<string, { plain: StalledReplicaResult; hedged: StalledReplicaResult }>;
}

/** This checkout's build, as compiled next to this file (`dist/bench` → `dist/src/main.js`). */
export const THIS_BUILD: GatewayBuild = { label: 'now', main: resolve(__dirname, '../src/main.js') };

/**
 * Runs the chosen scenarios against every build. Builds take turns within a scenario (A, B, then the
 * next scenario) so that a change in the machine's load during the run touches both sides alike.
 */
export async function runSchedulingBench(options: SchedulingBenchOptions = {}): Promise<SchedulingBenchResult> {
  const gateways = options.gateways?.length ? options.gateways : [THIS_BUILD];
  const seconds = options.seconds ?? 15;
  const chosen = options.scenarios?.length ? options.scenarios : [...SCENARIOS];
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const result: SchedulingBenchResult = { gateways, seconds };
  const eachBuild = async <T>(name: ScenarioName, run: (main: string, seconds: number) => Promise<T>): Promise<Record<string, T>> => {
    const byBuild: Record<string, T> = {};
    for (const build of gateways) {
      log(`${name}: ${build.label} (${build.main}), ${seconds} s`);
      byBuild[build.label] = await run(build.main, seconds);
    }
    return byBuild;
  };
  if (chosen.includes('noisy-neighbour')) result.noisyNeighbour = await eachBuild('noisy-neighbour', noisyNeighbour);
  if (chosen.includes('two-replicas')) result.twoReplicas = await eachBuild('two-replicas', twoReplicas);
  if (chosen.includes('mixed-sizes')) result.mixedSizes = await eachBuild('mixed-sizes', mixedSizes);
  // These two run a fixed amount of work (conversations, requests) rather than for `seconds`.
  if (chosen.includes('multi-turn')) {
    result.multiTurn = await eachBuild('multi-turn', async (main) => ({ leastLoaded: await multiTurn(main, 'least-loaded'), prefixAware: await multiTurn(main, 'prefix-aware') }));
  }
  if (chosen.includes('stalled-replica')) {
    result.stalledReplica = await eachBuild('stalled-replica', async (main) => ({ plain: await stalledReplica(main, false), hedged: await stalledReplica(main, true) }));
  }
  return result;
}

const USAGE = 'usage: scheduling-bench [--gateway [label=]path/to/main.js]… [--seconds N] [--scenario ' + SCENARIOS.join('|') + ']… [--json]';

/** Reads the command line; throws with the usage on anything it does not know. */
export function parseSchedulingArgs(argv: string[]): SchedulingBenchOptions & { json: boolean } {
  const gateways: GatewayBuild[] = [];
  const scenarios: ScenarioName[] = [];
  let seconds: number | undefined;
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value\n${USAGE}`);
      return v;
    };
    if (flag === '--json') json = true;
    else if (flag === '--gateway') {
      const v = value();
      const at = v.indexOf('=');
      gateways.push(at > 0 ? { label: v.slice(0, at), main: resolve(v.slice(at + 1)) } : { label: v, main: resolve(v) });
    } else if (flag === '--seconds') {
      seconds = Number(value());
      if (!(Number.isFinite(seconds) && seconds >= 1 && seconds <= 120)) throw new Error(`--seconds must be 1 to 120\n${USAGE}`);
    } else if (flag === '--scenario') {
      const v = value();
      if (!(SCENARIOS as readonly string[]).includes(v)) throw new Error(`unknown scenario ${v}\n${USAGE}`);
      scenarios.push(v as ScenarioName);
    } else throw new Error(`unknown argument ${flag}\n${USAGE}`);
  }
  return { gateways, scenarios, seconds, json };
}

async function main(): Promise<void> {
  const { json, ...options } = parseSchedulingArgs(process.argv.slice(2));
  const result = await runSchedulingBench(options);
  process.stdout.write(json ? `${JSON.stringify(result, null, 2)}\n` : `${schedulingReport(result)}\n`);
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(1);
    },
  );
}
