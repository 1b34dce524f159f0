// Publishing a generated 10,000-host fleet (3 channels, 4 waves each): wall time and its phases.
// resolve = strict validation (incl. every host key) + wave/budget resolution + trust chain checks;
// sign = building and signing every document (10,000 manifests, 3 plans, budgets, index, timestamp);
// write = root copies + release directory (temp dir, one syncfs, rename) + revocations + timestamp.
import { rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { generateFleet } from '../tests/support/fleet-gen.ts';
import { setupTrust, T0 } from '../tests/publisher/helpers.ts';
import { publishRelease } from '../publisher/publish.ts';

export default async function bench(): Promise<void> {
  const hosts = Number(process.env.PUBLISH_BENCH_HOSTS ?? 10_000);
  const tGen = performance.now();
  const { fleet } = generateFleet({ hosts, channels: 3, wavesPerChannel: 4, seed: 'bench', chainChannels: true, budgetPct: 5 });
  const genMs = performance.now() - tGen;
  const s = setupTrust();
  try {
    const rows: string[][] = [];
    for (const [i, label] of ['first publish (empty tree)', 'second publish (same fleet)', 'third publish (same fleet)'].entries()) {
      // Start each run with no dirty pages from earlier work (ours or other processes'), so the figures
      // measure the publish, not the writeback of whatever ran before it.
      execFileSync('sync');
      const r = publishRelease({ cacheCheck: 'skip', treeDir: s.treeDir, fleet, releaseKeys: [s.releaseKey], trustDir: s.trustDir, now: T0 + i * 60_000 });
      const t = r.timings;
      const c = r.cpu;
      const both = (wall: number, cpu: number) => `${wall.toFixed(0)} (${cpu.toFixed(0)})`;
      rows.push([label, String(r.version), both(t.resolve, c.resolve), both(t.sign, c.sign), both(t.write, c.write), both(t.total, c.total)]);
    }
    console.log(`fleet: ${hosts} hosts, 3 channels x 4 waves, generated in ${genMs.toFixed(0)} ms (not counted); load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    console.log('');
    console.log('wall ms (CPU ms of the publishing process; on a shared machine CPU time is the steadier figure)');
    console.log('');
    console.log('| run | version | resolve | sign | write | total |');
    console.log('|---|---|---|---|---|---|');
    for (const r of rows) console.log(`| ${r.join(' | ')} |`);
  } finally {
    rmSync(s.dir, { recursive: true, force: true });
  }
}
