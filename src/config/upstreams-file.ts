import { readFileSync } from 'node:fs';
import { plainToInstance, Type } from 'class-transformer';
import {
  ArrayMinSize,
  IsArray,
  IsInt,
  IsNumber,
  IsObject,
  IsOptional,
  IsString,
  Matches,
  Max,
  Min,
  ValidateNested,
  validateSync,
  ValidationError,
} from 'class-validator';
import { parse as parseYaml } from 'yaml';
import { closestName } from './closest-name';
import { ConfigurationError } from './environment';

/** Written as an upstream's whole model list, it sends that upstream any model it is asked for. */
export const ANY_MODEL = '*';
const TOP_LEVEL_KEYS = ['upstreams', 'fallbacks', 'hedge'];
const HEDGE_KEYS = ['minDelayMs', 'maxDelayMs'];
/** Hedge delay bounds when a model's `hedge` entry leaves them out. */
export const DEFAULT_HEDGE = { minDelayMs: 50, maxDelayMs: 2000 };
const UPSTREAM_KEYS = ['name', 'url', 'apiKeyEnv', 'models', 'maxConcurrency', 'weight'];

class UpstreamEntry {
  @IsString() @Matches(/^[A-Za-z0-9_.-]{1,64}$/, { message: 'name must be 1-64 letters, digits, _ . -' })
  name!: string;

  @IsString() @Matches(/^https?:\/\/[^\s]+$/, { message: 'url must be an http(s) base URL including /v1' })
  url!: string;

  @IsOptional() @IsString() @Matches(/^[A-Z_][A-Z0-9_]*$/, { message: 'apiKeyEnv must name an environment variable' })
  apiKeyEnv?: string;

  // Missing and empty lists are reported with how to write them (see loadUpstreamsFile).
  @IsOptional() @IsArray() @IsString({ each: true })
  models?: string[];

  @IsOptional() @IsInt() @Min(1) @Max(10_000)
  maxConcurrency?: number;

  @IsOptional() @IsNumber() @Min(0) @Max(1000)
  weight?: number;
}

class UpstreamsFile {
  @IsArray() @ArrayMinSize(1) @ValidateNested({ each: true }) @Type(() => UpstreamEntry)
  upstreams!: UpstreamEntry[];

  @IsOptional() @IsObject()
  fallbacks?: Record<string, string[]>;

  @IsOptional() @IsObject()
  hedge?: Record<string, unknown>;
}

/**
 * A model's hedging: when an attempt has sent no byte after the model's observed p95 time to first
 * byte, bounded to [minDelayMs, maxDelayMs], one more attempt starts on another of its upstreams.
 */
export interface HedgePolicy {
  minDelayMs: number;
  maxDelayMs: number;
}

/** One upstream as the rest of Bulwark sees it: the key is resolved, never logged. */
export interface UpstreamDefinition {
  name: string;
  /** Base URL including the API prefix, e.g. `http://vllm:8000/v1`. */
  baseUrl: string;
  apiKey?: string;
  /**
   * Models it serves; empty means "whatever it is asked for" (a single UPSTREAM_URL, or `models: ["*"]`
   * in UPSTREAMS_FILE).
   */
  models: string[];
  maxConcurrency?: number;
  weight: number;
}

export interface UpstreamTopology {
  upstreams: UpstreamDefinition[];
  fallbacks: Record<string, string[]>;
  /** Models whose attempts are hedged (absent: none). */
  hedge?: Record<string, HedgePolicy>;
}

function flatten(errors: ValidationError[], prefix = ''): string[] {
  return errors.flatMap((e) => {
    const path = /^\d+$/.test(e.property) ? `${prefix}[${e.property}]` : prefix ? `${prefix}.${e.property}` : e.property;
    const own = Object.values(e.constraints ?? {}).map((m) => `${path}: ${m}`);
    return [...own, ...flatten(e.children ?? [], path)];
  });
}

