import Redis from 'ioredis';

/** Calls and time Redis spent per command name (`INFO commandstats`), and its main thread's CPU in µs. */
export interface RedisSnapshot {
  commands: Map<string, { calls: number; usec: number }>;
  mainThreadCpuUs: number;
}

/**
 * For each command name, the share of its calls sent by clients rather than run inside a Lua script
 * (learnt from `MONITOR`, where script calls show as `[0 lua]`).
 */
export type TopLevelShares = Map<string, number>;

/** Work Redis did between two snapshots, per request served. */
export interface RedisCost {
  /**
   * Time inside commands sent by clients (`INFO commandstats` usec; a script's time includes the
   * commands it runs, which commandstats also lists on their own and are therefore left out).
   */
  usecPerRequest: number;
  /** Commands sent by clients (a script counts once). */
  callsPerRequest: number;
  /** The plain sum of every commandstats line, script-internal commands counted a second time. */
  usecAllLinesPerRequest: number;
  callsAllLinesPerRequest: number;
  /** The redis-server main thread's CPU (`used_cpu_*_main_thread`), network handling included. */
  cpuUsPerRequest: number;
  /** The commands sent by clients that took most of the time. */
  top: { command: string; callsPerRequest: number; usecPerRequest: number }[];
  /** The commands run inside scripts that took most of the time (part of their scripts' time). */
  topInScripts: { command: string; callsPerRequest: number; usecPerRequest: number }[];
}

const SCRIPT_COMMANDS = new Set(['eval', 'evalsha', 'eval_ro', 'evalsha_ro', 'fcall', 'fcall_ro']);

/** Reads `INFO commandstats` and `INFO cpu` of a Redis server, on a connection of its own. */
export class RedisStats {
  private readonly client: Redis;

  constructor(private readonly url: string) {
    this.client = new Redis(url, { maxRetriesPerRequest: 1 });
  }

  async snapshot(): Promise<RedisSnapshot> {
    const [commandstats, cpu] = await Promise.all([this.client.info('commandstats'), this.client.info('cpu')]);
    const commands = new Map<string, { calls: number; usec: number }>();
    for (const match of commandstats.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
      commands.set(match[1], { calls: Number(match[2]), usec: Number(match[3]) });
    }
    const seconds = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(cpu)?.[1] ?? 0);
    return { commands, mainThreadCpuUs: (seconds('used_cpu_user_main_thread') + seconds('used_cpu_sys_main_thread')) * 1e6 };
  }

  /**
   * Watches every command with `MONITOR` while `during` runs (use a warm-up: MONITOR slows Redis down)
   * and returns, per command, the share of calls that clients sent rather than scripts ran.
   */
  async topLevelShares(during: () => Promise<unknown>): Promise<TopLevelShares> {
    const counts = new Map<string, { topLevel: number; inScript: number }>();
    // monitor() opens a connection of its own; the one it is called on never connects (lazyConnect).
    const base = new Redis(this.url, { maxRetriesPerRequest: 1, lazyConnect: true });
    const monitor = await base.monitor();
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      const name = (args[0] ?? '').toLowerCase();
      const count = counts.get(name) ?? { topLevel: 0, inScript: 0 };
      if (source === 'lua') count.inScript++;
      else count.topLevel++;
      counts.set(name, count);
    });
    try {
      await during();
    } finally {
      monitor.disconnect();
      base.disconnect();
    }
    return new Map([...counts].map(([name, c]) => [name, c.topLevel / (c.topLevel + c.inScript)]));
  }

  /** A plain command on the same connection (e.g. reading a counter). */
  get(key: string): Promise<string | null> {
    return this.client.get(key);
  }

  async close(): Promise<void> {
    await this.client.quit().catch(() => this.client.disconnect());
  }
}

/**
 * What Redis did between `before` and `after`, divided by `requests`. Commands never seen in the
 * `shares` sample count as sent by clients.
 */
export function redisCost(before: RedisSnapshot, after: RedisSnapshot, requests: number, shares: TopLevelShares): RedisCost {
  const rows: { command: string; calls: number; usec: number; share: number }[] = [];
  for (const [command, now] of after.commands) {
    const then = before.commands.get(command) ?? { calls: 0, usec: 0 };
    // `info` is this probe's own command.
    if (command === 'info' || now.calls === then.calls) continue;
    const share = SCRIPT_COMMANDS.has(command) ? 1 : (shares.get(command.split('|')[0]) ?? 1);
    rows.push({ command, calls: now.calls - then.calls, usec: now.usec - then.usec, share });
  }
  const per = (value: number) => (requests > 0 ? value / requests : NaN);
  const sum = (pick: (r: (typeof rows)[number]) => number) => rows.reduce((total, r) => total + pick(r), 0);
  const topLevel = rows
    .map((r) => ({ command: r.command, callsPerRequest: per(r.calls * r.share), usecPerRequest: per(r.usec * r.share) }))
    // Background work (renewals, probes) shows as a few calls in ten thousand requests: not per-request cost.
    .filter((r) => r.callsPerRequest >= 0.01)
    .sort((a, b) => b.usecPerRequest - a.usecPerRequest);
  const inScripts = rows
    .map((r) => ({ command: r.command, callsPerRequest: per(r.calls * (1 - r.share)), usecPerRequest: per(r.usec * (1 - r.share)) }))
    .filter((r) => r.callsPerRequest >= 0.01)
    .sort((a, b) => b.usecPerRequest - a.usecPerRequest);
  return {
    usecPerRequest: per(sum((r) => r.usec * r.share)),
    callsPerRequest: per(sum((r) => r.calls * r.share)),
    usecAllLinesPerRequest: per(sum((r) => r.usec)),
    callsAllLinesPerRequest: per(sum((r) => r.calls)),
    cpuUsPerRequest: per(after.mainThreadCpuUs - before.mainThreadCpuUs),
    top: topLevel.slice(0, 4),
    topInScripts: inScripts.slice(0, 5),
  };
}
