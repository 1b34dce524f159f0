// "did you mean": the nearest known name to a misspelt one. nix/lib/suggest.nix implements the same rule
// (same distance, same threshold, no suggestion on a tie) so that `nixfleet validate` and mkFleet print the same
// suggestion; tests/nix/differential.test.ts keeps them in parity.

/**
 * A name further than this from every known one gets no suggestion. Two edits catch the usual slips (a
 * dropped, doubled or swapped letter: "stabel", "stagged", "chanel") without proposing unrelated names.
 */
export const SUGGEST_MAX_DISTANCE = 2;

/**
 * Edit distance counting insertions, deletions, substitutions and swaps of two adjacent characters as
 * one edit each (Damerau-Levenshtein, optimal string alignment variant: a swapped pair is not edited
 * again). Compares UTF-16 units; fleet names are ASCII.
 */
export function editDistance(a: string, b: string): number {
  let before: number[] = [];
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d = Math.min(d, before[j - 2]! + 1);
      row.push(d);
    }
    before = prev;
    prev = row;
  }
  return prev[b.length]!;
}

/**
 * The one candidate closest to `name` within SUGGEST_MAX_DISTANCE, or undefined. A tie suggests nothing:
 * "web-99" is two edits from web-01, web-02 and web-03 alike, and picking one would be a guess.
 */
export function nearestName(name: string, candidates: Iterable<string>): string | undefined {
  let best: string[] = [];
  let bestDistance = SUGGEST_MAX_DISTANCE + 1;
  for (const c of new Set(candidates)) {
    // Lengths further apart than the threshold cannot be within it: skip the table.
    if (c === name || Math.abs(c.length - name.length) > SUGGEST_MAX_DISTANCE) continue;
    const d = editDistance(name, c);
    if (d > SUGGEST_MAX_DISTANCE) continue;
    if (d < bestDistance) [best, bestDistance] = [[c], d];
    else if (d === bestDistance) best.push(c);
  }
  return best.length === 1 ? best[0] : undefined;
}

/** ` (did you mean "x"?)` for the nearest candidate, or "" when none is close. */
export function didYouMean(name: string, candidates: Iterable<string>): string {
  const near = nearestName(name, candidates);
  return near === undefined ? '' : ` (did you mean ${JSON.stringify(near)}?)`;
}
