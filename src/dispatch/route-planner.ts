import { Inject, Injectable } from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import { RandomSource } from '../common/random';
import { routingConfig } from '../config/sections';
import { KvCachePressure } from '../upstream/kv-cache-pressure';
import { UpstreamLeases } from '../upstream/upstream-leases.service';
import type { InferencePayload, UpstreamDefinition } from '../upstream/upstream.types';
import { prefixChain } from './prefix-chain';
import { PrefixIndex, PrefixLookup } from './prefix-index.service';
import { leastLoadedOrder, prefixAwareOrder, weightedOrder } from './upstream-router';

/** The route step of one request: the order to try a model's upstreams in, and what to remember once one is chosen. */
export interface RequestRoute {
  /** The order in which to try `upstreams` (all serving `model`). */
  order(model: string, upstreams: readonly UpstreamDefinition[]): Promise<UpstreamDefinition[]>;
  /** An attempt of `model` started on `upstream`: it will hold the prompt's prefix. */
  started(model: string, upstream: string): unknown;
  /** The request is done with routing (served or failed): drops what it still reserved. */
  done(): void;
}

/**
 * The route step of the dispatch pipeline (`ROUTING`): least loaded, weighted random, or prefix-aware
 * (the shared prefix index, load per weight under the load bound, KV-cache pressure). A request's
 * prefix chain is hashed once per model, and the index read at most once per model (a fallback model
 * has a chain of its own).
 */
@Injectable()
export class RoutePlanner {
  /**
   * Picks made here whose attempt has not taken its lease yet, per upstream. A burst of requests
   * resumes from its index reads one by one; counting each pick at once keeps the load bound true
   * within the burst instead of sending all of it to the same holder.
   */
  private readonly reserved = new Map<string, number>();

  constructor(
    private readonly leases: UpstreamLeases,
    private readonly kvCache: KvCachePressure,
    private readonly index: PrefixIndex,
    private readonly random: RandomSource,
    @Inject(routingConfig.KEY) private readonly config: Pick<ConfigType<typeof routingConfig>, 'mode' | 'blockChars' | 'loadEpsilon'>,
  ) {}

  /**
   * An upstream's load for the bound: in flight on every instance (read with the index when it
   * answered, else the refreshed snapshot), this instance's picks not yet leased, and its own queue.
   * The fresh read is only as old as the request's own lookup; this instance's leases count at once.
   */
  private loadOf(upstream: string, inFlight: Map<string, number> | undefined): number {
    const reserved = this.reserved.get(upstream) ?? 0;
    const fresh = inFlight?.get(upstream);
    if (fresh === undefined) return this.leases.load(upstream) + reserved;
    return Math.max(fresh, this.leases.heldHere(upstream)) + this.leases.polledQueue(upstream) + reserved;
  }

  /** The route of one request. */
  forRequest(payload: InferencePayload): RequestRoute {
    const nothing = () => undefined;
    if (this.config.mode === 'weighted') return { order: async (_model, upstreams) => weightedOrder(upstreams, this.random), started: nothing, done: nothing };
    if (this.config.mode === 'least-loaded') {
      return { order: async (_model, upstreams) => leastLoadedOrder(upstreams, (name) => this.leases.load(name), this.random), started: nothing, done: nothing };
    }
    let reservation: string | undefined;
    const release = () => {
      if (reservation === undefined) return;
      const left = (this.reserved.get(reservation) ?? 1) - 1;
      if (left > 0) this.reserved.set(reservation, left);
      else this.reserved.delete(reservation);
      reservation = undefined;
    };
    const chains = new Map<string, string[]>();
    const held = new Map<string, Promise<PrefixLookup>>();
    const chainOf = (model: string) => {
      let chain = chains.get(model);
      if (!chain) chains.set(model, (chain = prefixChain({ ...payload, model }, this.config.blockChars)));
      return chain;
    };
    return {
      order: async (model, upstreams) => {
        if (upstreams.length < 2) return [...upstreams];
        let lookup = held.get(model);
        if (!lookup) held.set(model, (lookup = this.index.lookup(chainOf(model), upstreams.map((u) => u.name))));
        const { held: matched, inFlight } = await lookup;
        release();
        const candidates = upstreams.map((upstream) => ({
          upstream,
          matched: matched.get(upstream.name) ?? 0,
          load: this.loadOf(upstream.name, inFlight),
          pressured: this.kvCache.pressured(upstream.name),
        }));
        const order = prefixAwareOrder(candidates, this.config.loadEpsilon, this.random);
        reservation = order[0].name;
        this.reserved.set(reservation, (this.reserved.get(reservation) ?? 0) + 1);
        return order;
      },
      started: (model, upstream) => {
        // From here on the attempt's lease counts it.
        release();
        // Only models with a choice of upstreams are worth remembering.
        if (held.has(model)) this.index.record(chainOf(model), upstream);
      },
      done: release,
    };
  }
}
