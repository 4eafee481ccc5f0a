import { Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { NotFoundError } from '../common/errors';
import { Kind } from '../common/route-kind.decorator';
import { BreakerService, BreakerView } from './breaker.service';

/** A breaker as `/admin/breakers` shows it (snake_case, times as ISO strings). */
export interface BreakerWire {
  key: string;
  upstream: string;
  model: string;
  state: BreakerView['state'];
  calls: number;
  failures: number;
  slow_calls: number;
  failure_ratio: number;
  slow_call_ratio: number;
  opened_at: string | null;
  retry_in_ms: number;
  cooldown_ms: number;
  probes_in_flight: number;
  probe_successes: number;
}

export function toBreakerWire(view: BreakerView): BreakerWire {
  return {
    key: view.key,
    upstream: view.upstream,
    model: view.model,
    state: view.state,
    calls: view.calls,
    failures: view.failures,
    slow_calls: view.slowCalls,
    failure_ratio: Math.round(view.failureRatio * 10_000) / 10_000,
    slow_call_ratio: Math.round(view.slowCallRatio * 10_000) / 10_000,
    opened_at: view.openedAt === null ? null : new Date(view.openedAt).toISOString(),
    retry_in_ms: Math.max(0, Math.ceil(view.retryInMs)),
    cooldown_ms: view.cooldownMs,
    probes_in_flight: view.probesInFlight,
    probe_successes: view.probeSuccesses,
  };
}

/** Operators' view of the circuit breakers, and the switch that forces one closed on every instance. */
@Controller('admin/breakers')
@Kind('admin')
export class BreakerController {
  constructor(private readonly breakers: BreakerService) {}

  @Get()
  list(): { object: 'list'; data: BreakerWire[] } {
    const data = this.breakers.list().map(toBreakerWire);
    data.sort((a, b) => a.key.localeCompare(b.key));
    return { object: 'list', data };
  }

  /** `key` is `upstream:model`, URL-encoded when the model name holds a slash. */
  @Post(':key/reset')
  @HttpCode(200)
  async reset(@Param('key') key: string): Promise<BreakerWire> {
    const view = await this.breakers.reset(key);
    if (!view) throw new NotFoundError('breaker_not_found', `No circuit breaker \`${key.slice(0, 256)}\`; GET /admin/breakers lists them`, 'key');
    return toBreakerWire(view);
  }
}
