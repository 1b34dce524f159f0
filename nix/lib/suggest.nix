# "did you mean": protocol/suggest.ts in Nix, the same rule so both validators print the same suggestion.
# The distance counts insertions, deletions, substitutions and swaps of two adjacent characters as one
# edit each (Damerau-Levenshtein, optimal string alignment variant); a name gets a suggestion when exactly
# one candidate is closest and at most maxDistance edits away (a tie would be a guess).
let
  inherit (builtins) stringLength substring genList elemAt foldl' filter length head;
  maxDistance = 2;
  min2 = a: b: if a < b then a else b;

  distance = a: b:
    let
      la = stringLength a;
      lb = stringLength b;
      ca = i: substring i 1 a;
      cb = j: substring j 1 b;
      # Row i from the two rows before it; each cell reads its left neighbour in the same (lazy) row.
      nextRow = { before, prev, i }:
        let
          row = genList (j:
            if j == 0 then i
            else
              let
                cost = if ca (i - 1) == cb (j - 1) then 0 else 1;
                d = min2 (min2 (elemAt prev j + 1) (elemAt row (j - 1) + 1)) (elemAt prev (j - 1) + cost);
              in
              if i > 1 && j > 1 && ca (i - 1) == cb (j - 2) && ca (i - 2) == cb (j - 1) then min2 d (elemAt before (j - 2) + 1) else d)
            (lb + 1);
        in
        { before = prev; prev = row; i = i + 1; };
      last = foldl' (s: _: nextRow s) { before = [ ]; prev = genList (j: j) (lb + 1); i = 1; } (genList (i: i) la);
    in
    elemAt last.prev lb;

  nearest = name: candidates:
    let
      # Lengths further apart than the threshold cannot be within it: skip the table.
      near = filter (c: c != name && (let d = stringLength c - stringLength name; in d <= maxDistance && d >= -maxDistance)) candidates;
      scored = map (c: { inherit c; d = distance name c; }) near;
      best = foldl' (m: s: min2 m s.d) (maxDistance + 1) scored;
      winners = filter (s: s.d == best) scored;
    in
    if best <= maxDistance && length winners == 1 then (head winners).c else null;
in
{
  inherit distance nearest;
  # '' (did you mean "x"?)'' or "".
  didYouMean = name: candidates: let n = nearest name candidates; in if n == null then "" else " (did you mean ${builtins.toJSON n}?)";
}
