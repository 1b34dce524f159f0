// The publisher's cache check at 10,000 target paths against a file:// binary cache (synthetic narinfos,
// each target referencing one shared path, as system closures share most of theirs), compared with
//   floor: reading the 10,001 narinfo files alone (synchronously, no parsing, no signatures);
//   nix:   `nix store verify --store file://... --no-contents -r` over the same paths (one process),
//          the alternative the publisher could have used (it does not name the reason per path).
// Wall ms and CPU ms (user + system): on a shared machine the CPU figure is the steadier one.
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { checkCache, DEFAULT_CONCURRENCY } from '../publisher/cache-check.ts';
import { nixKeyFromLabel, writeSyntheticCache } from './support/synthetic-cache.ts';
import { hasTool } from '../tests/support/skip.ts';

function cpuMs(since: NodeJS.CpuUsage): number {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1000;
}

export default async function bench(): Promise<void> {
  const targets = Number(process.env.CACHE_BENCH_PATHS ?? 10_000);
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-cache-bench-'));
  try {
    const cache = join(dir, 'cache');
    const key = nixKeyFromLabel('bench-cache-1');
    const paths = writeSyntheticCache(cache, targets, key);
    const rows: string[][] = [];

    let t = performance.now();
    let c = process.cpuUsage();
    let bytes = 0;
    for (const f of readdirSync(cache))
      if (f.endsWith('.narinfo')) bytes += readFileSync(join(cache, f)).length;
    rows.push([
      'floor: read every narinfo file',
      (performance.now() - t).toFixed(0),
      cpuMs(c).toFixed(0),
    ]);

    for (const concurrency of [1, DEFAULT_CONCURRENCY]) {
      t = performance.now();
      c = process.cpuUsage();
      const r = await checkCache({
        cacheUrl: `file://${cache}`,
        storePaths: paths,
        trustedKeys: [key.public],
        concurrency,
      });
      if (r.problems.length > 0 || r.checked !== targets + 1)
        throw new Error(`bench cache did not check cleanly: ${JSON.stringify(r.problems[0])}`);
      rows.push([
        `checkCache, concurrency ${concurrency} (${r.checked} paths)`,
        (performance.now() - t).toFixed(0),
        cpuMs(c).toFixed(0),
      ]);
    }

    if (hasTool('nix') && existsSync('/usr/bin/time')) {
      const registry = join(dir, 'registry.json');
      writeFileSync(registry, '{"version":2,"flakes":[]}');
      const env = {
        ...process.env,
        NIX_CONFIG: `experimental-features = nix-command\nsubstituters =\nnarinfo-cache-negative-ttl = 0\nnarinfo-cache-positive-ttl = 0\nflake-registry = ${registry}`,
        XDG_CACHE_HOME: join(dir, 'xdg'),
        HOME: dir,
      };
      const args = [
        '-f',
        '%e %U %S',
        'nix',
        'store',
        'verify',
        '--store',
        `file://${cache}`,
        '--no-contents',
        '-r',
        '--option',
        'trusted-public-keys',
        key.public,
        ...paths,
      ];
      const r = spawnSync('/usr/bin/time', args, {
        env,
        encoding: 'utf8',
        maxBuffer: 64 * 1024 * 1024,
      });
      const last = r.stderr.trim().split('\n').at(-1)!.split(' ').map(Number);
      if (r.status !== 0) throw new Error(`nix store verify failed: ${r.stderr.slice(-500)}`);
      rows.push([
        `nix store verify -r (${paths.length} args, one process)`,
        (last[0]! * 1000).toFixed(0),
        ((last[1]! + last[2]!) * 1000).toFixed(0),
      ]);
    }

    console.log(
      `${targets} targets + 1 shared reference in a file:// cache (${bytes} bytes of narinfo); load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
    );
    console.log('');
    console.log('| run | wall ms | CPU ms |');
    console.log('|---|---|---|');
    for (const r of rows) console.log(`| ${r.join(' | ')} |`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
