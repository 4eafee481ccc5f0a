import { Injectable } from '@nestjs/common';
import type Redis from 'ioredis';
import { RedisService } from '../redis/redis.service';
import { BatchHash, BatchStatus } from './batch-object';
import { CANCEL_BATCH, CLAIM_LINE, END_BATCH, HAND_BACK_LINES, LINE_ENDED, PREEMPT_LINE, RECORD_LINE, RENEW_LINES, SEAL_BATCH } from './batch-scripts';

/** Redis keys of the batches (see batch-scripts.ts for what each holds). */
export const BATCH_KEYS = {
  batch: (id: string) => `bulwark:batch:${id}`,
  leases: (id: string) => `bulwark:batch:${id}:leases`,
  starts: (id: string) => `bulwark:batch:${id}:starts`,
  results: (id: string) => `bulwark:batch:${id}:results`,
  finalizer: (id: string) => `bulwark:batch:${id}:finalizer`,
  owned: (owner: string) => `bulwark:batches:${owner}`,
  active: 'bulwark:batches:active',
  /** ZSET of the lines running anywhere (member: instance id|slot lease, score: start time ms). */
  running: 'bulwark:batches:running',
  byStatus: 'bulwark:batches:by-status',
};

/** The queue core's keys the claim must see (a free slot; nothing interactive waiting or on its way). */
export interface QueueCoreKeys {
  slots: string;
  adding: string;
  prioritized: string;
  wait: string;
  delayed: string;
}

/** A line this instance may run now, under a global slot lease and a line lease. */
export interface ClaimedLine {
  batchId: string;
  index: number;
  /** How many times the line has been started, this one included. */
  starts: number;
  /** The input line; undefined when the input file was deleted. */
  line?: string;
  slotLease: string;
  /** Its entry among the running lines (see BATCH_KEYS.running). */
  runningMember: string;
}

export type ClaimResult = { kind: 'line'; claimed: ClaimedLine } | { kind: 'none' } | { kind: 'interactive_waits' };

type ScriptedRedis = Redis & Record<string, (...args: (string | number)[]) => Promise<unknown>>;

const SCRIPTS = {
  bulwarkBatchClaim: { numberOfKeys: 7, lua: CLAIM_LINE },
  bulwarkBatchPreempt: { numberOfKeys: 3, lua: PREEMPT_LINE },
  bulwarkBatchLineEnded: { numberOfKeys: 1, lua: LINE_ENDED },
  bulwarkBatchRecord: { numberOfKeys: 3, lua: RECORD_LINE },
  bulwarkBatchRenew: { numberOfKeys: 0, lua: RENEW_LINES },
  bulwarkBatchHandBack: { numberOfKeys: 0, lua: HAND_BACK_LINES },
  bulwarkBatchCancel: { numberOfKeys: 2, lua: CANCEL_BATCH },
  bulwarkBatchSeal: { numberOfKeys: 4, lua: SEAL_BATCH },
  bulwarkBatchEnd: { numberOfKeys: 7, lua: END_BATCH },
};

/** Scores of the queue core's `adding` ZSET carry the band in their high digits (see slot-scripts.ts). */
const ADDING_BAND_FACTOR = 1e13;
const STALE_RESERVATION_MS = 30_000;

/** The batches' Redis boundary: every state change is one atomic script. Holds no state of its own. */
@Injectable()
export class BatchStore {
  private readonly redis: ScriptedRedis;

  constructor(redis: RedisService) {
    for (const [name, script] of Object.entries(SCRIPTS)) {
      if (!(name in redis.client)) redis.client.defineCommand(name, script);
    }
    this.redis = redis.client as ScriptedRedis;
  }

  /** Stores a new batch (in progress) and lists it for its owner and for the runners. */
  async create(id: string, owner: string, fields: Record<string, string | number>, createdAtMs: number): Promise<void> {
    await this.redis
      .multi()
      .hset(BATCH_KEYS.batch(id), { ...fields, owner, status: 'in_progress', next: 0, completed: 0, failed: 0 })
      .zadd(BATCH_KEYS.owned(owner), createdAtMs, id)
      .zadd(BATCH_KEYS.active, createdAtMs, id)
      .hincrby(BATCH_KEYS.byStatus, 'in_progress', 1)
      .exec();
  }

  /** The batch's hash, if `owner` (when given) may see it. */
  async get(id: string, owner?: string): Promise<BatchHash | undefined> {
    const h = await this.redis.hgetall(BATCH_KEYS.batch(id));
    if (h.status === undefined || (owner !== undefined && h.owner !== owner)) return undefined;
    return h;
  }

  /** Ids of `owner`'s batches, newest first, after batch `after` if given. */
  async ids(owner: string, after: string | undefined, count: number): Promise<string[]> {
    const key = BATCH_KEYS.owned(owner);
    let start = 0;
    if (after) {
      const rank = await this.redis.zrevrank(key, after);
      if (rank === null) return [];
      start = rank + 1;
    }
    return this.redis.zrevrange(key, start, start + count - 1);
  }

  /** Takes an idle slot and the next line for instance `instanceId`, when no interactive work waits. */
  async claim(
    keys: QueueCoreKeys,
    instanceId: string,
    slotLease: string,
    limits: { maxConcurrent: number; slotLeaseMs: number; headroom: number; lineLeaseMs: number; maxStarts: number },
  ): Promise<ClaimResult> {
    const reply = (await this.redis.bulwarkBatchClaim(
      keys.slots, keys.adding, keys.prioritized, keys.wait, keys.delayed, BATCH_KEYS.active, BATCH_KEYS.running,
      limits.maxConcurrent, limits.slotLeaseMs, slotLease, limits.headroom, limits.lineLeaseMs, limits.maxStarts, STALE_RESERVATION_MS, ADDING_BAND_FACTOR, instanceId,
    )) as [number, string?, number?, number?, string?];
    if (reply[0] === -1) return { kind: 'interactive_waits' };
    if (reply[0] !== 1) return { kind: 'none' };
    return {
      kind: 'line',
      claimed: { batchId: String(reply[1]), index: Number(reply[2]), starts: Number(reply[3]), line: reply[4] ?? undefined, slotLease, runningMember: `${instanceId}|${slotLease}` },
    };
  }

