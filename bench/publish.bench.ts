// Publishing a generated 10,000-host fleet (3 channels, 4 waves each): wall time and its phases.
// resolve = strict validation (incl. every host key) + wave/budget resolution + trust chain checks;
// sign = building and signing every document (10,000 manifests, 3 plans, budgets, index, timestamp);
// write = root copies + release directory (temp dir, one syncfs, rename) + revocations + timestamp.
import { rmSync, writeFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { writePrivateKey } from '../protocol/keys.ts';
import { isoTime } from '../protocol/schemas/common.ts';
import { loadavg } from 'node:os';
import { generateFleet } from '../tests/support/fleet-gen.ts';
import { setupTrust, T0 } from '../tests/publisher/helpers.ts';
import { publishReleaseChecked } from '../publisher/publish.ts';

export default async function bench(): Promise<void> {
  const hosts = Number(process.env.PUBLISH_BENCH_HOSTS ?? 10_000);
  const tGen = performance.now();
  const { fleet } = generateFleet({
    hosts,
    channels: 3,
    wavesPerChannel: 4,
    seed: 'bench',
    chainChannels: true,
    budgetPct: 5,
  });
  const genMs = performance.now() - tGen;
  const s = setupTrust();
  try {
    const rows: string[][] = [];
    for (const [i, label] of [
      'first publish (empty tree)',
      'second publish (same fleet)',
      'third publish (same fleet)',
    ].entries()) {
      // Start each run with no dirty pages from earlier work (ours or other processes'), so the figures
      // measure the publish, not the writeback of whatever ran before it.
      execFileSync('sync');
      // As `nixfleet publish` does (publishReleaseChecked: manifests signed on two threads).
      const r = await publishReleaseChecked({
        cacheCheck: 'skip',
        treeDir: s.treeDir,
        fleet,
        releaseKeys: [s.releaseKey],
        trustDir: s.trustDir,
        now: T0 + i * 60_000,
      });
      const t = r.timings;
      const c = r.cpu;
      const both = (wall: number, cpu: number) => `${wall.toFixed(0)} (${cpu.toFixed(0)})`;
      rows.push([
        label,
        String(r.version),
        both(t.resolve, c.resolve),
        both(t.sign, c.sign),
        both(t.write, c.write),
        both(t.total, c.total),
      ]);
    }
    console.log(
      `fleet: ${hosts} hosts, 3 channels x 4 waves, generated in ${genMs.toFixed(0)} ms (not counted); load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
    );
    console.log('');
    console.log(
      'wall ms (CPU ms of the publishing process; on a shared machine CPU time is the steadier figure)',
    );
    console.log('');
    console.log('| run | version | resolve | sign | write | total |');
    console.log('|---|---|---|---|---|---|');
    for (const r of rows) console.log(`| ${r.join(' | ')} |`);
    freshProcessRuns(fleet, s, hosts);
  } finally {
    rmSync(s.dir, { recursive: true, force: true });
  }
}

const BIN = fileURLToPath(new URL('../bin/nixfleet.js', import.meta.url));
// NIXFLEET_BIN_BEFORE: another build (e.g. main's) publishing into its own tree, interleaved run by
// run with this one, so that both meet the same load (an A/B in one run).
const BIN_BEFORE = process.env['NIXFLEET_BIN_BEFORE'];

// `nixfleet publish` as CI runs it: a fresh process (the compiled CLI), release N+1 into a tree holding
// release N, beside the floor `node -e 0` in the same run. The empty-tree row is the same command with
// no previous release: every host key is decoded as a curve point (publisher/vouched-keys.ts).
function freshProcessRuns(
  fleet: unknown,
  s: { dir: string; trustDir: string; releaseKey: Parameters<typeof writePrivateKey>[1] },
  hosts: number,
): void {
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-publish-fresh-'));
  try {
    const fleetFile = join(dir, 'fleet.json');
    writeFileSync(fleetFile, JSON.stringify(fleet));
    const keyFile = join(dir, 'release.key');
    writePrivateKey(keyFile, s.releaseKey);
    const publish = (tree: string, now: number, bin = BIN) => {
      execFileSync('sync');
      const errFile = join(dir, 'time.txt');
      const t = performance.now();
      const out = execFileSync(
        '/usr/bin/time',
        [
          '-o',
          errFile,
          '-f',
          '%U %S %M',
          process.execPath,
          bin,
          'publish',
          fleetFile,
          '--tree',
          tree,
          '--release-key',
          keyFile,
          '--trust',
          s.trustDir,
          '--no-cache-check',
          // The same fleet each time: without --force the CLI publishes nothing ("unchanged").
          '--force',
          '--json',
          '--now',
          isoTime(now),
        ],
        { encoding: 'utf8', maxBuffer: 64 << 20 },
      );
      const wallMs = performance.now() - t;
      const r = JSON.parse(out) as {
        status: string;
        version: number;
        timings: Record<string, number>;
      };
      if (r.status !== 'published') throw new Error(`publish did not publish: ${r.status}`);
      return { wallMs, ...gnuTime(errFile), version: r.version, timings: r.timings };
    };
    const floor = () => {
      const errFile = join(dir, 'time.txt');
      const t = performance.now();
      execFileSync('/usr/bin/time', ['-o', errFile, '-f', '%U %S %M', process.execPath, '-e', '0']);
      return { wallMs: performance.now() - t, ...gnuTime(errFile) };
    };
    const T = Date.parse('2026-01-01T00:00:00Z') + 3_600_000;
    const rows: string[][] = [];
    const f = floor();
    rows.push([
      'floor: node -e 0',
      '',
      f.wallMs.toFixed(0),
      f.cpuMs.toFixed(0),
      `${f.userMs.toFixed(0)} / ${f.sysMs.toFixed(0)}`,
      f.rssMb.toFixed(0),
      '',
      '1.00',
    ]);
    const row = (label: string, r: ReturnType<typeof publish>) =>
      rows.push([
        label,
        String(r.version),
        r.wallMs.toFixed(0),
        r.cpuMs.toFixed(0),
        `${r.userMs.toFixed(0)} / ${r.sysMs.toFixed(0)}`,
        r.rssMb.toFixed(0),
        `${r.timings['resolve']!.toFixed(0)} / ${r.timings['sign']!.toFixed(0)} / ${r.timings['write']!.toFixed(0)}`,
        (r.cpuMs / f.cpuMs).toFixed(1),
      ]);
    // This build and (with NIXFLEET_BIN_BEFORE) the other one, each into its own tree, taking turns.
    const builds = [
      ...(BIN_BEFORE ? [{ bin: BIN_BEFORE, tree: join(dir, 'tree-before'), tag: 'before: ' }] : []),
      { bin: BIN, tree: join(dir, 'tree-empty'), tag: '' },
    ];
    for (const b of builds)
      row(`${b.tag}nixfleet publish, empty tree (every key decoded)`, publish(b.tree, T, b.bin));
    const NEXT = Number(process.env['PUBLISH_BENCH_FRESH_RUNS'] ?? 3);
    const loadBefore = loadavg();
    // The next-release rounds per build, for the medians printed below the table.
    const rounds = new Map<string, ReturnType<typeof publish>[]>(builds.map((b) => [b.tag, []]));
    for (let i = 1; i <= NEXT; i++)
      for (const b of builds) {
        const r = publish(b.tree, T + i * 60_000, b.bin);
        rounds.get(b.tag)!.push(r);
        row(
          `${b.tag}nixfleet publish, next release (keys vouched for by release ${r.version - 1})`,
          r,
        );
      }
    const f2 = floor();
    rows.push([
      'floor: node -e 0 (again)',
      '',
      f2.wallMs.toFixed(0),
      f2.cpuMs.toFixed(0),
      `${f2.userMs.toFixed(0)} / ${f2.sysMs.toFixed(0)}`,
      f2.rssMb.toFixed(0),
      '',
      (f2.cpuMs / f.cpuMs).toFixed(2),
    ]);
    console.log(
      `\nfresh process (compiled CLI, ${hosts} hosts, --no-cache-check), load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}\n`,
    );
    console.log(
      '| run | version | wall ms | CPU ms | user / sys ms | peak RSS MB | in-process resolve / sign / write ms | CPU ratio to floor |',
    );
    console.log('|---|---|---|---|---|---|---|---|');
    for (const r of rows) console.log(`| ${r.join(' | ')} |`);
    console.log(
      `\nmedians of the ${NEXT} next-release rounds (load average before them ${loadBefore
        .map((l) => l.toFixed(1))
        .join(' ')}):`,
    );
    for (const [tag, rs] of rounds) {
      const median = (f: (r: ReturnType<typeof publish>) => number) => {
        const v = rs.map(f).sort((a, b) => a - b);
        return v.length % 2 ? v[v.length >> 1]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
      };
      console.log(
        `- ${tag || 'now: '}wall ${median((r) => r.wallMs).toFixed(0)} ms, CPU ${median((r) => r.cpuMs).toFixed(0)} ms, ` +
          `in-process sign ${median((r) => r.timings['sign']!).toFixed(0)} / write ${median((r) => r.timings['write']!).toFixed(0)} ms`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function gnuTime(file: string): { cpuMs: number; userMs: number; sysMs: number; rssMb: number } {
  const [user, sys, rssKb] = readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .pop()!
    .split(' ')
    .map(Number);
  return {
    cpuMs: (user! + sys!) * 1000,
    userMs: user! * 1000,
    sysMs: sys! * 1000,
    rssMb: rssKb! / 1024,
  };
}
