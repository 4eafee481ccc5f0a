import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Kernel clock ticks per second (`getconf CLK_TCK`), the unit of utime/stime in /proc. */
const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU time (user + system) in µs of a process, or of its main thread only. */
export function cpuMicros(pid: number, mainThreadOnly: boolean): number {
  const path = mainThreadOnly ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`;
  const stat = readFileSync(path, 'utf8');
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of the line, so 11 and 12 after the name (state is field 3).
  return ((Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS) * 1e6;
}

/** CPU used by a process between `start()` and `stop()`: its main thread and the whole process, in µs. */
export class CpuMeter {
  private startMain = 0;
  private startAll = 0;

  constructor(private readonly pid: number) {}

  start(): void {
    this.startMain = cpuMicros(this.pid, true);
    this.startAll = cpuMicros(this.pid, false);
  }

  stop(): { mainThreadUs: number; processUs: number } {
    return { mainThreadUs: cpuMicros(this.pid, true) - this.startMain, processUs: cpuMicros(this.pid, false) - this.startAll };
  }
}

/** A field of /proc/<pid>/status in MB of 10^6 bytes (`VmHWM`: the peak resident set; `VmRSS`: now). */
export function memoryMB(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no ${field} in /proc/${pid}/status`);
  return (Number(match[1]) * 1024) / 1e6;
}

/** The soft and hard limits on open files of this process (Node raises the soft one to the hard one). */
export function openFileLimits(): { soft: number; hard: number } {
  const match = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  const value = (v: string | undefined) => (v === undefined || v === 'unlimited' ? Infinity : Number(v));
  return { soft: value(match?.[1]), hard: value(match?.[2]) };
}

/** Share of the machine's CPU time (all cores) left idle between `start()` and `stop()` (/proc/stat). */
export class MachineIdleMeter {
  private begin = { idle: 0, total: 0 };

  private static read(): { idle: number; total: number } {
    // cpu  user nice system idle iowait irq softirq steal ...
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    return { idle: fields[3] + fields[4], total: fields.slice(0, 8).reduce((a, b) => a + b, 0) };
  }

  start(): void {
    this.begin = MachineIdleMeter.read();
  }

  stop(): number {
    const now = MachineIdleMeter.read();
    return (now.idle - this.begin.idle) / Math.max(1, now.total - this.begin.total);
  }
}

/**
 * The kernel's count of connections dropped because a listen queue was full (`TcpExt ListenOverflows`,
 * machine-wide): each such connect is retried by the client's TCP about 1 s later.
 */
export function listenOverflows(): number {
  const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n').filter((l) => l.startsWith('TcpExt:'));
  const names = lines[0]?.split(/\s+/) ?? [];
  const values = lines[1]?.split(/\s+/) ?? [];
  return Number(values[names.indexOf('ListenOverflows')] ?? NaN);
}

/** The pids of a process's children (`/proc/<pid>/task/<pid>/children`). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * Waits until `pid` has `count` children and none of them has used CPU for `quietMs` (a worker that
 * finished starting sits idle); throws after `timeoutMs`.
 */
export async function untilChildrenIdle(pid: number, count: number, quietMs = 1000, timeoutMs = 60_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  let quietSince = Date.now();
  for (;;) {
    const children = childPids(pid).filter((child) => {
      try {
        return readFileSync(`/proc/${child}/cmdline`, 'utf8').includes('main.js');
      } catch {
        return false;
      }
    });
    const usage = children.map((child) => Math.round(cpuMicros(child, false) / 20_000)).join(',');
    if (children.length < count || usage !== last) {
      last = usage;
      quietSince = Date.now();
    } else if (Date.now() - quietSince >= quietMs) {
      return children;
    }
    if (Date.now() > deadline) throw new Error(`${count} idle workers of ${pid} not seen within ${timeoutMs} ms (children: ${children.join(', ')})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
