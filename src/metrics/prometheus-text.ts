/** One sample line of the Prometheus text exposition format. */
export interface PrometheusSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A line that is neither a comment, a blank line nor a valid sample. */
export class PrometheusFormatError extends Error {
  override readonly name = 'PrometheusFormatError';
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;

/**
 * Parses Prometheus text format (version 0.0.4) into samples. Comments (`# HELP`, `# TYPE`, …) and blank
 * lines are skipped. With `strict`, a malformed line throws {@link PrometheusFormatError}; otherwise it
 * is skipped, which is what a poller of someone else's server wants.
 */
export function parsePrometheusText(text: string, options: { strict?: boolean } = {}): PrometheusSample[] {
  const samples: PrometheusSample[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].replace(/\r$/, '');
    if (line.trim() === '' || line.startsWith('#')) continue;
    const sample = parseSampleLine(line);
    if (sample) samples.push(sample);
    else if (options.strict) throw new PrometheusFormatError(`line ${i + 1} is not a Prometheus sample: ${JSON.stringify(line.slice(0, 200))}`);
  }
  return samples;
}

/** `name{label="value",…} value [timestamp]`, or undefined when the line is malformed. */
function parseSampleLine(line: string): PrometheusSample | undefined {
  const nameMatch = NAME.exec(line);
  if (!nameMatch) return undefined;
  const name = nameMatch[0];
  let rest = line.slice(name.length);
  const labels: Record<string, string> = {};
  if (rest.startsWith('{')) {
    const parsed = parseLabels(rest);
    if (!parsed) return undefined;
    Object.assign(labels, parsed.labels);
    rest = rest.slice(parsed.length);
  }
  const parts = rest.trim().split(/\s+/);
  if (!/^\s/.test(rest) || parts.length < 1 || parts.length > 2) return undefined;
  const value = parseValue(parts[0]);
  if (value === undefined) return undefined;
  if (parts.length === 2 && !/^-?\d+$/.test(parts[1])) return undefined;
  return { name, labels, value };
}

/** Reads `{a="x",b="y"}` from the start of `text`; returns the labels and the characters consumed. */
function parseLabels(text: string): { labels: Record<string, string>; length: number } | undefined {
  const labels: Record<string, string> = {};
  let i = 1;
  for (;;) {
    if (text[i] === '}') return { labels, length: i + 1 };
    const nameMatch = LABEL_NAME.exec(text.slice(i));
    if (!nameMatch) return undefined;
    i += nameMatch[0].length;
    if (text[i] !== '=' || text[i + 1] !== '"') return undefined;
    i += 2;
    let value = '';
    while (i < text.length && text[i] !== '"') {
      if (text[i] === '\\') {
        const next = text[i + 1];
        if (next === 'n') value += '\n';
        else if (next === '\\' || next === '"') value += next;
        else return undefined;
        i += 2;
      } else {
        value += text[i++];
      }
    }
    if (i >= text.length) return undefined;
    i++; // closing quote
    labels[nameMatch[0]] = value;
    if (text[i] === ',') i++;
    else if (text[i] !== '}') return undefined;
  }
}

/** Go's ParseFloat, which Prometheus uses, takes NaN and Inf in any case (prom-client writes `Nan`). */
function parseValue(raw: string): number | undefined {
  const word = raw.toLowerCase();
  if (word === 'nan') return Number.NaN;
  if (/^\+?inf(inity)?$/.test(word)) return Number.POSITIVE_INFINITY;
  if (/^-inf(inity)?$/.test(word)) return Number.NEGATIVE_INFINITY;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(raw)) return undefined;
  return Number(raw);
}
