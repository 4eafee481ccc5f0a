import { Injectable } from '@nestjs/common';
import { NotFoundError } from '../common/errors';
import { UpstreamProbeService } from '../upstream/upstream-probe.service';
import { UpstreamRegistry } from '../upstream/upstream-registry';

export interface ModelEntry {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
}

/**
 * `/v1/models` and `/v1/models/{id}`: the configured models, plus what open-ended upstreams reported to the background probe
 * (at most one probe period old; reachable upstreams only).
 */
@Injectable()
export class ModelsService {
  private readonly created = Math.floor(Date.now() / 1000);

  constructor(
    private readonly registry: UpstreamRegistry,
    private readonly probes: UpstreamProbeService,
  ) {}

  async list(): Promise<{ object: 'list'; data: ModelEntry[] }> {
    const openEnded = this.registry.all().filter((u) => u.models.length === 0);
    // Right after start the first probe may not have answered yet: run it now rather than list nothing.
    if (openEnded.some((u) => this.probes.get(u.name)?.checkedAt === null)) await this.probes.probeAll();
    const byId = new Map<string, ModelEntry>();
    for (const upstream of this.registry.all()) {
      const probe = this.probes.get(upstream.name);
      const ids = upstream.models.length > 0 ? upstream.models : probe?.reachable ? (probe.models ?? []) : [];
      for (const id of ids) {
        if (!byId.has(id)) byId.set(id, { id, object: 'model', created: this.created, owned_by: upstream.name });
      }
    }
    return { object: 'list', data: [...byId.values()] };
  }

  /** `/v1/models/{id}`: one model object, or `model_not_found` when no upstream serves it. */
  async get(id: string): Promise<ModelEntry> {
    const found = (await this.list()).data.find((entry) => entry.id === id);
    if (!found) throw new NotFoundError('model_not_found', `The model \`${id}\` does not exist`, 'model');
    return found;
  }
}