/**
 * Reads and validates `UPSTREAMS_FILE` (JSON or YAML). `env` supplies the keys named by `apiKeyEnv`.
 * Throws a ConfigurationError naming the file and each problem.
 */
export function loadUpstreamsFile(path: string, env: Record<string, string | undefined>): UpstreamTopology {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigurationError(`Invalid configuration: UPSTREAMS_FILE=${JSON.stringify(path)}: cannot read it (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let raw: unknown;
  try {
    raw = /\.json$/i.test(path) ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new ConfigurationError(`Invalid configuration: UPSTREAMS_FILE=${JSON.stringify(path)}: not valid JSON or YAML (${(error as Error).message.split('\n')[0]})`);
  }
  if (raw !== null && raw !== undefined && (typeof raw !== 'object' || Array.isArray(raw))) {
    throw new ConfigurationError(`Invalid configuration: UPSTREAMS_FILE=${JSON.stringify(path)}: must hold a mapping with an \`upstreams\` list, not ${Array.isArray(raw) ? 'a list' : `a ${typeof raw}`}`);
  }
  const problems = unknownKeys(raw);
  const file = plainToInstance(UpstreamsFile, raw ?? {});
  problems.push(...flatten(validateSync(file)));
  const names = new Set<string>();
  const served = new Set<string>();
  let servesAny = false;
  /** False when a model list is itself wrong: fallbacks are then not checked against it. */
  let modelsKnown = true;
  // Entries of the wrong shape are already reported by the validation above.
  (Array.isArray(file.upstreams) ? file.upstreams : []).forEach((u, i) => {
    if (u === null || typeof u !== 'object') return;
    if (names.has(u.name)) problems.push(`upstreams: duplicate name ${u.name}`);
    names.add(u.name);
    if (u.apiKeyEnv && !env[u.apiKeyEnv]) problems.push(`upstreams[${i}] (${u.name}).apiKeyEnv: ${u.apiKeyEnv} is not set`);
    const problem = modelsProblem(u.models);
    if (problem || !Array.isArray(u.models)) {
      if (problem) problems.push(`upstreams[${i}] (${u.name}).models: ${problem}`);
      modelsKnown = false;
    } else if (u.models[0] === ANY_MODEL) servesAny = true;
    else u.models.forEach((m) => served.add(m));
  });
  for (const [model, list] of Object.entries(file.fallbacks ?? {})) {
    if (!Array.isArray(list) || list.some((m) => typeof m !== 'string')) {
      problems.push(`fallbacks.${model}: must be a list of model names`);
      continue;
    }
    if (servesAny || !modelsKnown) continue;
    for (const name of [model, ...list].filter((m) => !served.has(m))) {
      const guess = closestName(name, [...served]);
      problems.push(`fallbacks.${model}: no upstream serves model \`${name}\`${guess ? `; did you mean \`${guess}\`?` : ''} (served: ${[...served].join(', ') || 'none'})`);
    }
  }
  const hedge = readHedge(raw, problems, (model) => {
    if (!modelsKnown) return undefined;
    return servesAny ? Number.POSITIVE_INFINITY : file.upstreams.filter((u) => Array.isArray(u.models) && u.models.includes(model)).length;
  });
  if (problems.length > 0) {
    throw new ConfigurationError(`Invalid configuration: UPSTREAMS_FILE=${JSON.stringify(path)}: ${problems.join('; ')}`);
  }
  return {
    ...(hedge ? { hedge } : {}),
    upstreams: file.upstreams.map((u) => ({
      name: u.name,
      baseUrl: u.url.replace(/\/+$/, ''),
      apiKey: u.apiKeyEnv ? env[u.apiKeyEnv] : undefined,
      models: u.models![0] === ANY_MODEL ? [] : u.models!,
      maxConcurrency: u.maxConcurrency,
      weight: u.weight ?? 1,
    })),
    fallbacks: file.fallbacks ?? {},
  };
}

/**
 * The `hedge` mapping (model → `{minDelayMs?, maxDelayMs?}`), its problems pushed to `problems`.
 * `upstreamsServing` counts a model's upstreams (undefined when the model lists are wrong themselves):
 * a hedge goes to another upstream, so a hedged model needs two.
 */
function readHedge(raw: unknown, problems: string[], upstreamsServing: (model: string) => number | undefined): Record<string, HedgePolicy> | undefined {
  const section = (raw as { hedge?: unknown } | null)?.hedge;
  if (section === undefined || section === null) return undefined;
  if (typeof section !== 'object' || Array.isArray(section)) return undefined; // reported by the validation
  const policies: Record<string, HedgePolicy> = {};
  for (const [model, entry] of Object.entries(section as Record<string, unknown>)) {
    const where = `hedge.${model}`;
    if (entry !== null && (typeof entry !== 'object' || Array.isArray(entry))) {
      problems.push(`${where}: must be a mapping such as {minDelayMs: 50, maxDelayMs: 2000} (or {} for those defaults)`);
      continue;
    }
    const fields = (entry ?? {}) as Record<string, unknown>;
    for (const key of Object.keys(fields).filter((k) => !HEDGE_KEYS.includes(k))) {
      const guess = closestName(key, HEDGE_KEYS);
      problems.push(`unknown key \`${key}\` in ${where}${guess ? `; did you mean \`${guess}\`?` : ` (valid: ${HEDGE_KEYS.join(', ')})`}`);
    }
    const policy = { ...DEFAULT_HEDGE };
    for (const key of HEDGE_KEYS as (keyof HedgePolicy)[]) {
      const value = fields[key];
      if (value === undefined) continue;
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 600_000) problems.push(`${where}.${key}: must be a whole number of milliseconds from 1 to 600000`);
      else policy[key] = value;
    }
    if (policy.minDelayMs > policy.maxDelayMs) problems.push(`${where}: minDelayMs (${policy.minDelayMs}) must be at most maxDelayMs (${policy.maxDelayMs})`);
    const serving = upstreamsServing(model);
    if (serving !== undefined && serving < 2) {
      problems.push(`${where}: a hedge goes to another upstream of the model, but ${serving === 0 ? 'no upstream serves' : 'only one upstream serves'} \`${model}\``);
    }
    policies[model] = policy;
  }
  return policies;
}

