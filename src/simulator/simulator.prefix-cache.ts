import { createHash } from 'node:crypto';
import type { GenerationKind } from './simulator.answer';
import type { Exchange } from './simulator.exchange';

/** The prompt's tokens as the simulator counts them (the words `countTokens` counts, in prompt order). */
export function promptWords(kind: GenerationKind, body: Record<string, unknown>): string[] {
  if (kind === 'chat') return words(body.messages);
  if (kind === 'responses') return [...words(body.instructions), ...words(body.input)];
  return words(body.prompt);
}

function words(value: unknown): string[] {
  if (typeof value === 'string') return value.split(/\s+/).filter(Boolean);
  if (Array.isArray(value)) return value.flatMap(words);
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    return [...words(record.content), ...words(record.text)];
  }
  return [];
}

/**
 * One replica's prefix cache, as vLLM's automatic prefix caching keeps it: full blocks of
 * `blockTokens` tokens, each named by a hash of its tokens and every token before it, evicted least
 * recently used first once the cached tokens would pass `capacityTokens`. Counts the tokens looked up
 * and found, as vLLM's `prefix_cache_queries` and `prefix_cache_hits` counters do.
 */
export class PrefixCache {
  private readonly blocks = new Map<string, true>();
  queries = 0;
  hits = 0;

  constructor(
    private capacityTokens: number,
    private blockTokens: number,
  ) {}

  get enabled(): boolean {
    return this.capacityTokens > 0;
  }

  /** Tokens held now. */
  get cachedTokens(): number {
    return this.blocks.size * this.blockTokens;
  }

  /** Changes the size (evicting what no longer fits) or the block size (emptying the cache). */
  configure(capacityTokens: number, blockTokens: number): void {
    if (blockTokens !== this.blockTokens) this.blocks.clear();
    this.capacityTokens = capacityTokens;
    this.blockTokens = blockTokens;
    this.evict();
  }

  /**
   * Serves a prompt: the tokens of its longest cached prefix (whole blocks), then caches all of its
   * whole blocks as the prefill computes them.
   */
  admit(tokens: readonly string[]): number {
    if (!this.enabled) return 0;
    const chain = this.chain(tokens);
    let cached = 0;
    while (cached < chain.length && this.blocks.has(chain[cached])) cached++;
    this.queries += tokens.length;
    this.hits += cached * this.blockTokens;
    for (const hash of chain) {
      this.blocks.delete(hash);
      this.blocks.set(hash, true);
    }
    this.evict();
    return cached * this.blockTokens;
  }

  private chain(tokens: readonly string[]): string[] {
    const hashes: string[] = [];
    let previous = '';
    for (let at = 0; at + this.blockTokens <= tokens.length; at += this.blockTokens) {
      previous = createHash('sha1').update(previous).update('\u0000').update(tokens.slice(at, at + this.blockTokens).join(' ')).digest('hex');
      hashes.push(previous);
    }
    return hashes;
  }

  private evict(): void {
    const most = Math.floor(this.capacityTokens / this.blockTokens);
    for (const hash of this.blocks.keys()) {
      if (this.blocks.size <= most) break;
      this.blocks.delete(hash);
    }
  }
}

/**
 * Which calls stall: a share of them, spread evenly (call i stalls when ⌊(i+1)·share⌋ passes ⌊i·share⌋),
 * so that a test or a bench knows how many stalled without a random source.
 */
export class StallSchedule {
  private calls = 0;

  /** Whether the next call stalls, at `share` (0..1). */
  next(share: number): boolean {
    const i = this.calls++;
    return share > 0 && Math.floor((i + 1) * share) > Math.floor(i * share);
  }
}

/**
 * What one simulated replica keeps between calls, as an inference server does: its prefix cache, the
 * prompt tokens of its running calls (its KV-cache use), and which calls it stalls.
 */
export class ReplicaState {
  readonly cache: PrefixCache;
  private readonly schedule = new StallSchedule();
  private runningPromptTokens = 0;

  constructor(private capacityTokens: number, blockTokens: number) {
    this.cache = new PrefixCache(capacityTokens, blockTokens);
  }

  configure(capacityTokens: number, blockTokens: number): void {
    this.capacityTokens = capacityTokens;
    this.cache.configure(capacityTokens, blockTokens);
  }

  /**
   * The prompt meets the prefix cache: how much of it was cached (undefined with the cache off) and how
   * many tokens the prefill computes. Its tokens count as KV-cache use until the exchange closes.
   */
  prefill(kind: GenerationKind, body: Record<string, unknown>, exchange: Exchange): { cachedTokens?: number; uncachedTokens: number } {
    const tokens = kind === 'embedding' ? [] : promptWords(kind, body);
    this.runningPromptTokens += tokens.length;
    exchange.res.once('close', () => (this.runningPromptTokens -= tokens.length));
    if (!this.cache.enabled || tokens.length === 0) return { uncachedTokens: tokens.length };
    const cachedTokens = this.cache.admit(tokens);
    return { cachedTokens, uncachedTokens: tokens.length - cachedTokens };
  }

  /** Whether the next call stalls, at `share`. */
  stalls(share: number): boolean {
    return this.schedule.next(share);
  }

  /** With a prefix cache, KV-cache use is the running prompts' tokens against its size; else undefined. */
  kvUsage(): number | undefined {
    return this.cache.enabled ? Math.min(1, this.runningPromptTokens / this.capacityTokens) : undefined;
  }
}
