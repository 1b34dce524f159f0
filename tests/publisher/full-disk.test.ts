// A publish that runs out of disk space (a real, small tmpfs) must clean up after itself, name the file
// it could not write, and leave the previous release intact, so that `refresh` (a few KB) still works.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, statfsSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { generateFleet } from '../support/fleet-gen.ts';
import { requireTool } from '../support/skip.ts';
import {
  publishRelease,
  publishReleaseChecked,
  type PublishResult,
  type UncheckedPublishOptions,
} from '../../publisher/publish.ts';
import { refreshTimestamp } from '../../publisher/refresh.ts';
import { TreeWriteFailed } from '../../publisher/errors.ts';
import { checkTree } from './tree-check.ts';
import { setupTrust, T0 } from './helpers.ts';

function canMount(): boolean {
  if (!requireTool('mount', 'full-disk test on a tmpfs')) return false;
  if (process.getuid?.() === 0) return true;
  if (process.env.CI === 'true')
    throw new Error('the full-disk test mounts a tmpfs and must run as root in CI');
  console.warn('\n  !!! SKIPPED (full-disk test needs root to mount a tmpfs)\n');
  return false;
}

/** Leaves about `freeBytes` free on the file system of `dir`. */
function fillUntilFree(dir: string, freeBytes: number): void {
  const s = statfsSync(dir);
  const free = s.bavail * s.bsize;
  writeFileSync(join(dir, 'filler'), Buffer.alloc(Math.max(0, free - freeBytes)));
}

/** publishRelease (signed, then written) or publishReleaseChecked (`nixfleet publish`: the manifests are
 * written while the second thread still signs, so the failing write happens inside the signing). */
const publishers = {
  'in-line': async (o: UncheckedPublishOptions) => publishRelease(o),
  threads: (o: UncheckedPublishOptions) => publishReleaseChecked(o),
};

for (const [mode, publish] of Object.entries(publishers))
  test(`publish (${mode}) on a full disk: typed error naming the file, no temp left behind, refresh still works`, () =>
    fullDisk(publish));

async function fullDisk(publish: (o: UncheckedPublishOptions) => Promise<PublishResult>) {
  if (!canMount()) return;
  const s = setupTrust();
  const mnt = join(s.dir, 'mnt');
  mkdirSync(mnt);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt]);
  try {
    const treeDir = join(mnt, 'tree');
    const fleetSmall = generateFleet({
      hosts: 4,
      channels: 1,
      wavesPerChannel: 1,
      seed: 'disk-1',
    }).fleet;
    publishRelease({
      cacheCheck: 'skip',
      treeDir,
      fleet: fleetSmall,
      releaseKeys: [s.releaseKey],
      trustDir: s.trustDir,
      now: T0,
    });
    const before = checkTree(treeDir, s.releaseKey);

    // Room for a timestamp, not for a release of 300 hosts.
    fillUntilFree(mnt, 64 * 1024);
    const fleetBig = generateFleet({
      hosts: 300,
      channels: 2,
      wavesPerChannel: 2,
      seed: 'disk-2',
    }).fleet;
    let err: unknown;
    try {
      await publish({
        cacheCheck: 'skip',
        treeDir,
        fleet: fleetBig,
        releaseKeys: [s.releaseKey],
        trustDir: s.trustDir,
        now: T0 + 60_000,
      });
    } catch (e) {
      err = e;
    }
    assert.instance(err, TreeWriteFailed, `expected TreeWriteFailed, got ${String(err)}`);
    const e = err as TreeWriteFailed;
    assert.is(e.code, 'ENOSPC');
    assert.ok(
      e.file.startsWith(join(treeDir, 'releases')),
      `names the file it could not write: ${e.message}`,
    );
    assert.match(e.message, /no space left/i);
    assert.match(e.message, /previous release/);
    assert.equal(
      readdirSync(join(treeDir, 'releases')).sort(),
      ['1'],
      'no .tmp-* and no releases/2 left behind',
    );

    // The previous release is intact and a refresh (a few KB) succeeds on the same full disk.
    const r = refreshTimestamp({ treeDir, releaseKeys: [s.releaseKey], now: T0 + 120_000 });
    assert.is(r.releaseVersion, 1);
    const after = checkTree(treeDir, s.releaseKey);
    assert.is(after.timestamp.release.version, before.timestamp.release.version);
    assert.is(after.timestamp.issuedAt, '2026-01-01T00:02:00Z');

    // With space again, the same publish goes through as release 2.
    rmSync(join(mnt, 'filler'));
    const ok = await publish({
      cacheCheck: 'skip',
      treeDir,
      fleet: fleetBig,
      releaseKeys: [s.releaseKey],
      trustDir: s.trustDir,
      now: T0 + 180_000,
    });
    assert.is(ok.version, 2);
    assert.ok(existsSync(join(treeDir, 'releases', '2', 'index.json')));
  } finally {
    execFileSync('umount', [mnt]);
    s.cleanup();
  }
}

test('refresh removes a partial release left by a killed publisher before writing', () => {
  if (!canMount()) return;
  const s = setupTrust();
  const mnt = join(s.dir, 'mnt');
  mkdirSync(mnt);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt]);
  try {
    const treeDir = join(mnt, 'tree');
    publishRelease({
      cacheCheck: 'skip',
      treeDir,
      fleet: generateFleet({ hosts: 4, channels: 1, wavesPerChannel: 1, seed: 'disk-3' }).fleet,
      releaseKeys: [s.releaseKey],
      trustDir: s.trustDir,
      now: T0,
    });
    // What a publisher killed mid-write leaves: its temp directory, here filling the disk up to one
    // page (the publish lock). Only removing it makes room for the new timestamp.
    const stale = join(treeDir, 'releases', '.tmp-2-99999');
    mkdirSync(stale);
    fillUntilFree(stale, 4096);
    assert.throws(
      () => writeFileSync(join(mnt, 'probe'), Buffer.alloc(16 * 1024)),
      /ENOSPC/,
      'the disk is full',
    );
    rmSync(join(mnt, 'probe'));
    const r = refreshTimestamp({ treeDir, releaseKeys: [s.releaseKey], now: T0 + 60_000 });
    assert.is(r.releaseVersion, 1);
    assert.equal(readdirSync(join(treeDir, 'releases')), ['1']);
  } finally {
    execFileSync('umount', [mnt]);
    s.cleanup();
  }
});

test.run();
