import Redis from 'ioredis';

/** Calls and time Redis spent per command name (`INFO commandstats`), and its CPU time in µs. */
export interface RedisSnapshot {
  commands: Map<string, { calls: number; usec: number }>;
  cpuUs: number;
}

/** Work Redis did between two snapshots, per request served. */
export interface RedisCost {
  /** Total `usec` of every command (time inside command execution). */
  usecPerRequest: number;
  callsPerRequest: number;
  /** The redis-server process's CPU (`used_cpu_user + used_cpu_sys`), network handling included. */
  cpuUsPerRequest: number;
  /** The commands that took most of the time, with their calls per request. */
  top: { command: string; callsPerRequest: number; usecPerRequest: number }[];
}

/** Reads `INFO commandstats` and `INFO cpu` of a Redis server, on a connection of its own. */
export class RedisStats {
  private readonly client: Redis;

  constructor(url: string) {
    this.client = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: false });
  }

  async snapshot(): Promise<RedisSnapshot> {
    const [commandstats, cpu] = await Promise.all([this.client.info('commandstats'), this.client.info('cpu')]);
    const commands = new Map<string, { calls: number; usec: number }>();
    for (const match of commandstats.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
      commands.set(match[1], { calls: Number(match[2]), usec: Number(match[3]) });
    }
    const seconds = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(cpu)?.[1] ?? 0);
    return { commands, cpuUs: (seconds('used_cpu_user') + seconds('used_cpu_sys')) * 1e6 };
  }

  /** A plain command on the same connection (e.g. reading a counter). */
  get(key: string): Promise<string | null> {
    return this.client.get(key);
  }

  async close(): Promise<void> {
    await this.client.quit().catch(() => this.client.disconnect());
  }
}

/** What Redis did between `before` and `after`, divided by `requests`. */
export function redisCost(before: RedisSnapshot, after: RedisSnapshot, requests: number): RedisCost {
  const rows: { command: string; calls: number; usec: number }[] = [];
  for (const [command, now] of after.commands) {
    const then = before.commands.get(command) ?? { calls: 0, usec: 0 };
    // `info` is this probe's own command.
    if (command === 'info' || now.calls === then.calls) continue;
    rows.push({ command, calls: now.calls - then.calls, usec: now.usec - then.usec });
  }
  rows.sort((a, b) => b.usec - a.usec);
  const per = (n: number) => (requests > 0 ? n / requests : NaN);
  return {
    usecPerRequest: per(rows.reduce((sum, r) => sum + r.usec, 0)),
    callsPerRequest: per(rows.reduce((sum, r) => sum + r.calls, 0)),
    cpuUsPerRequest: per(after.cpuUs - before.cpuUs),
    top: rows.slice(0, 4).map((r) => ({ command: r.command, callsPerRequest: per(r.calls), usecPerRequest: per(r.usec) })),
  };
}
