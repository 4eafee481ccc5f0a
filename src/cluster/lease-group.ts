/** How the leases of one kind live (see lease-scripts.ts for the rules every lease follows). */
export interface LeaseGroupOptions {
  /** Names the kind in logs (`slots`, `upstream permits`). */
  name: string;
  /** A lease lapses this long after its last renewal: a crashed instance's leases are gone within it. */
  ttlMs: number;
  /**
   * Whether a renewal writes back a lease that lapsed while its work still runs (a long pause): true for
   * slots, whose holder knows its work runs; false for permits, whose acquire alone decides, so a permit
   * taken while Redis was away never lands over the cap.
   */
  reassert: boolean;
  /** Each lease set of this kind expires this long after its last renewal (0 or absent: it does not). */
  setTtlMs?: number;
}

/**
 * The leases of one kind that this instance holds, each with the sorted sets it is a member of (a slot
 * counts in the global set and, for a key with a concurrency cap, in that key's set too). Bookkeeping
 * only: the owner takes and gives back leases with its own scripts; `ClusterLeases` renews them all.
 */
export class LeaseGroup {
  private readonly held = new Map<string, readonly string[]>();
  private sequence = 0;

  constructor(
    readonly options: LeaseGroupOptions,
    private readonly instanceId: string,
  ) {}

  /** A member name no other lease of any instance has: `<instance id>:<sequence>`. */
  newMember(): string {
    return `${this.instanceId}:${++this.sequence}`;
  }

  /** Records that this instance holds `member` in each of `sets`. */
  hold(member: string, ...sets: string[]): void {
    this.held.set(member, sets);
  }

  /** `member` counts in `set` too from now on; false when this instance does not hold it. */
  addSet(member: string, set: string): boolean {
    const sets = this.held.get(member);
    if (!sets) return false;
    if (!sets.includes(set)) this.held.set(member, [...sets, set]);
    return true;
  }

  /** Stops renewing `member`; returns the sets it was in (undefined when it was not held). */
  drop(member: string): readonly string[] | undefined {
    const sets = this.held.get(member);
    this.held.delete(member);
    return sets;
  }

  has(member: string): boolean {
    return this.held.has(member);
  }

  /** The sets `member` counts in (undefined when not held). */
  setsOf(member: string): readonly string[] | undefined {
    return this.held.get(member);
  }

  /** Leases held now. */
  get size(): number {
    return this.held.size;
  }

  /** Members held now, grouped by the set they are in. */
  bySet(): Map<string, string[]> {
    const sets = new Map<string, string[]>();
    for (const [member, memberSets] of this.held) {
      for (const set of memberSets) {
        const members = sets.get(set);
        if (members) members.push(member);
        else sets.set(set, [member]);
      }
    }
    return sets;
  }
}
