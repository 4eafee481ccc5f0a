import { setTimeout as delay } from 'node:timers/promises';

/**
 * Waits between retries. A boundary like the clock: injected so that tests script the waits instead
 * of sleeping. Rejects with the signal's reason when the signal aborts first.
 */
export abstract class Sleeper {
  abstract sleep(ms: number, signal: AbortSignal): Promise<void>;
}

export class TimerSleeper extends Sleeper {
  async sleep(ms: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw signal.reason;
    await delay(ms, undefined, { signal }).catch(() => {
      throw signal.reason;
    });
  }
}
