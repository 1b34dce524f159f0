// Cycle detection for host edges and channel edges. Iterative (a fleet can have 100k edges, deeper than
// the JS stack), and it returns the cycles themselves so the error can name them: "a -> b -> c -> a".

/** Returns one cycle per back edge found, each rotated to start at its smallest node, deduplicated. */
export function findCycles(edges: readonly { before: string; after: string }[]): string[][] {
  const next = new Map<string, string[]>();
  for (const e of edges) {
    let list = next.get(e.before);
    if (!list) next.set(e.before, (list = []));
    list.push(e.after);
  }
  const WHITE = 0,
    GREY = 1,
    BLACK = 2;
  const color = new Map<string, number>();
  const cycles = new Map<string, string[]>();
  for (const start of [...next.keys()].sort()) {
    if ((color.get(start) ?? WHITE) !== WHITE) continue;
    const path: string[] = [start];
    const iters: number[] = [0];
    color.set(start, GREY);
    while (path.length > 0) {
      const node = path[path.length - 1]!;
      const succ = next.get(node) ?? [];
      const i = iters[iters.length - 1]!;
      if (i >= succ.length) {
        color.set(node, BLACK);
        path.pop();
        iters.pop();
        continue;
      }
      iters[iters.length - 1] = i + 1;
      const to = succ[i]!;
      const c = color.get(to) ?? WHITE;
      if (c === GREY) {
        const cycle = path.slice(path.lastIndexOf(to));
        const min = cycle.reduce((m, x, k) => (x < cycle[m]! ? k : m), 0);
        const rotated = [...cycle.slice(min), ...cycle.slice(0, min)];
        cycles.set(rotated.join('\u0000'), rotated);
      } else if (c === WHITE) {
        color.set(to, GREY);
        path.push(to);
        iters.push(0);
      }
    }
  }
  return [...cycles.values()];
}

export function describeCycle(cycle: readonly string[]): string {
  return [...cycle, cycle[0]].join(' -> ');
}
