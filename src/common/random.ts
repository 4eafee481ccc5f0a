/** Source of randomness in [0, 1). Injected so that probabilistic decisions can be tested with a seed. */
export abstract class RandomSource {
  abstract next(): number;
}

export class MathRandomSource extends RandomSource {
  next(): number {
    return Math.random();
  }
}

/** Deterministic generator (mulberry32) for tests and reproducible benchmarks. */
export class SeededRandomSource extends RandomSource {
  private state: number;
  constructor(seed: number) {
    super();
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}
