// What every `nixfleet` start loads before it knows the command: dist/main.js and the chunks it imports
// statically (each command's own chunk is a dynamic import). None of the heavy dependencies may be among
// them, or `nixfleet version` and every `--help` pay for schemas and crypto they never use (issue 10:
// start-up within 2x of `node -e 0`; docs/benchmarks.md "startup"). npm test builds dist/ first.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const DIST = fileURLToPath(new URL('../../dist/', import.meta.url));
const HEAVY = ['zod', 'canonicalize', 'cron', '@noble/ed25519', '@noble/hashes'];

/** Static `import ... from "x"` / `export ... from "x"` specifiers of an esbuild ESM file (not `import("x")`). */
function staticImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [
    ...text.matchAll(/^(?:import|export)\s[^;]*?\sfrom\s+"([^"]+)";?$/gms),
    ...text.matchAll(/^import\s+"([^"]+)";?$/gm),
  ].map((m) => m[1]!);
}

test('dist/main.js and its static chunks load none of the heavy dependencies', () => {
  assert.ok(
    existsSync(join(DIST, 'main.js')),
    'dist/main.js is missing: npm test builds it (npm run build)',
  );
  const seen = new Set<string>();
  const external = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const spec of staticImports(join(DIST, file))) {
      if (spec.startsWith('./')) visit(spec.slice(2));
      else external.add(spec);
    }
  };
  visit('main.js');
  const heavy = [...external].filter((e) => HEAVY.some((h) => e === h || e.startsWith(`${h}/`)));
  // zod is bundled into dist/ (scripts/build.mjs): its chunk must not be a static one either.
  for (const f of seen)
    if (readFileSync(join(DIST, f), 'utf8').includes('__zod_globalConfig'))
      heavy.push(`zod in ${f}`);
  assert.equal(heavy, [], `loaded at every start through ${[...seen].join(', ')}`);
});

test.run();
