// mkFleet (plain Nix) on generated fleets: wall time and peak memory of one `nix-instantiate --eval
// --strict` of the checked fleet, beside the TypeScript validator on the same JSON, so a fleet repo's
// CI knows what evaluating its fleet costs.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { generateFleet } from '../tests/support/fleet-gen.ts';
import { validateFleet } from '../publisher/validate.ts';
import { NIX_LIB, nixString } from '../tests/nix/nix-env.ts';

export default async function bench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-bench-nix-'));
  try {
    console.log('| hosts | Nix mkFleet (s) | Nix peak RSS (MB) | TS validateFleet (ms) |');
    console.log('|---:|---:|---:|---:|');
    for (const hosts of [100, 1000, 5000]) {
      const fleet = generateFleet({
        hosts,
        channels: 3,
        wavesPerChannel: 4,
        seed: 'bench-nix',
      }).fleet;
      const file = join(dir, `fleet-${hosts}.json`);
      writeFileSync(file, JSON.stringify(fleet));
      const expr = `builtins.length (builtins.attrNames ((import ${nixString(NIX_LIB)}).mkFleet (builtins.fromJSON (builtins.readFile ${nixString(file)}))).hosts)`;
      // GNU time prints the child's peak RSS (KB) as the last stderr line; the wall time is ours.
      const t0 = performance.now();
      const run = spawnSync(
        '/usr/bin/time',
        ['-f', '%M', 'nix-instantiate', '--eval', '--strict', '-E', expr],
        { encoding: 'utf8' },
      );
      const seconds = (performance.now() - t0) / 1000;
      if (run.status !== 0) throw new Error(`nix-instantiate failed: ${run.stderr}`);
      const rssKb = Number(run.stderr.trim().split('\n').pop());
      const t1 = performance.now();
      const r = validateFleet(fleet);
      const tsMs = performance.now() - t1;
      if (!r.ok) throw new Error(`generated fleet invalid: ${r.errors[0]}`);
      console.log(
        `| ${hosts} | ${seconds.toFixed(2)} | ${(rssKb / 1024).toFixed(0)} | ${tsMs.toFixed(0)} |`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
