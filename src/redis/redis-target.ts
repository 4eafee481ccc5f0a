import type { RedisOptions } from 'ioredis';
import { redactUrl } from '../config/environment';

/** Where Bulwark's Redis is: one server by URL (external or the embedded child), or a primary found through Sentinel. */
export type RedisTarget =
  | { kind: 'url'; url: string }
  | {
      kind: 'sentinel';
      sentinels: { host: string; port: number }[];
      /** The master name the Sentinels monitor. */
      name: string;
      sentinelPassword?: string;
      /** Password of the primary and replicas. */
      password?: string;
    };

/** The target for logs: addresses and names only, never a password. */
export function describeTarget(target: RedisTarget): Record<string, unknown> {
  if (target.kind === 'url') return { redis: redactUrl(target.url) };
  return { sentinels: target.sentinels.map((s) => `${s.host}:${s.port}`).join(','), sentinelName: target.name };
}

/**
 * ioredis options that reach `target`. Through Sentinel, every (re)connection asks the Sentinels for
 * the current primary and checks that the server it reached is one (a demoted primary is left), and
 * `failoverDetector` drops the connection as soon as the Sentinels announce a new primary.
 */
export function targetOptions(target: RedisTarget): { url?: string; options: RedisOptions } {
  if (target.kind === 'url') return { url: target.url, options: {} };
  return {
    options: {
      sentinels: target.sentinels,
      name: target.name,
      role: 'master',
      sentinelPassword: target.sentinelPassword,
      password: target.password,
      failoverDetector: true,
      // Sentinels unreachable: keep asking, at most every 2 s (null would give up for good).
      sentinelRetryStrategy: (attempt: number) => Math.min(100 * 2 ** Math.min(attempt, 5), 2000),
      sentinelReconnectStrategy: (attempt: number) => Math.min(100 * 2 ** Math.min(attempt, 5), 2000),
    },
  };
}
