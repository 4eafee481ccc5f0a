import type { KeyTier } from './api-keys-file';
import { unknownFieldProblem } from './closest-name';

/** OpenAI's `service_tier` values that a key may be allowed (`auto` always means `default`). */
export type ServiceTierName = 'priority' | 'default' | 'flex';
export const SERVICE_TIER_NAMES: readonly ServiceTierName[] = ['priority', 'default', 'flex'];

/** Request and token limits of one client key, each across every instance; absent means unlimited. */
export interface KeyLimits {
  /** Requests a minute (overrides `RATE_LIMIT_RPM` for this key). */
  requestsPerMinute?: number;
  /** Tokens (prompt + completion) a minute, a continuously replenishing bucket. */
  tokensPerMinute?: number;
  /** Tokens a day, a continuously replenishing bucket. */
  tokensPerDay?: number;
}

/** What a tier (`tiers.<tier>`) or a key sets: its limits and the `service_tier` values it may use. */
export interface LimitSettings extends KeyLimits {
  serviceTiers?: ServiceTierName[];
}

export const LIMIT_FIELDS = ['requestsPerMinute', 'tokensPerMinute', 'tokensPerDay', 'serviceTiers'] as const;
const TIER_NAMES: readonly KeyTier[] = ['high', 'normal', 'low'];
const MAX_TOKENS_PER_PERIOD = 1e12;
const MAX_REQUESTS_PER_MINUTE = 1_000_000;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function wholeNumber(value: unknown, max: number): boolean {
  return Number.isInteger(value) && (value as number) >= 1 && (value as number) <= max;
}

/**
 * Checks the limit fields of a key entry or a tier (`raw`); pushes each problem, prefixed with `label`.
 * Fields other than the limits are the caller's to check.
 */
export function checkLimitSettings(raw: Record<string, unknown>, label: string, problems: string[]): LimitSettings {
  const problem = (what: string) => problems.push(`${label}: ${what}`);
  const settings: LimitSettings = {};
  if (raw.requestsPerMinute !== undefined) {
    if (wholeNumber(raw.requestsPerMinute, MAX_REQUESTS_PER_MINUTE)) settings.requestsPerMinute = raw.requestsPerMinute as number;
    else problem(`requestsPerMinute must be an integer from 1 to ${MAX_REQUESTS_PER_MINUTE}`);
  }
  for (const field of ['tokensPerMinute', 'tokensPerDay'] as const) {
    if (raw[field] === undefined) continue;
    if (wholeNumber(raw[field], MAX_TOKENS_PER_PERIOD)) settings[field] = raw[field] as number;
    else problem(`${field} must be an integer from 1 to ${MAX_TOKENS_PER_PERIOD}`);
  }
  if (raw.serviceTiers !== undefined) {
    const list = raw.serviceTiers;
    const valid = Array.isArray(list) && list.length > 0 && list.every((t) => typeof t === 'string' && (SERVICE_TIER_NAMES as readonly string[]).includes(t));
    if (!valid || new Set(list as string[]).size !== (list as string[]).length) {
      problem('serviceTiers must be a non-empty list of distinct values from priority, default, flex');
    } else {
      settings.serviceTiers = list as ServiceTierName[];
    }
  }
  return settings;
}

/**
 * Reads the optional top-level `tiers` mapping of `API_KEYS_FILE`: per key tier (high, normal, low), the
 * limits and service tiers that its keys get unless they set their own.
 */
export function checkTierSettings(raw: unknown, problems: string[]): Partial<Record<KeyTier, LimitSettings>> {
  if (raw === undefined) return {};
  if (!isRecord(raw)) {
    problems.push('tiers: must be a mapping of high, normal and low to their limits');
    return {};
  }
  const tiers: Partial<Record<KeyTier, LimitSettings>> = {};
  for (const [name, value] of Object.entries(raw)) {
    if (!(TIER_NAMES as readonly string[]).includes(name)) {
      problems.push(unknownFieldProblem('tiers: ', name, TIER_NAMES));
      continue;
    }
    const label = `tiers.${name}`;
    if (!isRecord(value)) {
      problems.push(`${label}: must be a mapping with ${LIMIT_FIELDS.join(', ')}`);
      continue;
    }
    for (const field of Object.keys(value)) {
      if (!(LIMIT_FIELDS as readonly string[]).includes(field)) problems.push(unknownFieldProblem(`${label}: `, field, LIMIT_FIELDS));
    }
    tiers[name as KeyTier] = checkLimitSettings(value, label, problems);
  }
  return tiers;
}

/** The service tiers a key may use when neither it nor its tier lists them: `priority` only for a high key. */
export function defaultServiceTiers(tier: KeyTier): ServiceTierName[] {
  return tier === 'high' ? ['priority', 'default', 'flex'] : ['default', 'flex'];
}

/** A key's own settings over its tier's: the limits it ends up with (only those set) and its service tiers. */
export function resolveLimitSettings(tier: KeyTier, own: LimitSettings, ofTier: LimitSettings | undefined): { limits?: KeyLimits; serviceTiers: ServiceTierName[] } {
  const limits: KeyLimits = {};
  for (const field of ['requestsPerMinute', 'tokensPerMinute', 'tokensPerDay'] as const) {
    const value = own[field] ?? ofTier?.[field];
    if (value !== undefined) limits[field] = value;
  }
  const serviceTiers = own.serviceTiers ?? ofTier?.serviceTiers ?? defaultServiceTiers(tier);
  return Object.keys(limits).length > 0 ? { limits, serviceTiers } : { serviceTiers };
}
