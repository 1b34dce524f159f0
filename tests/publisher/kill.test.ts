// kill -9 during a publish must leave the previous tree verifiable: the timestamp still points to a
// complete, digest-matching release; the next publish then succeeds (stale lock and temp dir recovered).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { writeFileSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateFleet } from '../support/fleet-gen.ts';
import { publishRelease } from '../../publisher/publish.ts';
import { verifyTreeDir } from '../../protocol/disk-tree.ts';
import { checkTree } from './tree-check.ts';
import { setupTrust, T0 } from './helpers.ts';

const CHILD = fileURLToPath(new URL('./publish-child.ts', import.meta.url));

/** Runs the child publisher; SIGKILLs it at the first progress event accepted by `killWhen`. */
function publishAndKill(
  treeDir: string,
  trustDir: string,
  fleetFile: string,
  now: number,
  mode: Mode,
  killWhen: (ev: { phase: string; done: number; total: number }) => boolean,
): Promise<'killed' | 'completed'> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', CHILD, treeDir, trustDir, fleetFile, String(now), mode],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let killed = false;
    let buf = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const ev = JSON.parse(line) as { phase: string; done: number; total: number };
        if (!killed && killWhen(ev)) {
          killed = true;
          child.kill('SIGKILL');
        }
      }
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL') resolve('killed');
      else if (code === 0) resolve('completed');
      else reject(new Error(`child exited ${code}: ${stderr}`));
    });
  });
}

/** Every releases/<n> directory in the tree holds a whole release: its index and every manifest it lists. */
function assertReleaseDirsComplete(treeDir: string, label: string): void {
  for (const name of readdirSync(join(treeDir, 'releases'))) {
    if (name.startsWith('.tmp-')) continue;
    const dir = join(treeDir, 'releases', name);
    assert.ok(existsSync(join(dir, 'index.json')), `${label}: releases/${name} has no index.json`);
    const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as {
      signed: { hosts: Record<string, unknown> };
    };
    assert.is(
      readdirSync(join(dir, 'hosts')).length,
      Object.keys(index.signed.hosts).length,
      `${label}: releases/${name} is missing host manifests`,
    );
  }
}

/** publish-child.ts: publishRelease (sign, then write) or publishReleaseChecked (write while signing). */
type Mode = 'in-line' | 'threads';

for (const mode of ['in-line', 'threads'] as const)
  test(`kill -9 at several moments of a publish (${mode}) leaves the previous release verifiable`, () =>
    killAtSeveralMoments(mode));

async function killAtSeveralMoments(mode: Mode): Promise<void> {
  const s = setupTrust();
  try {
    const small = generateFleet({ hosts: 6, channels: 2, wavesPerChannel: 2, seed: 'kill' }).fleet;
    publishRelease({
      cacheCheck: 'skip',
      treeDir: s.treeDir,
      trustDir: s.trustDir,
      fleet: small,
      releaseKeys: [s.releaseKey],
      now: T0,
    });
    const large = generateFleet({
      hosts: 600,
      channels: 3,
      wavesPerChannel: 4,
      seed: 'kill',
    }).fleet;
    const fleetFile = join(s.dir, 'large.json');
    writeFileSync(fleetFile, JSON.stringify(large));

    // Signed on two threads (`threads`), the manifests are written while the signing goes on: 'write'
    // 500 comes while the second thread still signs, 'sign' 500 when the index is being signed.
    const moments: [string, (ev: { phase: string; done: number; total: number }) => boolean][] = [
      ['while signing', (e) => e.phase === 'sign' && e.done >= 500],
      ['while writing', (e) => e.phase === 'write' && e.done >= 500 && e.done < e.total],
      [
        'after the last file, before the rename and the timestamp',
        (e) => e.phase === 'write' && e.done === e.total,
      ],
      ['after the rename, around the timestamp write', (e) => e.phase === 'commit'],
    ];
    let now = T0;
    let expectedVersion = 1;
    for (const [label, when] of moments) {
      now += 60_000;
      const outcome = await publishAndKill(s.treeDir, s.trustDir, fleetFile, now, mode, when);
      // The last moment is the end of the publish: the child may finish before the signal lands.
      if (!label.startsWith('after the rename')) assert.is(outcome, 'killed', label);
      if (outcome === 'completed') expectedVersion++;
      const report = await verifyTreeDir(s.treeDir, s.root, { now });
      assert.ok(report.ok, `${label}: tree not ok`);
      const checked = checkTree(s.treeDir, s.releaseKey);
      // Killed late, a complete release directory may exist without the timestamp naming it: the
      // timestamp still names the previous, complete release.
      assert.ok(checked.version >= expectedVersion, `${label}: version ${checked.version}`);
      expectedVersion = checked.version;
      assertReleaseDirsComplete(s.treeDir, label);
      // Killed mid-write, the partial release is a temp directory nobody serves.
      if (label === 'while writing')
        assert.ok(
          readdirSync(join(s.treeDir, 'releases')).some((n) => n.startsWith('.tmp-')),
          `${label}: the partial release is not in a temp directory`,
        );
    }
    // The next publish recovers the dead publisher's lock and temp directory and moves on.
    const r = publishRelease({
      cacheCheck: 'skip',
      treeDir: s.treeDir,
      trustDir: s.trustDir,
      fleet: large,
      releaseKeys: [s.releaseKey],
      now: now + 60_000,
    });
    assert.ok(r.version > expectedVersion);
    assert.is((await verifyTreeDir(s.treeDir, s.root, { now: now + 60_000 })).release.hosts, 600);
    assert.is(
      readdirSync(join(s.treeDir, 'releases')).filter((n) => n.startsWith('.tmp-')).length,
      0,
    );
    assert.not.ok(existsSync(join(s.treeDir, '.publish.lock')));
  } finally {
    s.cleanup();
  }
}

test.run();
