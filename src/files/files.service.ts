import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { Clock } from '../common/clock';
import { InvalidRequestError, NotFoundError } from '../common/errors';
import { batchConfig } from '../config/sections';
import { FileObject, fileObject, splitLines, StoredFile } from './file-object';
import { FileStore, newFileId } from './file-store';
import { filePart, MultipartBody, parseMultipart, textField } from './multipart';

/** A page of a list, in OpenAI's list format. */
export interface ListPage<T> {
  object: 'list';
  data: T[];
  first_id: string | null;
  last_id: string | null;
  has_more: boolean;
}

/** Parses `limit` (1 to `max`, default `fallback`) of a list request. */
export function listLimit(raw: string | undefined, fallback: number, max: number): number {
  if (raw === undefined) return fallback;
  const limit = Number(raw);
  if (!Number.isInteger(limit) || limit < 1 || limit > max) throw new InvalidRequestError('invalid_body', `limit must be an integer from 1 to ${max}`, 'limit');
  return limit;
}

/** A page of items in OpenAI's list format. */
export function listPage<T extends { id: string }>(data: T[], hasMore: boolean): ListPage<T> {
  return { object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: hasMore };
}

/** OpenAI's Files API for batch input: upload, read, list, delete; each file visible to its uploader only. */
@Injectable()
export class FilesService {
  constructor(
    private readonly store: FileStore,
    private readonly clock: Clock,
    @Inject(batchConfig.KEY) private readonly config: ConfigType<typeof batchConfig>,
  ) {}

  async upload(body: unknown, owner: string): Promise<FileObject> {
    if (!isMultipart(body)) throw new InvalidRequestError('invalid_body', 'Upload the file as multipart/form-data with a `file` part and `purpose=batch`', 'file');
    const parts = parseMultipart(body);
    const purpose = textField(parts, 'purpose');
    if (purpose !== 'batch') {
      throw new InvalidRequestError('invalid_body', `purpose must be "batch" (got ${purpose === undefined ? 'none' : JSON.stringify(purpose.slice(0, 40))}); this gateway stores batch input only`, 'purpose');
    }
    const file = filePart(parts, this.config.maxFileBytes);
    if (file.data.length === 0) throw new InvalidRequestError('invalid_body', 'The file is empty; a batch input file holds one JSON request per line', 'file');
    const stored = await this.store.create(
      { id: newFileId(), owner, bytes: file.data.length, createdAt: this.clock.now(), filename: file.filename.slice(0, 255), purpose: 'batch' },
      splitLines(file.data),
    );
    return fileObject(stored);
  }

  /** The stored file `id` of `owner`, or 404 (another key's file is not there for this one). */
  async find(id: string, owner: string): Promise<StoredFile> {
    const file = await this.store.get(id, owner);
    if (!file) throw new NotFoundError('file_not_found', `No such File object: ${id}`, 'file_id');
    return file;
  }

  /** Lines `start` to `stop` (inclusive) of a file found with {@link find}. */
  lines(id: string, start: number, stop: number): Promise<Buffer[]> {
    return this.store.lines(id, start, stop);
  }

  async get(id: string, owner: string): Promise<FileObject> {
    return fileObject(await this.find(id, owner));
  }

  /** The file's bytes, in pages. */
  async content(id: string, owner: string): Promise<{ file: StoredFile; pages: AsyncIterable<Buffer> }> {
    const file = await this.find(id, owner);
    return { file, pages: this.store.content(file) };
  }

  async delete(id: string, owner: string): Promise<{ id: string; object: 'file'; deleted: true }> {
    await this.store.delete(await this.find(id, owner));
    return { id, object: 'file', deleted: true };
  }

  async list(owner: string, query: { after?: string; limit?: string; order?: string; purpose?: string }): Promise<ListPage<FileObject>> {
    const limit = listLimit(query.limit, 10_000, 10_000);
    const order = query.order ?? 'desc';
    if (order !== 'asc' && order !== 'desc') throw new InvalidRequestError('invalid_body', 'order must be "asc" or "desc"', 'order');
    const found: FileObject[] = [];
    let after = query.after;
    // One more than asked for says whether there is more; a purpose filter may need several pages.
    while (found.length <= limit) {
      const ids = await this.store.ids(owner, order, after, limit + 1);
      for (const id of ids) {
        const file = await this.store.get(id, owner);
        if (file && (!query.purpose || file.purpose === query.purpose)) found.push(fileObject(file));
      }
      if (ids.length <= limit) break;
      after = ids.at(-1);
    }
    return listPage(found.slice(0, limit), found.length > limit);
  }
}

function isMultipart(body: unknown): body is MultipartBody {
  return typeof body === 'object' && body !== null && Buffer.isBuffer((body as MultipartBody).raw) && typeof (body as MultipartBody).contentType === 'string';
}
