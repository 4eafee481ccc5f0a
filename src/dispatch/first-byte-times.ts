import { Injectable } from '@nestjs/common';

/** Samples kept per model: the p95 follows the recent past. */
const SAMPLES = 200;
/** Fewer samples than this say nothing about a p95. */
const MIN_SAMPLES = 20;

/**
 * Recent times to first byte per model (a ring of the last 200 successful attempts on this instance),
 * for the hedge delay: an attempt later than the model's p95 is worth hedging.
 */
@Injectable()
export class FirstByteTimes {
  private readonly rings = new Map<string, { values: number[]; next: number }>();

  record(model: string, ms: number): void {
    let ring = this.rings.get(model);
    if (!ring) this.rings.set(model, (ring = { values: [], next: 0 }));
    if (ring.values.length < SAMPLES) ring.values.push(ms);
    else ring.values[ring.next] = ms;
    ring.next = (ring.next + 1) % SAMPLES;
  }

  /** The model's p95 time to first byte, or undefined before 20 samples. */
  p95(model: string): number | undefined {
    const values = this.rings.get(model)?.values;
    if (!values || values.length < MIN_SAMPLES) return undefined;
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.ceil(0.95 * sorted.length) - 1)];
  }
}