/** Keys the file format does not have, each with the valid key it most likely meant. */
function unknownKeys(raw: unknown): string[] {
  const problems: string[] = [];
  const check = (value: unknown, allowed: string[], where: string) => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return;
    for (const key of Object.keys(value)) {
      if (allowed.includes(key)) continue;
      const guess = closestName(key, allowed);
      problems.push(`unknown key \`${key}\` in ${where}${guess ? `; did you mean \`${guess}\`?` : ` (valid: ${allowed.join(', ')})`}`);
    }
  };
  check(raw, TOP_LEVEL_KEYS, 'the top level');
  const upstreams = (raw as { upstreams?: unknown } | null)?.upstreams;
  if (Array.isArray(upstreams)) upstreams.forEach((u, i) => check(u, UPSTREAM_KEYS, `upstreams[${i}]`));
  return problems;
}

/** What is wrong with an upstream's model list, if anything: it must name models, or be exactly ["*"]. */
function modelsProblem(models: unknown): string | undefined {
  const howTo = `list the models it serves (models: [llama-3.1-8b]), or write models: ["${ANY_MODEL}"] to send it any model`;
  if (models === undefined || models === null) return `missing: ${howTo}`;
  if (!Array.isArray(models)) return undefined; // reported by the validation
  if (models.length === 0) return `empty: ${howTo}`;
  if (models.includes(ANY_MODEL) && models.length > 1) return `"${ANY_MODEL}" (any model) must stand alone: ${howTo}`;
  return undefined;
}
