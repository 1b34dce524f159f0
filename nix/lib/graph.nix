# Cycles in host edges and channel edges, found by the same depth-first search as publisher/graph.ts
# (start nodes in sorted order, successors in edge order, each cycle rotated to start at its smallest
# node, duplicates dropped, in order of discovery), so that both sides name the same cycles.
# Cost: O(nodes x edges) in the worst case (attribute sets are copied on update); fine for the few
# hundred edges fleets use. The TypeScript validator is linear.
let
  inherit (builtins) foldl' attrNames groupBy mapAttrs length elemAt genList concatStringsSep sort hasAttr;
  white = 0; grey = 1; black = 2;

  lastIndexOf = list: x: foldl' (found: i: if elemAt list i == x then i else found) (-1) (genList (i: i) (length list));
  drop = n: list: genList (i: elemAt list (n + i)) (length list - n);
  take = n: list: genList (i: elemAt list i) n;
  rotateToSmallest = cycle:
    let
      smallest = foldl' (m: k: if elemAt cycle k < elemAt cycle m then k else m) 0 (genList (i: i) (length cycle));
    in
    drop smallest cycle ++ take smallest cycle;

  findCycles = edges:
    let
      next = mapAttrs (_: es: map (e: e.after) es) (groupBy (e: e.before) edges);
      colorOf = state: node: state.color.${node} or white;
      # `path` ends with `node`, which is grey.
      visit = state: path: node:
        let
          after = foldl' (st: to:
            let c = colorOf st to; in
            if c == grey then
              let
                cycle = rotateToSmallest (drop (lastIndexOf path to) path);
                key = concatStringsSep " " cycle;
              in
              if hasAttr key st.seen then st
              else st // { seen = st.seen // { ${key} = true; }; cycles = st.cycles ++ [ cycle ]; }
            else if c == white then visit (st // { color = st.color // { ${to} = grey; }; }) (path ++ [ to ]) to
            else st) state (next.${node} or [ ]);
        in
        after // { color = after.color // { ${node} = black; }; };
      final = foldl' (st: start:
        if colorOf st start != white then st
        else visit (st // { color = st.color // { ${start} = grey; }; }) [ start ] start)
        { color = { }; seen = { }; cycles = [ ]; } (sort (a: b: a < b) (attrNames next));
    in
    final.cycles;

  describeCycle = cycle: concatStringsSep " -> " (cycle ++ [ (elemAt cycle 0) ]);
in
{
  inherit findCycles describeCycle;
}
