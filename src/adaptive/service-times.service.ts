import { Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { Listeners } from '../common/listeners';
import { UpstreamOutcomes } from '../upstream/upstream-outcomes';
import { UpstreamRegistry } from '../upstream/upstream-registry';
import { RequestSize, ServiceTimeModel } from './service-time-model';

/** Models learned at most: an upstream that takes any model name must not grow this without bound. */
const MAX_MODELS = 200;

/** One prediction checked against what happened: the actual and the predicted time of one call. */
export interface EstimateCheck {
  model: string;
  actualMs: number;
  estimatedMs: number;
}

/**
 * Per-model service times learned from every successful upstream call of this instance (see
 * {@link ServiceTimeModel}), for admission's `deadline_unreachable`; reports each prediction's error.
 */
@Injectable()
export class ServiceTimes implements OnApplicationBootstrap {
  private readonly logger = new Logger(ServiceTimes.name);
  private readonly models = new Map<string, ServiceTimeModel>();
  private readonly checkListeners = new Listeners<[EstimateCheck]>('estimate check', this.logger);

  constructor(
    private readonly outcomes: UpstreamOutcomes,
    private readonly registry: UpstreamRegistry,
  ) {}

  onApplicationBootstrap(): void {
    this.outcomes.onOutcome((event) => {
      if (event.outcome !== 'success' || event.completionTokens === undefined) return;
      const model = this.modelFor(event.model);
      if (!model) return;
      const estimatedMs = model.predictMs(event.completionTokens);
      if (estimatedMs !== undefined && model.sampleCount > 0) this.checkListeners.emit({ model: event.model, actualMs: event.durationMs, estimatedMs });
      model.record(event);
    });
  }

  /** Called with each call whose time the model predicted beforehand (metrics). */
  onEstimateCheck(listener: (check: EstimateCheck) => void): void {
    this.checkListeners.add(listener);
  }

  /** Expected service time of a request of `size` for `model`; undefined while the model is not learned yet. */
  estimateMs(model: string | undefined, size: RequestSize): number | undefined {
    return model === undefined ? undefined : this.models.get(model)?.estimateMs(size);
  }

  private modelFor(name: string): ServiceTimeModel | undefined {
    let model = this.models.get(name);
    if (!model && this.models.size < MAX_MODELS && this.registry.knows(name)) {
      model = new ServiceTimeModel();
      this.models.set(name, model);
    }
    return model;
  }
}
