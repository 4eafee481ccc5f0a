import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { unknownFieldProblem } from './closest-name';
import { ConfigurationError } from './environment';
import { checkLimitSettings, checkTierSettings, KeyLimits, LIMIT_FIELDS, LimitSettings, resolveLimitSettings, ServiceTierName } from './key-limits';

export type KeyTier = 'high' | 'normal' | 'low';

/**
 * One client key of `API_KEYS_FILE` as the rest of Bulwark sees it: the key itself is never kept,
 * only its SHA-256 digest (hex), whether the file gave the hash or named a variable holding the key.
 */
export interface ClientKeyDefinition {
  /** The configured name: non-secret, used in logs and metric labels. */
  name: string;
  tier: KeyTier;
  /** Relative share within a priority (default 1). */
  weight: number;
  /** Most requests of this key running at once, across instances. */
  maxConcurrent?: number;
  /** Largest fraction (0-1] of `MAX_QUEUE_SIZE` this key may hold waiting. */
  maxQueueShare?: number;
  /** SHA-256 of the key, lowercase hex. */
  digest: string;
  /** Request and token limits (its own over its tier's); absent when it has none. */
  limits?: KeyLimits;
  /** The `service_tier` values it may ask for (its own list, else its tier's, else by its tier). */
  serviceTiers?: ServiceTierName[];
}

