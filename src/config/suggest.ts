// "did you mean `vdev`?": the closest known word by edit distance (optimal string alignment,
// so a swapped pair of letters counts as one edit).

/** Optimal-string-alignment distance: insertions, deletions, substitutions, adjacent transpositions. */
export function editDistance(a: string, b: string): number {
  const n = a.length;
  const m = b.length;
  const d: number[][] = Array.from({ length: n + 1 }, (_, i) => Array.from({ length: m + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= n; i++) {
    for (let j = 1; j <= m; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[n]![m]!;
}

const fold = (s: string) => s.toLowerCase().replace(/[-_ ]/g, '');

/**
 * The known word closest to `word`, or undefined when none is close: same letters ignoring case,
 * `-` and `_` (direct_io -> directIo), else at most 1 edit for words up to 4 letters, 2 up to 8, 3 beyond.
 */
export function suggest(word: string, known: readonly string[]): string | undefined {
  if (word.length > 64) return undefined;
  const folded = known.find((k) => fold(k) === fold(word));
  if (folded !== undefined) return folded;
  const limit = word.length <= 4 ? 1 : word.length <= 8 ? 2 : 3;
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const dist = editDistance(word.toLowerCase(), k.toLowerCase());
    if (dist <= limit && dist < bestD) {
      best = k;
      bestD = dist;
    }
  }
  return best;
}
