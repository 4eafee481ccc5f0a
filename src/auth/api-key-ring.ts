import { createHash, timingSafeEqual } from 'node:crypto';
import type { Priority } from '../adaptive/graduated-rejection';
import type { ClientIdentity } from '../common/request-context';

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
export const ADMIN_IDENTITY: ClientIdentity = Object.freeze({ id: 'admin', tier: 'high', admin: true });

/** The identity of every caller while `API_KEYS` is unset. */
export const ANONYMOUS_IDENTITY: ClientIdentity = Object.freeze({ id: 'anonymous', tier: 'high', admin: false });

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
 * The configured client keys and the admin key, held only as SHA-256 digests computed once.
 *
 * A presented key is hashed and compared with `timingSafeEqual`. The map lookup by digest is safe:
 * its timing depends on the digest of what the caller sent, which the caller cannot steer toward a
 * configured key, so it reveals nothing about the keys themselves.
 */
export class ApiKeyRing {
  private readonly clients = new Map<string, KeyRecord>();
  private readonly adminDigest?: Buffer;

  constructor(entries: readonly ApiKeyEntry[], adminKey?: string) {
    const ids = new Set<string>();
    for (const [index, { key, tier }] of entries.entries()) {
      const digest = sha256(key);
      const id = clientIdOf(key);
      // Jobs and rate-limit buckets are keyed by id: two keys sharing one would share them.
      if (ids.has(id)) throw new Error(`API_KEYS entry ${index + 1} has the same id (${id}) as an earlier key; replace one of them`);
      ids.add(id);
      this.clients.set(digest.toString('hex'), { digest, identity: Object.freeze({ id, tier, admin: false }) });
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

  /** The non-secret ids of the configured client keys, for start-up logs. */
  describe(): { id: string; tier: Priority }[] {
    return [...this.clients.values()].map(({ identity }) => ({ id: identity.id, tier: identity.tier }));
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
