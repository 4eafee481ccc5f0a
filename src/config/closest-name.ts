/** Edit distance (insertions, deletions, substitutions and adjacent swaps) between two short strings. */
function distance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/**
 * The valid name closest to a misspelt one (`weigth` → `weight`), or undefined when none is close
 * enough to be a plausible typo (more than a third of the name differs).
 */
export function closestName(wrong: string, valid: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const name of valid) {
    const d = distance(wrong.toLowerCase(), name.toLowerCase());
    if (d < bestDistance) {
      best = name;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= Math.max(1, Math.ceil(best.length / 3)) ? best : undefined;
}

/** "unknown field `weigth` (did you mean `weight`?)", or without the hint when nothing is close. */
export function unknownFieldProblem(path: string, field: string, valid: readonly string[]): string {
  const hint = closestName(field, valid);
  return `${path}unknown field \`${field}\`${hint ? ` (did you mean \`${hint}\`?)` : ` (allowed: ${valid.join(', ')})`}`;
}
