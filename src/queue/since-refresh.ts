/**
 * Counters of what this instance did (requests queued, started, finished, …), each with its value when
 * the last refresh of the shared figures began: what happened here since then is not in those figures
 * yet, and is added to (or taken from) them until the next refresh.
 */
export class SinceRefresh {
  private readonly counts = new Map<string, number>();
  private atRefresh = new Map<string, number>();

  add(counter: string, amount = 1): void {
    this.counts.set(counter, (this.counts.get(counter) ?? 0) + amount);
  }

  /** How much `counter` grew since the last refresh began. */
  since(counter: string): number {
    return (this.counts.get(counter) ?? 0) - (this.atRefresh.get(counter) ?? 0);
  }

  /** The values as a refresh begins; hand them to {@link refreshed} once it succeeded. */
  mark(): Map<string, number> {
    return new Map(this.counts);
  }

  refreshed(marked: Map<string, number>): void {
    this.atRefresh = marked;
  }
}
