/** Label for a model that is not known: keeps request input out of label values. */
export const OTHER_MODEL = 'other';
/** Label for requests that name no model (GET routes, health, metrics). */
export const NO_MODEL = 'none';
/** Label for requests that matched no route. */
export const UNMATCHED_ROUTE = 'unmatched';

/**
 * Bounds the `model` label. Models named in the configuration are known from the start; an upstream
 * that accepts any model (a bare `UPSTREAM_URL`) teaches its models one by one when it *succeeds* with
 * them, up to `maxLearned`, so a client inventing model names cannot grow the label set: every name
 * not known becomes {@link OTHER_MODEL}.
 */
export class ModelLabels {
  private readonly known: Set<string>;
  private learned = 0;

  constructor(
    configured: readonly string[],
    private readonly maxLearned = 50,
  ) {
    this.known = new Set(configured);
  }

  /** Marks a model as real because an upstream served it; ignored beyond `maxLearned`. */
  learn(model: string): void {
    if (this.known.has(model) || this.learned >= this.maxLearned || !isPlausibleModel(model)) return;
    this.known.add(model);
    this.learned++;
  }

  /** The label value for `model`, which may be anything a client sent. */
  label(model: unknown): string {
    if (model === undefined || model === null || model === '') return NO_MODEL;
    return typeof model === 'string' && this.known.has(model) ? model : OTHER_MODEL;
  }
}

/** Model ids are short printable tokens; anything else is never learned (it could be a pasted secret). */
function isPlausibleModel(model: string): boolean {
  return /^[\x21-\x7e]{1,128}$/.test(model) && model !== OTHER_MODEL && model !== NO_MODEL;
}

/** The route label: the route's pattern (`/v1/jobs/:id`), never the requested path. */
export function routeLabel(pattern: string | undefined): string {
  return pattern && pattern.startsWith('/') ? pattern : UNMATCHED_ROUTE;
}

/**
 * The status label: the status sent, or `499` (nginx's "client closed request") when the client left
 * before any response header went out.
 */
export function statusLabel(statusCode: number, headersSent: boolean): string {
  return headersSent ? String(statusCode) : '499';
}
