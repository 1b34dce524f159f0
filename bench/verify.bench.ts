// verifyTree of a published 10,000-host tree (3 channels, 4 waves each), built with the real publisher.
// Target: <= 2 s on the 2-core development machine.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { publishRelease } from '../publisher/publish.ts';
import { generateFleet } from '../tests/support/fleet-gen.ts';
import { benchTrust } from './support/bench-trust.ts';
import { verifyTreeDir } from '../protocol/disk-tree.ts';
import { diskFetch } from '../protocol/disk-tree.ts';
import { initialClientState } from '../protocol/verify/state.ts';
import { updateTrust } from '../protocol/verify/update-trust.ts';
import { fetchHostView } from '../protocol/verify/host-view.ts';

export default async function verifyBench(): Promise<void> {
  const hosts = Number(process.env.VERIFY_BENCH_HOSTS ?? 10_000);
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-verify-bench-'));
  try {
    const now = Date.parse('2030-01-01T00:00:00Z');
    const { releaseKey, root } = benchTrust(now);
    const { fleet } = generateFleet({
      hosts,
      channels: 3,
      wavesPerChannel: 4,
      seed: 'verify-bench',
      budgetPct: 10,
      chainChannels: true,
    });
    const tree = join(dir, 'tree');
    const t0 = performance.now();
    publishRelease({
      cacheCheck: 'skip',
      treeDir: tree,
      fleet,
      releaseKeys: [releaseKey],
      roots: [root],
      now,
    });
    const publishMs = performance.now() - t0;

    const runs: number[] = [];
    const cpu: number[] = [];
    let documents = 0;
    for (let i = 0; i < 3; i++) {
      const t = performance.now();
      const c = process.cpuUsage();
      const report = await verifyTreeDir(tree, root, { now: now + 60_000 });
      runs.push(performance.now() - t);
      const used = process.cpuUsage(c);
      cpu.push((used.user + used.system) / 1000);
      documents = report.documents.length;
      if (!report.ok) throw new Error('bench tree did not verify cleanly');
    }

    // The agent's path for one host: root walk + timestamp + revocations, then its own documents.
    const fetch = diskFetch(tree);
    const t1 = performance.now();
    const trusted = await updateTrust({
      fetch,
      state: initialClientState(root),
      now: now + 60_000,
    });
    const t2 = performance.now();
    await fetchHostView({ fetch, trusted, host: Object.keys(fleet.hosts)[hosts - 1]! });
    const t3 = performance.now();

    const best = Math.min(...runs);
    console.log(`| what | figure |`);
    console.log(`|---|---|`);
    console.log(`| hosts / documents verified | ${hosts} / ${documents} |`);
    console.log(`| publish (setup, not measured here) | ${publishMs.toFixed(0)} ms |`);
    console.log(`| verifyTree, 3 runs | ${runs.map((r) => r.toFixed(0)).join(' / ')} ms |`);
    console.log(
      `| verifyTree CPU time (both threads), 3 runs | ${cpu.map((r) => r.toFixed(0)).join(' / ')} ms |`,
    );
    console.log(
      `| verifyTree best | ${best.toFixed(0)} ms (${((documents / best) * 1000).toFixed(0)} documents/s) — target <= 2000 ms |`,
    );
    console.log(
      `| machine load average (1 min) during the run | ${(await import('node:os')).loadavg()[0]!.toFixed(1)} on ${(await import('node:os')).availableParallelism()} cores |`,
    );
    console.log(`| agent: updateTrust | ${(t2 - t1).toFixed(1)} ms |`);
    console.log(
      `| agent: fetchHostView (one host, plans of ${(hosts / 3) | 0} hosts) | ${(t3 - t2).toFixed(1)} ms |`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