const TOP_FIELDS = ['keys', 'tiers'] as const;
const ENTRY_FIELDS = ['name', 'tier', 'weight', 'maxConcurrent', 'maxQueueShare', 'keyHash', 'keyEnv', ...LIMIT_FIELDS] as const;
const TIERS: readonly string[] = ['high', 'normal', 'low'];
const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const HASH = /^sha256:([0-9a-fA-F]{64})$/;
const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** SHA-256 of a key, lowercase hex: the form in which `API_KEYS_FILE` stores keys (`sha256:<hex>`). */
export function keyDigest(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

function readStructured(path: string): unknown {
  const where = `API_KEYS_FILE=${JSON.stringify(path)}`;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigurationError(`Invalid configuration: ${where}: cannot read it (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    return /\.json$/i.test(path) ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new ConfigurationError(`Invalid configuration: ${where}: not valid JSON or YAML (${(error as Error).message.split('\n')[0]})`);
  }
}

/** Checks one entry; pushes its problems (never a key) and returns the definition when it has none. */
function checkEntry(
  raw: unknown,
  index: number,
  env: Record<string, string | undefined>,
  tiers: Partial<Record<KeyTier, LimitSettings>>,
  problems: string[],
): ClientKeyDefinition | undefined {
  const label = isRecord(raw) && typeof raw.name === 'string' && NAME.test(raw.name) ? `keys[${index}] (${raw.name})` : `keys[${index}]`;
  if (!isRecord(raw)) {
    problems.push(`${label}: must be a mapping with name and keyHash or keyEnv`);
    return undefined;
  }
  const before = problems.length;
  const problem = (what: string) => problems.push(`${label}: ${what}`);
  for (const field of Object.keys(raw)) {
    if (!(ENTRY_FIELDS as readonly string[]).includes(field)) problems.push(unknownFieldProblem(`${label}: `, field, ENTRY_FIELDS));
  }
  if (typeof raw.name !== 'string' || !NAME.test(raw.name)) problem('name must be 1-64 letters, digits, _ . -');
  if (raw.tier !== undefined && (typeof raw.tier !== 'string' || !TIERS.includes(raw.tier))) problem('tier must be high, normal or low');
  if (raw.weight !== undefined && !(typeof raw.weight === 'number' && raw.weight > 0 && raw.weight <= 1000)) problem('weight must be a number in (0, 1000]');
  if (raw.maxConcurrent !== undefined && !(Number.isInteger(raw.maxConcurrent) && (raw.maxConcurrent as number) >= 1 && (raw.maxConcurrent as number) <= 100_000)) {
    problem('maxConcurrent must be an integer from 1 to 100000');
  }
  if (raw.maxQueueShare !== undefined && !(typeof raw.maxQueueShare === 'number' && raw.maxQueueShare > 0 && raw.maxQueueShare <= 1)) {
    problem('maxQueueShare must be a fraction of MAX_QUEUE_SIZE in (0, 1]');
  }
  const own = checkLimitSettings(raw, label, problems);
  let digest: string | undefined;
  if ((raw.keyHash === undefined) === (raw.keyEnv === undefined)) {
    problem('give exactly one of keyHash (sha256:<64 hex digits>) or keyEnv (the name of an environment variable holding the key); never the key itself');
  } else if (raw.keyHash !== undefined) {
    const match = typeof raw.keyHash === 'string' ? HASH.exec(raw.keyHash) : null;
    if (match) digest = match[1].toLowerCase();
    else problem('keyHash must be sha256:<64 hex digits> (e.g. `printf %s "$KEY" | sha256sum`)');
  } else if (typeof raw.keyEnv !== 'string' || !ENV_NAME.test(raw.keyEnv)) {
    problem('keyEnv must name an environment variable (A-Z, 0-9, _)');
  } else {
    const key = env[raw.keyEnv];
    if (key === undefined || key.trim() === '') problem(`keyEnv: ${raw.keyEnv} is not set`);
    else digest = keyDigest(key.trim());
  }
  if (problems.length > before || digest === undefined) return undefined;
  const tier = (raw.tier as KeyTier | undefined) ?? 'normal';
  return {
    name: raw.name as string,
    tier,
    weight: (raw.weight as number | undefined) ?? 1,
    maxConcurrent: raw.maxConcurrent as number | undefined,
    maxQueueShare: raw.maxQueueShare as number | undefined,
    digest,
    ...resolveLimitSettings(tier, own, tiers[tier]),
  };
}

/**
 * Reads and strictly validates `API_KEYS_FILE` (JSON or YAML): `keys: [{name, tier?, weight?,
 * maxConcurrent?, maxQueueShare?, requestsPerMinute?, tokensPerMinute?, tokensPerDay?, serviceTiers?,
 * keyHash | keyEnv}]` and optional `tiers: {high|normal|low: {requestsPerMinute?, tokensPerMinute?,
 * tokensPerDay?, serviceTiers?}}`, the defaults of each tier's keys. `env` supplies the keys named by `keyEnv`.
 * Throws one ConfigurationError naming the file and every problem (unknown fields with the closest
 * valid name, bad values, repeated names or keys); no message ever holds a key.
 */
export function loadApiKeysFile(path: string, env: Record<string, string | undefined>, adminKey?: string): ClientKeyDefinition[] {
  const raw = readStructured(path);
  const where = `API_KEYS_FILE=${JSON.stringify(path)}`;
  if (!isRecord(raw)) {
    throw new ConfigurationError(`Invalid configuration: ${where}: must hold a mapping with a \`keys\` list, not ${Array.isArray(raw) ? 'a list' : raw === null || raw === undefined ? 'nothing' : `a ${typeof raw}`}`);
  }
  const problems: string[] = [];
  for (const field of Object.keys(raw)) {
    if (!(TOP_FIELDS as readonly string[]).includes(field)) problems.push(unknownFieldProblem('', field, TOP_FIELDS));
  }
  if (!Array.isArray(raw.keys) || raw.keys.length === 0) problems.push('keys: must be a non-empty list');
  const tiers = checkTierSettings(raw.tiers, problems);
  const entries = (Array.isArray(raw.keys) ? raw.keys : []).map((entry, index) => checkEntry(entry, index, env, tiers, problems));
  const names = new Map<string, number>();
  const digests = new Map<string, number>();
  const adminDigest = adminKey ? keyDigest(adminKey) : undefined;
  entries.forEach((entry, index) => {
    if (!entry) return;
    if (names.has(entry.name)) problems.push(`keys[${index}] (${entry.name}): repeats the name of keys[${names.get(entry.name)}]`);
    if (digests.has(entry.digest)) problems.push(`keys[${index}] (${entry.name}): is the same key as keys[${digests.get(entry.digest)}]`);
    if (entry.digest === adminDigest) problems.push(`keys[${index}] (${entry.name}): is the admin key (ADMIN_API_KEY); use a separate admin key`);
    names.set(entry.name, index);
    digests.set(entry.digest, index);
  });
  if (problems.length > 0) throw new ConfigurationError(`Invalid configuration: ${where}: ${problems.join('; ')}`);
  return entries as ClientKeyDefinition[];
}
