/** Edit distance between two words (insertions, deletions, substitutions and swaps of neighbours each cost 1). */
export function editDistance(a: string, b: string): number {
  const rows: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) rows[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      rows[i][j] = Math.min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) rows[i][j] = Math.min(rows[i][j], rows[i - 2][j - 2] + 1);
    }
  }
  return rows[a.length][b.length];
}

/**
 * The candidate a mistyped `word` most likely meant (case ignored), or undefined when none is close:
 * at most a third of the word's letters (and at least 2) may differ.
 */
export function closestName(word: string, candidates: readonly string[]): string | undefined {
  const lower = word.toLowerCase();
  const limit = Math.max(2, Math.floor(word.length / 3));
  let best: { name: string; distance: number } | undefined;
  for (const name of candidates) {
    const distance = editDistance(lower, name.toLowerCase());
    if (distance <= limit && (!best || distance < best.distance)) best = { name, distance };
  }
  return best?.name;
}

/** "unknown field `weigth` (did you mean `weight`?)", or without the hint when nothing is close. */
export function unknownFieldProblem(path: string, field: string, valid: readonly string[]): string {
  const hint = closestName(field, valid);
  return `${path}unknown field \`${field}\`${hint ? ` (did you mean \`${hint}\`?)` : ` (allowed: ${valid.join(', ')})`}`;
}
