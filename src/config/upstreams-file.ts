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
import { ConfigurationError } from './environment';

class UpstreamEntry {
  @IsString() @Matches(/^[A-Za-z0-9_.-]{1,64}$/, { message: 'name must be 1-64 letters, digits, _ . -' })
  name!: string;

  @IsString() @Matches(/^https?:\/\/[^\s]+$/, { message: 'url must be an http(s) base URL including /v1' })
  url!: string;

  @IsOptional() @IsString() @Matches(/^[A-Z_][A-Z0-9_]*$/, { message: 'apiKeyEnv must name an environment variable' })
  apiKeyEnv?: string;

  @IsArray() @IsString({ each: true })
  models: string[] = [];

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
  /** Models it serves; empty means "whatever it is asked for" (a single UPSTREAM_URL). */
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
    const path = prefix ? `${prefix}.${e.property}` : e.property;
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
  const file = plainToInstance(UpstreamsFile, raw ?? {});
  const problems = flatten(validateSync(file));
  const names = new Set<string>();
  // Entries of the wrong shape are already reported by the validation above.
  for (const u of Array.isArray(file.upstreams) ? file.upstreams : []) {
    if (u === null || typeof u !== 'object') continue;
    if (names.has(u.name)) problems.push(`upstreams: duplicate name ${u.name}`);
    names.add(u.name);
    if (u.apiKeyEnv && !env[u.apiKeyEnv]) problems.push(`upstreams.${u.name}.apiKeyEnv: ${u.apiKeyEnv} is not set`);
  }
  for (const [model, list] of Object.entries(file.fallbacks ?? {})) {
    if (!Array.isArray(list) || list.some((m) => typeof m !== 'string')) problems.push(`fallbacks.${model}: must be a list of model names`);
  }
  if (problems.length > 0) {
    throw new ConfigurationError(`Invalid configuration: UPSTREAMS_FILE=${JSON.stringify(path)}: ${problems.join('; ')}`);
  }
  return {
    upstreams: file.upstreams.map((u) => ({
      name: u.name,
      baseUrl: u.url.replace(/\/+$/, ''),
      apiKey: u.apiKeyEnv ? env[u.apiKeyEnv] : undefined,
      models: u.models,
      maxConcurrency: u.maxConcurrency,
      weight: u.weight ?? 1,
    })),
    fallbacks: file.fallbacks ?? {},
  };
}
