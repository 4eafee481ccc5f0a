import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { responsesConfig } from '../config/sections';
import { RedisService } from '../redis/redis.service';
import { APPEND, CREATE, DISCARD, FINISH, LIVE_COUNTS, START } from './response-scripts';

/** OpenAI's statuses of a response. */
export type ResponseStatus = 'queued' | 'in_progress' | 'completed' | 'failed' | 'cancelled' | 'incomplete';
export type FinalStatus = Exclude<ResponseStatus, 'queued' | 'in_progress'>;

export const FINAL_STATUSES: readonly FinalStatus[] = ['completed', 'failed', 'cancelled', 'incomplete'];
export const RESPONSE_STATUSES: readonly ResponseStatus[] = ['queued', 'in_progress', ...FINAL_STATUSES];

export function isFinal(status: string): status is FinalStatus {
  return (FINAL_STATUSES as readonly string[]).includes(status);
}

/** One background response as stored. */
export interface StoredResponse {
  owner: string;
  status: ResponseStatus;
  /** Whether its events are logged (it was created with `stream: true`). */
  stream: boolean;
  /** The response object; its `status` is {@link status}. */
  object: Record<string, unknown>;
  /** The last sequence_number given (-1: none). */
  lastSequence: number;
}

/** One logged stream event: its sequence number, type and JSON (sequence_number included). */
export interface LoggedEvent {
  sequence: number;
  type: string;
  data: string;
}

/** What a worker run finds when it starts. */
export interface RunStart {
  /** The status before this run: `queued` (first run), `in_progress` (a re-run), or final / `missing` (nothing to run). */
  before: ResponseStatus | 'missing';
  /** 0: no worker event logged yet; 1: `response.in_progress` logged; 2: output logged. */
  stage: number;
}

const RECORD = 'bulwark:resp:';
const COUNTS = 'bulwark:resp:counts';
const LIVE = ['bulwark:resp:live:queued', 'bulwark:resp:live:in_progress'];

/** JSON of an event without its closing brace: the scripts append its sequence_number. */
function eventPrefix(event: Record<string, unknown>): string {
  const json = JSON.stringify(event);
  return json === '{}' ? '{"_":null' : json.slice(0, -1);
}

/**
 * Background responses in Redis, where every instance reads them: the record (owner, status, the
 * response object) and, for streamed ones, the event log that resumes a dropped stream. Every change is
 * one script (see response-scripts.ts); records and logs expire RESPONSE_TTL_MS after their last change.
 */
@Injectable()
export class ResponseStore {
  constructor(
    private readonly redis: RedisService,
    @Inject(responsesConfig.KEY) private readonly config: ConfigType<typeof responsesConfig>,
  ) {}

  private keys(id: string): string[] {
    return [RECORD + id, `${RECORD}${id}:events`, COUNTS, ...LIVE];
  }

  /** Stores a new queued response; `createdEvent` (streamed ones) becomes sequence_number 0. Kept at least `keepMs`. */
  async create(id: string, owner: string, object: Record<string, unknown>, createdEvent: Record<string, unknown> | undefined, keepMs: number): Promise<boolean> {
    const ttl = Math.max(this.config.ttlMs, keepMs);
    const args = [owner, JSON.stringify(object), createdEvent ? '1' : '0', String(ttl), createdEvent ? eventPrefix(createdEvent) : ''];
    return (await this.redis.client.eval(CREATE, 5, ...this.keys(id), ...args)) === 1;
  }

  async discard(id: string): Promise<void> {
    await this.redis.client.eval(DISCARD, 5, ...this.keys(id));
  }

  async get(id: string): Promise<StoredResponse | undefined> {
    const hash = await this.redis.client.hgetall(RECORD + id);
    if (!hash.owner || !hash.object) return undefined;
    return { owner: hash.owner, status: hash.status as ResponseStatus, stream: hash.stream === '1', object: JSON.parse(hash.object) as Record<string, unknown>, lastSequence: Number(hash.seq) };
  }

  /** A worker run begins under `run`; any earlier run may no longer write. Kept at least `keepMs` (the run's deadline). */
  async start(id: string, run: string, keepMs: number): Promise<RunStart> {
    const ttl = String(Math.max(this.config.ttlMs, keepMs));
    const [before, , stage] = (await this.redis.client.eval(START, 5, ...this.keys(id), run, ttl)) as [string, number, number];
    return { before: before as RunStart['before'], stage: Number(stage) };
  }

  /** Logs an event of run `run`; its sequence number, or undefined when the run may no longer write. */
  async append(id: string, run: string, event: Record<string, unknown> & { type: string }, stage: number): Promise<number | undefined> {
    const { maxEvents, maxEventBytes, ttlMs } = this.config;
    const args = [run, event.type, eventPrefix(event), String(stage), String(maxEvents), String(maxEventBytes), String(ttlMs)];
    const seq = Number(await this.redis.client.eval(APPEND, 5, ...this.keys(id), ...args));
    return seq >= 0 ? seq : undefined;
  }

  /**
   * Ends a response that has not ended yet, with its final object and (streamed ones) a last event.
   * `run` '*' ends it whoever runs it (a cancel). Answers 'ok', or what it already was.
   */
  async finish(id: string, run: string, status: FinalStatus, object: Record<string, unknown>, lastEvent?: Record<string, unknown> & { type: string }): Promise<string> {
    const { maxEvents, maxEventBytes, ttlMs } = this.config;
    const args = [run, status, JSON.stringify(object), lastEvent?.type ?? '', lastEvent ? eventPrefix(lastEvent) : '', String(maxEvents), String(maxEventBytes), String(ttlMs)];
    return String(await this.redis.client.eval(FINISH, 5, ...this.keys(id), ...args));
  }

  /** Up to `count` logged events after sequence number `after`, and the oldest sequence number still kept (undefined: none). */
  async eventsAfter(id: string, after: number, count: number): Promise<{ events: LoggedEvent[]; oldestKept?: number }> {
    const key = `${RECORD}${id}:events`;
    const [[, oldest], [, entries]] = (await this.redis.client
      .multi()
      .xrange(key, '-', '+', 'COUNT', 1)
      .xrange(key, `0-${after + 2}`, '+', 'COUNT', count)
      .exec()) as [[unknown, [string, string[]][]], [unknown, [string, string[]][]]];
    const sequenceOf = (entryId: string) => Number(entryId.slice(2)) - 1;
    return {
      oldestKept: oldest.length > 0 ? sequenceOf(oldest[0][0]) : undefined,
      events: entries.map(([entryId, fields]) => ({ sequence: sequenceOf(entryId), type: fields[1], data: fields[3] })),
    };
  }

  /** Background responses by status across the cluster: queued and in_progress now; final ones reached so far. */
  async counts(): Promise<Record<ResponseStatus, number>> {
    const [hash, [queued, inProgress]] = await Promise.all([this.redis.client.hgetall(COUNTS), this.redis.client.eval(LIVE_COUNTS, 2, ...LIVE) as Promise<[number, number]>]);
    const counts = Object.fromEntries(RESPONSE_STATUSES.map((s) => [s, Number(hash[s] ?? 0)])) as Record<ResponseStatus, number>;
    return { ...counts, queued: Number(queued), in_progress: Number(inProgress) };
  }

  /** The Redis key of a response's event log (for the tail's XREAD). */
  static eventsKey(id: string): string {
    return `${RECORD}${id}:events`;
  }
}
