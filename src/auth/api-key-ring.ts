import { createHash, timingSafeEqual } from 'node:crypto';
import type { Priority } from '../common/priority';
import type { ClientIdentity } from '../common/request-context';
import type { ClientKeyDefinition } from '../config/api-keys-file';

/** One configured client key, as `API_KEYS` lists it. */
export interface ApiKeyEntry {
  key: string;
  tier: Priority;
}

/** What the ring knows of a key: its digest and the identity it grants. Never the key itself. */
interface KeyRecord {
  digest: Buffer;
  identity: ClientIdentity;
}

const TIERS: readonly Priority[] = ['high', 'normal', 'low'];

/** The identity of the admin key wherever it is presented. */
export const ADMIN_IDENTITY: ClientIdentity = Object.freeze({ id: 'admin', name: 'admin', tier: 'high', admin: true, weight: 1 });

/** The identity of every caller while no client key is configured. */
export const ANONYMOUS_IDENTITY: ClientIdentity = Object.freeze({ id: 'anonymous', name: 'anonymous', tier: 'high', admin: false, weight: 1 });

function sha256(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/**
 * Parses `API_KEYS` (`key:tier,key:tier,…`; the format is already validated at start-up).
 * Throws on a repeated key, naming its position only, so that the key never reaches a log.
 */
export function parseApiKeys(raw: string | undefined): ApiKeyEntry[] {
  if (raw === undefined || raw.trim() === '') return [];
  const seen = new Set<string>();
  return raw.split(',').map((item, index) => {
    const [key, tier] = item.trim().split(':');
    if (!key || !(TIERS as readonly string[]).includes(tier)) {
      throw new Error(`API_KEYS entry ${index + 1} is not key:tier with tier high, normal or low`);
    }
    if (seen.has(key)) throw new Error(`API_KEYS entry ${index + 1} repeats an earlier key`);
    seen.add(key);
    return { key, tier: tier as Priority };
  });
}

/** The public, stable id of a client key: a short prefix of its SHA-256, safe to log and to key state on. */
export function clientIdOf(key: string): string {
  return `key_${sha256(key).toString('hex').slice(0, 8)}`;
}

/**
 * `API_KEYS` entries as key definitions: named by their public id (a hash prefix, never the key),
 * weight 1, no caps.
 */
export function definitionsFromApiKeys(entries: readonly ApiKeyEntry[]): ClientKeyDefinition[] {
  return entries.map(({ key, tier }) => ({ name: clientIdOf(key), tier, weight: 1, digest: sha256(key).toString('hex') }));
}

/** The identity a key definition grants: its id is the digest's prefix, as {@link clientIdOf} gives for the key. */
function identityOf(definition: ClientKeyDefinition): ClientIdentity {
  const identity: ClientIdentity = { id: `key_${definition.digest.slice(0, 8)}`, name: definition.name, tier: definition.tier, admin: false, weight: definition.weight };
  if (definition.maxConcurrent !== undefined) identity.maxConcurrent = definition.maxConcurrent;
  if (definition.maxQueueShare !== undefined) identity.maxQueueShare = definition.maxQueueShare;
  if (definition.limits) identity.limits = Object.freeze({ ...definition.limits });
  if (definition.serviceTiers) identity.serviceTiers = Object.freeze([...definition.serviceTiers]);
  return Object.freeze(identity);
}

/**
 * The configured client keys and the admin key, held only as SHA-256 digests computed once.
 *
 * A presented key is hashed and compared with `timingSafeEqual`. The map lookup by digest is safe:
 * its timing depends on the digest of what the caller sent, which the caller cannot steer toward a
 * configured key, so it reveals nothing about the keys themselves.
 */
export class ApiKeyRing {
  private readonly clients = new Map<string, KeyRecord>();
  private readonly adminDigest?: Buffer;

  /** `clients` from API_KEYS ({@link definitionsFromApiKeys}) or API_KEYS_FILE; `source` names it in errors. */
  constructor(clients: readonly ClientKeyDefinition[], adminKey?: string, source = 'API_KEYS') {
    const ids = new Set<string>();
    for (const [index, definition] of clients.entries()) {
      const identity = identityOf(definition);
      // Jobs and rate-limit buckets are keyed by id: two keys sharing one would share them.
      if (ids.has(identity.id)) throw new Error(`${source} entry ${index + 1} has the same id (${identity.id}) as an earlier key; replace one of them`);
      ids.add(identity.id);
      this.clients.set(definition.digest, { digest: Buffer.from(definition.digest, 'hex'), identity });
    }
    this.adminDigest = adminKey ? sha256(adminKey) : undefined;
  }

  /** True when client keys are configured; false means Bulwark runs open. */
  get enforcing(): boolean {
    return this.clients.size > 0;
  }

  /** True when an admin key is configured; admin routes are closed otherwise. */
  get hasAdminKey(): boolean {
    return this.adminDigest !== undefined;
  }

  /** True when `presented` is the admin key. */
  isAdminKey(presented: string | undefined): boolean {
    if (presented === undefined || !this.adminDigest) return false;
    return timingSafeEqual(sha256(presented), this.adminDigest);
  }

  /** The identity of a client key, or undefined for an unknown one. The admin key is not a client key here. */
  clientIdentity(presented: string | undefined): ClientIdentity | undefined {
    if (presented === undefined) return undefined;
    const digest = sha256(presented);
    const record = this.clients.get(digest.toString('hex'));
    return record && timingSafeEqual(digest, record.digest) ? record.identity : undefined;
  }

  /** The identity of any key that may call client routes: a client key, or the admin key (tier high). */
  identify(presented: string | undefined): ClientIdentity | undefined {
    return this.isAdminKey(presented) ? ADMIN_IDENTITY : this.clientIdentity(presented);
  }

  /** The non-secret ids and names of the configured client keys, for start-up logs. */
  describe(): { id: string; name: string; tier: Priority }[] {
    return [...this.clients.values()].map(({ identity }) => ({ id: identity.id, name: identity.name, tier: identity.tier }));
  }

  /** Every configured client identity (names, weights and caps), for the scheduler and metrics. */
  identities(): ClientIdentity[] {
    return [...this.clients.values()].map(({ identity }) => identity);
  }
}

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/**
 * The key a request presents: `Authorization: Bearer KEY` (what OpenAI SDKs send), else `X-API-Key`.
 * Returns undefined when neither header carries one.
 */
export function presentedKey(headers: Record<string, string | string[] | undefined>): string | undefined {
  const authorization = headers.authorization;
  if (typeof authorization === 'string') {
    const match = BEARER.exec(authorization);
    if (match) return match[1];
  }
  const apiKey = headers['x-api-key'];
  const value = Array.isArray(apiKey) ? apiKey[0] : apiKey;
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}
