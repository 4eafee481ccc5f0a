/**
 * Deterministic JSON values for the simulator's structured answers (tool arguments, `json_schema`
 * output): valid for the common JSON Schema keywords that tool and output schemas use, and the same
 * for the same request every time.
 */

import { SeededRandomSource } from '../common/random';

type Schema = Record<string, unknown>;

/** The shared seeded generator (mulberry32), with the draws the sampler needs. */
export class SeededRandom extends SeededRandomSource {
  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }
}

/** FNV-1a hash of a value's JSON: the seed that makes an answer a function of its request. */
export function seedOf(value: unknown): number {
  const text = JSON.stringify(value) ?? '';
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

const WORDS = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet'];
const MAX_DEPTH = 8;

const isSchema = (value: unknown): value is Schema => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The schema's type, the first non-null one when it lists several, inferred from its keywords when absent. */
function typeOf(schema: Schema): string | undefined {
  const type = schema.type;
  if (typeof type === 'string') return type;
  if (Array.isArray(type)) return (type.find((t) => t !== 'null') ?? type[0]) as string | undefined;
  if (isSchema(schema.properties)) return 'object';
  if (schema.items !== undefined) return 'array';
  return undefined;
}

/** Follows a local `$ref` (`#/$defs/x`, `#/definitions/x`) against the root schema. */
function resolve(schema: Schema, root: Schema): Schema {
  const ref = schema.$ref;
  if (typeof ref !== 'string' || !ref.startsWith('#')) return schema;
  let target: unknown = root;
  for (const part of ref.slice(1).split('/').filter(Boolean)) target = isSchema(target) ? target[part.replace(/~1/g, '/').replace(/~0/g, '~')] : undefined;
  return isSchema(target) ? target : {};
}

function sampleString(schema: Schema, random: SeededRandom, name: string): string {
  switch (schema.format) {
    case 'date':
      return `2024-0${random.int(1, 9)}-1${random.int(0, 9)}`;
    case 'date-time':
      return `2024-0${random.int(1, 9)}-1${random.int(0, 9)}T12:00:00Z`;
    case 'email':
      return `${random.pick(WORDS)}@example.com`;
    case 'uri':
    case 'url':
      return `https://example.com/${random.pick(WORDS)}`;
    case 'uuid':
      return '00000000-0000-4000-8000-' + String(random.int(0, 999_999_999_999)).padStart(12, '0');
  }
  const min = typeof schema.minLength === 'number' ? schema.minLength : 0;
  const max = typeof schema.maxLength === 'number' ? schema.maxLength : Number.POSITIVE_INFINITY;
  let text = `${name ? `${name} ` : ''}${random.pick(WORDS)}`;
  while (text.length < min) text += ` ${random.pick(WORDS)}`;
  return text.slice(0, Math.max(min, Math.min(max, text.length)));
}

function sampleNumber(schema: Schema, random: SeededRandom, integer: boolean): number {
  const lower = typeof schema.minimum === 'number' ? schema.minimum : typeof schema.exclusiveMinimum === 'number' ? schema.exclusiveMinimum + 1 : 0;
  const upper = typeof schema.maximum === 'number' ? schema.maximum : typeof schema.exclusiveMaximum === 'number' ? schema.exclusiveMaximum - 1 : lower + 100;
  const low = integer ? Math.ceil(lower) : lower;
  const high = Math.max(low, integer ? Math.floor(upper) : upper);
  return integer ? random.int(low, high) : Math.round((low + random.next() * (high - low)) * 100) / 100;
}

function sample(schema: Schema, root: Schema, random: SeededRandom, name: string, depth: number): unknown {
  schema = resolve(schema, root);
  if ('const' in schema) return schema.const;
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return random.pick(schema.enum);
  for (const key of ['anyOf', 'oneOf'] as const) {
    const options = (schema[key] as unknown[] | undefined)?.filter(isSchema);
    if (options && options.length > 0) {
      // A nullable field (`anyOf: [{type: X}, {type: 'null'}]`) gets its real type.
      return sample(options.find((o) => o.type !== 'null') ?? options[0], root, random, name, depth);
    }
  }
  if (Array.isArray(schema.allOf)) {
    const { allOf, ...own } = schema;
    return sample(mergeAll([...(allOf as unknown[]).filter(isSchema).map((s) => resolve(s, root)), own]), root, random, name, depth);
  }
  switch (typeOf(schema)) {
    case 'string':
      return sampleString(schema, random, name);
    case 'integer':
      return sampleNumber(schema, random, true);
    case 'number':
      return sampleNumber(schema, random, false);
    case 'boolean':
      return random.next() < 0.5;
    case 'null':
      return null;
    case 'array': {
      if (depth >= MAX_DEPTH) return [];
      const items = isSchema(schema.items) ? schema.items : {};
      const min = typeof schema.minItems === 'number' ? schema.minItems : 1;
      const max = typeof schema.maxItems === 'number' ? schema.maxItems : Math.max(min, 2);
      const count = random.int(min, Math.max(min, Math.min(max, min + 2)));
      return Array.from({ length: count }, () => sample(items, root, random, name, depth + 1));
    }
    case 'object':
      return depth >= MAX_DEPTH ? {} : sampleObject(schema, root, random, depth);
    default:
      return sampleString(schema, random, name);
  }
}

/** `allOf` as one schema: later keywords win, but `properties` and `required` add up. */
function mergeAll(schemas: Schema[]): Schema {
  const merged: Schema = {};
  const properties: Schema = {};
  const required: unknown[] = [];
  for (const part of schemas) {
    Object.assign(merged, part);
    if (isSchema(part.properties)) Object.assign(properties, part.properties);
    if (Array.isArray(part.required)) required.push(...part.required);
  }
  if (Object.keys(properties).length > 0) merged.properties = properties;
  if (required.length > 0) merged.required = [...new Set(required)];
  return merged;
}

function sampleObject(schema: Schema, root: Schema, random: SeededRandom, depth: number): Record<string, unknown> {
  const properties = isSchema(schema.properties) ? schema.properties : {};
  const required = new Set(Array.isArray(schema.required) ? schema.required.filter((r): r is string => typeof r === 'string') : []);
  const result: Record<string, unknown> = {};
  // Every declared property (strict schemas require them all); required ones that are not declared as well.
  for (const [key, child] of Object.entries(properties)) result[key] = sample(isSchema(child) ? child : {}, root, random, key, depth + 1);
  for (const key of required) if (!(key in result)) result[key] = sampleString({}, random, key);
  return result;
}

/**
 * A value valid for `schema` (types, required and declared properties, enums, const, bounds, nested
 * objects and arrays, local `$ref`s, `anyOf`/`oneOf`/`allOf`), determined by `seed`. A schema that is
 * not an object yields an empty object, as a tool without parameters takes.
 */
export function sampleJson(schema: unknown, seed: number): unknown {
  if (!isSchema(schema)) return {};
  return sample(schema, schema, new SeededRandom(seed), '', 0);
}