  /**
   * The line to stop so that queued job `jobId` gets a slot (none once the job left the queue or while a
   * slot is free): its instance and slot lease. The line leaves the running set at once, so it is picked once.
   */
  async preempt(keys: QueueCoreKeys, maxConcurrent: number, jobId: string): Promise<{ instanceId: string; slotLease: string } | undefined> {
    const [picked, instanceId, slotLease] = (await this.redis.bulwarkBatchPreempt(keys.slots, keys.prioritized, BATCH_KEYS.running, maxConcurrent, jobId)) as [number, string?, string?];
    return picked === 1 ? { instanceId: String(instanceId), slotLease: String(slotLease) } : undefined;
  }

  /** The line no longer runs (ended, stopped or handed back). */
  async lineEnded(runningMember: string): Promise<void> {
    await this.redis.bulwarkBatchLineEnded(BATCH_KEYS.running, runningMember);
  }

  /** Records line `index`'s outcome once; `done`/`total` when this call recorded it. */
  async record(batchId: string, index: number, value: string, counter: 'completed' | 'failed'): Promise<{ recorded: boolean; done: number; total: number }> {
    const [recorded, done, total] = (await this.redis.bulwarkBatchRecord(BATCH_KEYS.batch(batchId), BATCH_KEYS.results(batchId), BATCH_KEYS.leases(batchId), index, value, counter)) as number[];
    return { recorded: recorded === 1, done: done ?? 0, total: total ?? 0 };
  }

  async renew(leaseMs: number, lines: [batchId: string, index: number][]): Promise<void> {
    if (lines.length > 0) await this.redis.bulwarkBatchRenew(leaseMs, ...lines.flat());
  }

  /** Gives lines back for any instance to start again; `stoppedOnPurpose`: the stop does not count as a start. */
  async handBack(lines: [batchId: string, index: number][], stoppedOnPurpose = false): Promise<void> {
    if (lines.length > 0) await this.redis.bulwarkBatchHandBack(stoppedOnPurpose ? 1 : 0, ...lines.flat());
  }

  /** Marks the batch cancelling (when it runs); the status it had. */
  async cancel(id: string, nowS: number): Promise<BatchStatus | undefined> {
    return ((await this.redis.bulwarkBatchCancel(BATCH_KEYS.batch(id), BATCH_KEYS.byStatus, nowS)) as BatchStatus | '') || undefined;
  }

  /** Seals the batch for its output, when it may end; the ending when this caller writes the output. */
  async seal(id: string, finalizer: string, lockMs: number): Promise<'completed' | 'cancelled' | 'expired' | undefined> {
    const [sealed, ending] = (await this.redis.bulwarkBatchSeal(BATCH_KEYS.batch(id), BATCH_KEYS.leases(id), BATCH_KEYS.finalizer(id), BATCH_KEYS.byStatus, finalizer, lockMs)) as [number, string?];
    return sealed === 1 ? (ending as 'completed' | 'cancelled' | 'expired') : undefined;
  }

  /** Ends a sealed batch with its files; false when another finalizer took over meanwhile. */
  async end(id: string, finalizer: string, nowS: number, files: { output?: string; error?: string }, expiredLines: number): Promise<boolean> {
    const ended = await this.redis.bulwarkBatchEnd(
      BATCH_KEYS.batch(id), BATCH_KEYS.results(id), BATCH_KEYS.leases(id), BATCH_KEYS.starts(id), BATCH_KEYS.finalizer(id), BATCH_KEYS.active, BATCH_KEYS.byStatus,
      finalizer, nowS, files.output ?? '', files.error ?? '', expiredLines, id,
    );
    return ended === 1;
  }

  /** Recorded outcomes of lines `start` to `stop` (inclusive), by index (null: none). */
  results(id: string, start: number, stop: number): Promise<(string | null)[]> {
    const fields = Array.from({ length: stop - start + 1 }, (_, i) => String(start + i));
    return this.redis.hmget(BATCH_KEYS.results(id), ...fields);
  }

  /** The batches not finished, oldest first, with what decides whether they may end. */
  async active(limit = 1000): Promise<{ id: string; status: string; total: number; done: number; expiresAtMs: number; sealed: boolean }[]> {
    const ids = await this.redis.zrange(BATCH_KEYS.active, 0, limit - 1);
    if (ids.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hmget(BATCH_KEYS.batch(id), 'status', 'total', 'completed', 'failed', 'expires_at_ms', 'sealed');
    const replies = (await pipeline.exec()) ?? [];
    return ids.map((id, i) => {
      const [status, total, completed, failed, expires, sealed] = (replies[i]?.[1] ?? []) as (string | null)[];
      return { id, status: status ?? '', total: Number(total ?? 0), done: Number(completed ?? 0) + Number(failed ?? 0), expiresAtMs: Number(expires ?? 0), sealed: sealed === '1' };
    });
  }

  /** Batches by status, across the cluster. */
  async countsByStatus(): Promise<Record<string, number>> {
    const h = await this.redis.hgetall(BATCH_KEYS.byStatus);
    return Object.fromEntries(Object.entries(h).map(([k, v]) => [k, Number(v)]));
  }
}
