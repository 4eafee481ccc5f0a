import { Injectable } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { RedisService } from '../redis/redis.service';
import type { FilePurpose, StoredFile } from './file-object';

/** Lines written or read per Redis command: a bounded argument list and reply. */
export const LINES_PER_CALL = 1000;

/** Redis keys of the files. */
export const FILE_KEYS = {
  meta: (id: string) => `bulwark:file:${id}`,
  /** LIST of the file's lines, each with its line break: LINDEX reads any line without reading the rest. */
  lines: (id: string) => `bulwark:file:${id}:lines`,
  /** ZSET of a client key's files (score: created at, ms). */
  owned: (owner: string) => `bulwark:files:${owner}`,
};

/** A new file id, as OpenAI's look (`file-` and 24 hex digits). */
export function newFileId(): string {
  return `file-${randomBytes(12).toString('hex')}`;
}

/**
 * Files in Redis, where every instance reads them and where they outlive every instance (Redis's
 * append-only file). A file is a description (hash) and its lines (a list), so that a batch reads one
 * line at a time and the content is sent in pages, never held whole.
 */
@Injectable()
export class FileStore {
  constructor(private readonly redis: RedisService) {}

  /** Stores a new file; its description is written last, so a file is visible only once whole. */
  async create(file: Omit<StoredFile, 'lines'>, lines: Buffer[]): Promise<StoredFile> {
    for (let i = 0; i < lines.length; i += LINES_PER_CALL) await this.redis.client.rpush(FILE_KEYS.lines(file.id), ...lines.slice(i, i + LINES_PER_CALL));
    const stored = { ...file, lines: lines.length };
    await this.describe(stored);
    return stored;
  }

  /** Writes the description of a file whose lines are in place (a batch's output), and lists it for its owner. */
  async describe(file: StoredFile): Promise<void> {
    await this.redis.client
      .multi()
      .hset(FILE_KEYS.meta(file.id), {
        owner: file.owner,
        bytes: file.bytes,
        lines: file.lines,
        created_at: file.createdAt,
        filename: file.filename,
        purpose: file.purpose,
      })
      .zadd(FILE_KEYS.owned(file.owner), file.createdAt, file.id)
      .exec();
  }

  /** Empties the lines of file `id` (a batch's output being written again). */
  async clearLines(id: string): Promise<void> {
    await this.redis.client.del(FILE_KEYS.lines(id));
  }

  /** Appends lines to file `id`, whose description is written once they are all in place. */
  async appendLines(id: string, lines: string[]): Promise<void> {
    for (let i = 0; i < lines.length; i += LINES_PER_CALL) await this.redis.client.rpush(FILE_KEYS.lines(id), ...lines.slice(i, i + LINES_PER_CALL));
  }

  /** The file `id` if `owner` may see it. */
  async get(id: string, owner: string): Promise<StoredFile | undefined> {
    const h = await this.redis.client.hgetall(FILE_KEYS.meta(id));
    if (h.owner === undefined || h.owner !== owner) return undefined;
    return {
      id,
      owner: h.owner,
      bytes: Number(h.bytes),
      lines: Number(h.lines),
      createdAt: Number(h.created_at),
      filename: h.filename,
      purpose: h.purpose as FilePurpose,
    };
  }

  /** Lines `start` to `stop` (inclusive) of file `id`. */
  lines(id: string, start: number, stop: number): Promise<Buffer[]> {
    return this.redis.client.lrangeBuffer(FILE_KEYS.lines(id), start, stop);
  }

  /** The file's content in pages of lines, in order. */
  async *content(file: StoredFile): AsyncIterable<Buffer> {
    for (let i = 0; i < file.lines; i += LINES_PER_CALL) {
      yield Buffer.concat(await this.lines(file.id, i, Math.min(file.lines, i + LINES_PER_CALL) - 1));
    }
  }

  /** Ids of `owner`'s files, newest first (or oldest first), after the file `after` if given. */
  async ids(owner: string, order: 'asc' | 'desc', after: string | undefined, count: number): Promise<string[]> {
    const key = FILE_KEYS.owned(owner);
    const client = this.redis.client;
    let start = 0;
    if (after) {
      const rank = order === 'desc' ? await client.zrevrank(key, after) : await client.zrank(key, after);
      if (rank === null) return [];
      start = rank + 1;
    }
    return order === 'desc' ? client.zrevrange(key, start, start + count - 1) : client.zrange(key, start, start + count - 1);
  }

  async delete(file: StoredFile): Promise<void> {
    await this.redis.client.multi().del(FILE_KEYS.meta(file.id), FILE_KEYS.lines(file.id)).zrem(FILE_KEYS.owned(file.owner), file.id).exec();
  }
}
