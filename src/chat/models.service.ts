import { Injectable, Logger } from '@nestjs/common';
import { Clock } from '../common/clock';
import { UpstreamClient } from '../upstream/upstream-client';
import { UpstreamRegistry } from '../upstream/upstream-registry';

const CACHE_MS = 30_000;
const LIST_TIMEOUT_MS = 2000;

export interface ModelEntry {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
}

/** `/v1/models`: the configured models, plus those that open-ended upstreams report (cached). */
@Injectable()
export class ModelsService {
  private readonly logger = new Logger(ModelsService.name);
  private cache?: { at: number; models: ModelEntry[] };
  private readonly created = Math.floor(Date.now() / 1000);

  constructor(
    private readonly registry: UpstreamRegistry,
    private readonly client: UpstreamClient,
    private readonly clock: Clock,
  ) {}

  async list(): Promise<{ object: 'list'; data: ModelEntry[] }> {
    if (!this.cache || this.clock.now() - this.cache.at > CACHE_MS) {
      this.cache = { at: this.clock.now(), models: await this.collect() };
    }
    return { object: 'list', data: this.cache.models };
  }

  private async collect(): Promise<ModelEntry[]> {
    const byId = new Map<string, ModelEntry>();
    const add = (id: string, owner: string) => {
      if (!byId.has(id)) byId.set(id, { id, object: 'model', created: this.created, owned_by: owner });
    };
    for (const upstream of this.registry.all()) {
      if (upstream.models.length > 0) {
        upstream.models.forEach((id) => add(id, upstream.name));
        continue;
      }
      try {
        (await this.client.listModels(upstream, LIST_TIMEOUT_MS)).forEach((id) => add(id, upstream.name));
      } catch (error) {
        this.logger.warn(`could not list the models of upstream ${upstream.name}: ${(error as Error).message}`);
      }
    }
    return [...byId.values()];
  }
}
