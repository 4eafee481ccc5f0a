/** Source of time. Injected everywhere time matters so that tests can drive it by hand. */
export abstract class Clock {
  /** Milliseconds since the epoch. */
  abstract now(): number;
}

export class SystemClock extends Clock {
  now(): number {
    return Date.now();
  }
}

/** A clock that only moves when told to; for unit tests of time-based state machines. */
export class FakeClock extends Clock {
  constructor(private current = 1_700_000_000_000) {
    super();
  }
  now(): number {
    return this.current;
  }
  advance(ms: number): void {
    this.current += ms;
  }
  set(ms: number): void {
    this.current = ms;
  }
}
