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
const TOP_LEVEL_KEYS = ['upstreams', 'fallbacks'];
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
  if (problems.length > 0) {
    throw new ConfigurationError(`Invalid configuration: UPSTREAMS_FILE=${JSON.stringify(path)}: ${problems.join('; ')}`);
  }
  return {
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
