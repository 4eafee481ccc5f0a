import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Redis from 'ioredis';
import { freePort } from './redis-server';
import { waitFor } from './wait';

/** A Redis primary, its replica and three Sentinels on loopback, for failover tests. */
export interface SentinelGroup {
  /** The master name the Sentinels monitor. */
  name: string;
  /** `127.0.0.1:P,127.0.0.1:Q,127.0.0.1:R`, as REDIS_SENTINELS. */
  sentinels: string;
  primaryPort: number;
  replicaPort: number;
  /** Kills the current primary with SIGKILL (no shutdown, no last write to disk). */
  killPrimary(): void;
  /** The port the Sentinels currently name as primary. */
  currentPrimaryPort(): Promise<number>;
  /** Resolves once the replica has every write the primary has acknowledged so far. */
  replicaCaughtUp(timeoutMs?: number): Promise<void>;
  /** Stops every process and removes the temp dir; idempotent. */
  stop(): Promise<void>;
}

export interface SentinelGroupOptions {
  /** Sentinel `down-after-milliseconds`: how long a silent primary takes to count as down. */
  downAfterMs?: number;
  /** Sentinel `failover-timeout`. */
  failoverTimeoutMs?: number;
}

interface Running {
  child: ChildProcess;
  exited: Promise<void>;
}

/** Starts `binary args` and resolves once its output says `ready`; rejects with its output otherwise. */
function launch(binary: string, args: string[], ready: string): Promise<Running> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    let output = '';
    const timer = setTimeout(() => reject(new Error(`${binary} did not start: ${output}`)), 10_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes(ready)) {
        clearTimeout(timer);
        resolve({ child, exited });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${binary} exited (${code}): ${output}`));
    });
  });
}

async function stopProcess(running: Running | undefined): Promise<void> {
  if (!running || running.child.exitCode !== null || running.child.signalCode !== null) return;
  running.child.kill('SIGTERM');
  const timer = setTimeout(() => running.child.kill('SIGKILL'), 3000);
  await running.exited;
  clearTimeout(timer);
}

/**
 * Starts one primary, one replica and three `redis-sentinel` processes (quorum 2) on free loopback
 * ports, their files in a temp dir, and waits until every Sentinel knows the replica and the other two.
 */
export async function startSentinelGroup(options: SentinelGroupOptions = {}): Promise<SentinelGroup> {
  const name = 'bulwark-test';
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-sentinel-'));
  const processes: Running[] = [];
  const clients: Redis[] = [];
  const stop = async () => {
    clients.forEach((c) => c.disconnect());
    await Promise.all(processes.map(stopProcess));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const [primaryPort, replicaPort, ...sentinelPorts] = await Promise.all([0, 1, 2, 3, 4].map(() => freePort()));
    const server = (port: number, extra: string[]) =>
      launch('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--dbfilename', `dump-${port}.rdb`,
        '--appendonly', 'yes', '--appendfilename', `aof-${port}.aof`, '--appenddirname', `aof-${port}`, '--save', '', ...extra], 'Ready to accept connections');
    const primary = await server(primaryPort, []);
    processes.push(primary);
    processes.push(await server(replicaPort, ['--replicaof', '127.0.0.1', String(primaryPort)]));
    for (const port of sentinelPorts) {
      const file = join(dir, `sentinel-${port}.conf`);
      writeFileSync(
        file,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          'sentinel announce-ip 127.0.0.1',
          `sentinel monitor ${name} 127.0.0.1 ${primaryPort} 2`,
          `sentinel down-after-milliseconds ${name} ${options.downAfterMs ?? 1000}`,
          `sentinel failover-timeout ${name} ${options.failoverTimeoutMs ?? 3000}`,
          `sentinel parallel-syncs ${name} 1`,
          '',
        ].join('\n'),
      );
      processes.push(await launch('redis-sentinel', [file], `+monitor master ${name}`));
    }
    const client = (port: number) => {
      const connection = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1 });
      connection.on('error', () => undefined); // the killed primary's client keeps failing: expected
      clients.push(connection);
      return connection;
    };
    const sentinelClients = sentinelPorts.map(client);
    await waitFor(
      'every Sentinel to know the replica and the other Sentinels',
      async () => {
        for (const sentinel of sentinelClients) {
          const replicas = (await sentinel.call('SENTINEL', 'REPLICAS', name)) as unknown[];
          const others = (await sentinel.call('SENTINEL', 'SENTINELS', name)) as unknown[];
          if (replicas.length < 1 || others.length < 2) return undefined;
        }
        return true;
      },
      20_000,
      200,
    );
    const info = (port: number) => {
      const connection = client(port);
      return () => connection.info('replication');
    };
    const primaryInfo = info(primaryPort);
    const replicaInfo = info(replicaPort);
    const field = (text: string, key: string) => Number(new RegExp(`^${key}:(\\d+)`, 'm').exec(text)?.[1] ?? -1);
    return {
      name,
      sentinels: sentinelPorts.map((port) => `127.0.0.1:${port}`).join(','),
      primaryPort,
      replicaPort,
      killPrimary: () => primary.child.kill('SIGKILL'),
      currentPrimaryPort: async () => {
        for (const sentinel of sentinelClients) {
          const address = (await sentinel.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name).catch(() => null)) as string[] | null;
          if (address) return Number(address[1]);
        }
        throw new Error('no Sentinel answered');
      },
      replicaCaughtUp: async (timeoutMs = 5000) => {
        const target = field(await primaryInfo(), 'master_repl_offset');
        await waitFor('the replica to catch up', async () => field(await replicaInfo(), 'slave_repl_offset') >= target || undefined, timeoutMs, 20);
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
