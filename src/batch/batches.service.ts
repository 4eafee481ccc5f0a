import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { randomBytes } from 'node:crypto';
import { Clock } from '../common/clock';
import { BatchNotCancellableError, InvalidRequestError, NotFoundError, PayloadTooLargeError } from '../common/errors';
import { batchConfig } from '../config/sections';
import { LINES_PER_CALL } from '../files/file-store';
import { FilesService, listLimit, ListPage, listPage } from '../files/files.service';
import { UpstreamRegistry } from '../upstream/upstream-registry';
import { BATCH_ENDPOINTS, BatchObject, batchObject } from './batch-object';
import { BatchFinalizer } from './batch-finalizer';
import { BatchInputCheck } from './batch-input';
import { BatchRunner } from './batch-runner';
import { BatchStore } from './batch-store';

const MAX_METADATA_PAIRS = 16;

/** OpenAI's Batch API: create (the input checked whole first), retrieve, list, cancel. */
@Injectable()
export class BatchesService {
  constructor(
    private readonly store: BatchStore,
    private readonly files: FilesService,
    private readonly registry: UpstreamRegistry,
    private readonly runner: BatchRunner,
    private readonly finalizer: BatchFinalizer,
    private readonly clock: Clock,
    @Inject(batchConfig.KEY) private readonly config: ConfigType<typeof batchConfig>,
  ) {}

  async create(body: unknown, owner: string): Promise<BatchObject> {
    const request = createRequest(body);
    const file = await this.files.find(request.input_file_id, owner);
    if (file.purpose !== 'batch') throw new InvalidRequestError('invalid_body', `File ${file.id} is a batch's output, not a batch input (purpose "batch")`, 'input_file_id');
    if (file.lines > this.config.maxLines) {
      throw new PayloadTooLargeError(`The input file holds ${file.lines} lines; a batch may hold at most ${this.config.maxLines} (BATCH_MAX_LINES)`, 'input_file_id');
    }
    // The whole input is checked before anything is queued: a bad line refuses the batch.
    const check = new BatchInputCheck(request.endpoint, (model) => this.registry.knows(model));
    for (let start = 0; start < file.lines; start += LINES_PER_CALL) {
      for (const line of await this.files.lines(file.id, start, Math.min(file.lines, start + LINES_PER_CALL) - 1)) check.add(line);
    }
    if (check.lines !== file.lines) throw new InvalidRequestError('invalid_body', 'The input file changed while it was read; upload it again', 'input_file_id');
    const id = `batch_${randomBytes(12).toString('hex')}`;
    const now = this.clock.now();
    const nowS = Math.floor(now / 1000);
    await this.store.create(
      id,
      owner,
      {
        endpoint: request.endpoint,
        input_file_id: file.id,
        created_at: nowS,
        in_progress_at: nowS,
        expires_at_ms: now + this.config.completionWindowMs,
        total: file.lines,
        ...(request.metadata ? { metadata: JSON.stringify(request.metadata) } : {}),
      },
      now,
    );
    this.runner.batchCreated();
    return this.get(id, owner);
  }

  async get(id: string, owner: string): Promise<BatchObject> {
    const batch = await this.store.get(id, owner);
    if (!batch) throw new NotFoundError('batch_not_found', `No such Batch object: ${id}`, 'batch_id');
    return batchObject(id, batch);
  }

  async list(owner: string, query: { after?: string; limit?: string }): Promise<ListPage<BatchObject>> {
    const limit = listLimit(query.limit, 20, 100);
    const ids = await this.store.ids(owner, query.after, limit + 1);
    const batches: BatchObject[] = [];
    for (const id of ids.slice(0, limit)) {
      const batch = await this.store.get(id, owner);
      if (batch) batches.push(batchObject(id, batch));
    }
    return listPage(batches, ids.length > limit);
  }

  /** Stops new lines at once; the batch ends `cancelled` once the lines running now are done. */
  async cancel(id: string, owner: string): Promise<BatchObject> {
    const before = await this.get(id, owner);
    const status = await this.store.cancel(id, Math.floor(this.clock.now() / 1000));
    if (status !== 'in_progress' && status !== 'validating' && status !== 'cancelling') throw new BatchNotCancellableError(status ?? before.status);
    await this.finalizer.finalize(id);
    return this.get(id, owner);
  }
}

interface CreateBatchRequest {
  input_file_id: string;
  endpoint: string;
  metadata?: Record<string, string>;
}

/** Checks the body of `POST /v1/batches`. */
function createRequest(body: unknown): CreateBatchRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new InvalidRequestError('invalid_body', 'The body must be a JSON object');
  const b = body as Record<string, unknown>;
  if (typeof b.input_file_id !== 'string' || b.input_file_id === '') throw new InvalidRequestError('invalid_body', 'input_file_id is required (the id of an uploaded file with purpose "batch")', 'input_file_id');
  if (typeof b.endpoint !== 'string' || !(b.endpoint in BATCH_ENDPOINTS)) {
    throw new InvalidRequestError('invalid_body', `endpoint must be one of ${Object.keys(BATCH_ENDPOINTS).join(', ')}`, 'endpoint');
  }
  if (b.completion_window !== '24h') throw new InvalidRequestError('invalid_body', 'completion_window must be "24h"', 'completion_window');
  if (b.metadata === undefined || b.metadata === null) return { input_file_id: b.input_file_id, endpoint: b.endpoint };
  const metadata = b.metadata;
  if (typeof metadata !== 'object' || Array.isArray(metadata)) throw new InvalidRequestError('invalid_body', 'metadata must be an object of string values', 'metadata');
  const entries = Object.entries(metadata as Record<string, unknown>);
  if (entries.length > MAX_METADATA_PAIRS) throw new InvalidRequestError('invalid_body', `metadata may hold at most ${MAX_METADATA_PAIRS} pairs`, 'metadata');
  for (const [key, value] of entries) {
    if (key.length > 64 || typeof value !== 'string' || value.length > 512) {
      throw new InvalidRequestError('invalid_body', 'metadata keys are at most 64 characters and values strings of at most 512', 'metadata');
    }
  }
  return { input_file_id: b.input_file_id, endpoint: b.endpoint, metadata: metadata as Record<string, string> };
}
