import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, statSync, utimesSync, writeFileSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { generateFleet } from '../support/fleet-gen.ts';
import {
  publishRelease,
  publishReleaseChecked,
  type UncheckedPublishOptions,
} from '../../publisher/publish.ts';
import { refreshTimestamp } from '../../publisher/refresh.ts';
import { PublishRefused } from '../../publisher/errors.ts';
import { FleetInvalid } from '../../publisher/validate.ts';
import { checkTree, snapshotFiles } from './tree-check.ts';
import { verifyTreeDir } from '../../protocol/disk-tree.ts';
import { createRoot, signRoot } from '../../protocol/trust-root.ts';
import { envelopeBytes } from '../../protocol/envelope.ts';
import { isoTime } from '../../protocol/schemas/common.ts';
import { keyFromLabel, publishInto, setupTrust, T0 } from './helpers.ts';

const small = () =>
  generateFleet({
    hosts: 24,
    channels: 3,
    wavesPerChannel: 3,
    seed: 'pub',
    chainChannels: true,
    budgetPct: 25,
  }).fleet;

function refuses(fn: () => unknown, cls: Function, re: RegExp): void {
  try {
    fn();
  } catch (e) {
    assert.instance(e, cls);
    assert.match((e as Error).message, re);
    return;
  }
  assert.unreachable('expected a refusal');
}

test('publishes a complete, verifiable tree and repeated publishes increase the version', async () => {
  const s = setupTrust();
  try {
    const base: UncheckedPublishOptions = {
      cacheCheck: 'skip',
      treeDir: s.treeDir,
      fleet: small(),
      releaseKeys: [s.releaseKey],
      trustDir: s.trustDir,
      now: T0,
    };
    const r1 = publishRelease(base);
    assert.is(r1.version, 1);
    assert.is(checkTree(s.treeDir, s.releaseKey).version, 1);
    assert.is(r1.timestamp.expires, '2026-01-01T01:00:00Z');
    // Mutable files must get a newer mtime on every rewrite, even within the same second (nginx ETag).
    const future = Math.floor(Date.now() / 1000) + 100;
    utimesSync(join(s.treeDir, 'timestamp.json'), future, future);
    const r2 = publishRelease({ ...base, now: T0 + 60_000 });
    assert.ok(
      statSync(join(s.treeDir, 'timestamp.json')).mtimeMs / 1000 > future,
      'timestamp.json mtime advanced',
    );
    assert.is(r2.version, 2);
    const checked = checkTree(s.treeDir, s.releaseKey);
    assert.is(checked.version, 2);
    const report = await verifyTreeDir(s.treeDir, s.root, { now: T0 + 60_000 });
    assert.ok(report.ok);
    assert.is(report.release.version, 2);
    assert.is(report.release.hosts, 24);
    assert.is(Object.keys(checked.index.hosts).length, 24);
    assert.equal(r2.rolloutIds, r1.rolloutIds, 're-signing must not change rollout ids');
    assert.is(
      r2.revocations.version,
      r1.revocations.version,
      'unchanged revocations keep their version',
    );
    refuses(
      () => publishRelease({ ...base, now: T0 + 120_000, version: 2 }),
      PublishRefused,
      /not greater than the tree's version 2/,
    );
    assert.is(publishRelease({ ...base, now: T0 + 120_000, version: 10 }).version, 10);
    assert.is(publishRelease({ ...base, now: T0 + 180_000 }).version, 11);
  } finally {
    s.cleanup();
  }
});

test('same fleet + same clock -> byte-identical trees', async () => {
  const a = setupTrust();
  const b = setupTrust();
  try {
    for (const s of [a, b])
      publishRelease({
        cacheCheck: 'skip',
        treeDir: s.treeDir,
        fleet: small(),
        releaseKeys: [s.releaseKey],
        trustDir: s.trustDir,
        now: T0,
        source: 'git:abc',
      });
    const fa = snapshotFiles(a.treeDir);
    const fb = snapshotFiles(b.treeDir);
    assert.equal([...fa.keys()], [...fb.keys()]);
    for (const [k, v] of fa) assert.ok(v.equals(fb.get(k)!), `${k} differs`);
    assert.ok(fa.size > 24);
  } finally {
    a.cleanup();
    b.cleanup();
  }
});

test('rollout id: kept when another channel changes, changed by a target change in the channel', async () => {
  const s = setupTrust();
  try {
    const fleet = small();
    const base: UncheckedPublishOptions = {
      cacheCheck: 'skip',
      treeDir: s.treeDir,
      fleet,
      releaseKeys: [s.releaseKey],
      trustDir: s.trustDir,
      now: T0,
    };
    const r1 = publishRelease(base);
    const changed = structuredClone(fleet);
    const inCh1 = Object.entries(changed.hosts).find(([, h]) => h.channel === 'ch-1')![1];
    inCh1.target = inCh1.target.replace(/-nixos-system/, '-nixos-system-v2');
    const r2 = publishRelease({ ...base, fleet: changed, now: T0 + 1000 });
    assert.is(r2.rolloutIds['ch-0'], r1.rolloutIds['ch-0']);
    assert.is.not(r2.rolloutIds['ch-1'], r1.rolloutIds['ch-1']);
    // ch-2 is gated by ch-1, but only through the edge, not ch-1's content: unchanged.
    assert.is(r2.rolloutIds['ch-2'], r1.rolloutIds['ch-2']);
  } finally {
    s.cleanup();
  }
});

test('refresh re-signs only the timestamp and always advances its mtime', async () => {
  const s = setupTrust();
  try {
    publishInto(s, small());
    const before = snapshotFiles(s.treeDir);
    const tsPath = join(s.treeDir, 'timestamp.json');
    // A future mtime: a same-second rewrite must still move it forward (nginx ETag = mtime + size).
    const future = Math.floor(Date.now() / 1000) + 100;
    utimesSync(tsPath, future, future);
    const r = refreshTimestamp({
      treeDir: s.treeDir,
      releaseKeys: [s.releaseKey],
      now: T0 + 600_000,
    });
    assert.is(r.issuedAt, '2026-01-01T00:10:00Z');
    assert.is(r.expires, '2026-01-01T01:10:00Z');
    assert.ok(statSync(tsPath).mtimeMs / 1000 > future);
    const after = snapshotFiles(s.treeDir);
    for (const [k, v] of before)
      if (k !== 'timestamp.json') assert.ok(v.equals(after.get(k)!), `${k} changed`);
    assert.not.ok(before.get('timestamp.json')!.equals(after.get('timestamp.json')!));
    assert.is(checkTree(s.treeDir, s.releaseKey).timestamp.issuedAt, '2026-01-01T00:10:00Z');
    refuses(
      () => refreshTimestamp({ treeDir: s.treeDir, releaseKeys: [s.releaseKey], now: T0 }),
      PublishRefused,
      /before the current timestamp/,
    );
    // A refresh never vouches for a file changed behind its back.
    writeFileSync(join(s.treeDir, 'releases/1/index.json'), '{}');
    refuses(
      () =>
        refreshTimestamp({ treeDir: s.treeDir, releaseKeys: [s.releaseKey], now: T0 + 700_000 }),
      Error,
      /does not match the digest/,
    );
  } finally {
    s.cleanup();
  }
});

test('revocations: a change writes a new immutable version; the timestamp binds it', async () => {
  const s = setupTrust();
  try {
    const fleet = small();
    const base: UncheckedPublishOptions = {
      cacheCheck: 'skip',
      treeDir: s.treeDir,
      fleet,
      releaseKeys: [s.releaseKey],
      trustDir: s.trustDir,
      now: T0,
    };
    const r1 = publishRelease(base);
    const revoked = structuredClone(fleet);
    revoked.revoked = { hosts: [{ host: 'host-003', reason: 'stolen' }], closures: [] };
    const future = Math.floor(Date.now() / 1000) + 100;
    utimesSync(join(s.treeDir, 'revocations.json'), future, future);
    const r2 = publishRelease({ ...base, fleet: revoked, now: T0 + 5000 });
    assert.ok(
      statSync(join(s.treeDir, 'revocations.json')).mtimeMs / 1000 > future,
      'revocations.json mtime advanced',
    );
    assert.is(r2.revocations.version, r1.revocations.version + 1);
    assert.is(r2.revocations.file.path, `revocations-${r2.revocations.version}.json`);
    const r3 = publishRelease({ ...base, fleet: revoked, now: T0 + 9000 });
    assert.equal(r3.revocations, r2.revocations, 'revokedAt is carried over, so nothing changes');
    const mirror = snapshotFiles(s.treeDir).get('revocations.json')!;
    assert.ok(mirror.equals(snapshotFiles(s.treeDir).get(r2.revocations.file.path)!));
    checkTree(s.treeDir, s.releaseKey);
  } finally {
    s.cleanup();
  }
});

test('refuses keys the trust root does not allow, a foreign fleet, an invalid fleet, a clock behind the tree', async () => {
  const s = setupTrust('generated', { releaseValidUntil: T0 + 3600_000 });
  try {
    const base: UncheckedPublishOptions = {
      cacheCheck: 'skip',
      treeDir: s.treeDir,
      fleet: small(),
      releaseKeys: [s.releaseKey],
      trustDir: s.trustDir,
      now: T0,
    };
    refuses(
      () => publishRelease({ ...base, releaseKeys: [keyFromLabel('intruder')] }),
      PublishRefused,
      /is not listed in trust root v1/,
    );
    refuses(
      () => publishRelease({ ...base, now: T0 + 7200_000 }),
      PublishRefused,
      /valid from .* until 2026-01-01T01:00:00Z, not at/,
    );
    refuses(() => publishRelease({ ...base, releaseKeys: [] }), PublishRefused, /no release key/);
    const other = generateFleet({
      hosts: 3,
      channels: 1,
      wavesPerChannel: 1,
      seed: 'o',
      fleetName: 'other',
    }).fleet;
    refuses(
      () => publishRelease({ ...base, fleet: other }),
      PublishRefused,
      /trust root is for fleet "generated"/,
    );
    const bad = structuredClone(base.fleet as ReturnType<typeof small>);
    bad.hosts['host-001']!.channel = 'stabel';
    refuses(
      () => publishRelease({ ...base, fleet: bad }),
      FleetInvalid,
      /hosts\.host-001\.channel: unknown channel "stabel"/,
    );
    publishRelease(base);
    refuses(
      () => publishRelease({ ...base, now: T0 - 1000 }),
      PublishRefused,
      /before the current timestamp's issuedAt/,
    );
  } finally {
    s.cleanup();
  }
});

test('a threshold of two release keys needs both', async () => {
  const second = keyFromLabel('release-2');
  const s = setupTrust('generated', { releaseThreshold: 2, extraReleaseKeys: [second] });
  try {
    const base: UncheckedPublishOptions = {
      cacheCheck: 'skip',
      treeDir: s.treeDir,
      fleet: small(),
      releaseKeys: [s.releaseKey],
      trustDir: s.trustDir,
      now: T0,
    };
    refuses(() => publishRelease(base), PublishRefused, /needs 2 release keys, 1 given/);
    publishRelease({ ...base, releaseKeys: [s.releaseKey, second] });
    checkTree(s.treeDir, s.releaseKey);
  } finally {
    s.cleanup();
  }
});

test('signing on two threads (publishReleaseChecked) writes the same bytes as signing in line, with two keys', async () => {
  const second = keyFromLabel('release-2');
  const s = setupTrust('generated', { releaseThreshold: 2, extraReleaseKeys: [second] });
  try {
    // 1,100 manifests: several chunks for each thread of the batch signer (protocol/ed25519.ts).
    const fleet = generateFleet({
      hosts: 1100,
      channels: 3,
      wavesPerChannel: 3,
      seed: 'two-threads',
      chainChannels: true,
      budgetPct: 25,
    }).fleet;
    const inLine = join(s.dir, 'in-line');
    const threads = join(s.dir, 'threads');
    for (const [i, now] of [T0, T0 + 60_000].entries()) {
      const base = {
        fleet,
        releaseKeys: [s.releaseKey, second],
        trustDir: s.trustDir,
        now,
        cacheCheck: 'skip' as const,
      };
      const a = publishRelease({ ...base, treeDir: inLine });
      const b = await publishReleaseChecked({ ...base, treeDir: threads });
      assert.is(b.version, i + 1);
      assert.equal(b.index, a.index);
      const want = snapshotFiles(inLine);
      const got = snapshotFiles(threads);
      assert.equal([...got.keys()].sort(), [...want.keys()].sort());
      for (const [path, bytes] of want)
        assert.ok(got.get(path)!.equals(bytes), `${path} differs between the two signers`);
    }
    assert.is(checkTree(threads, s.releaseKey).version, 2);
  } finally {
    s.cleanup();
  }
});

test('one publisher per tree: a live lock holder refuses, a dead one is taken over', async () => {
  const s = setupTrust();
  try {
    const base: UncheckedPublishOptions = {
      cacheCheck: 'skip',
      treeDir: s.treeDir,
      fleet: small(),
      releaseKeys: [s.releaseKey],
      trustDir: s.trustDir,
      now: T0,
    };
    mkdirSync(s.treeDir, { recursive: true });
    const lock = join(s.treeDir, '.publish.lock');
    writeFileSync(lock, `${process.ppid}\n`);
    refuses(
      () => publishRelease(base),
      PublishRefused,
      new RegExp(`being published by process ${process.ppid}`),
    );
    const dead = spawnSync(process.execPath, ['-e', 'process.exit(0)']).pid!;
    writeFileSync(lock, `${dead}\n`);
    assert.is(publishRelease(base).version, 1);
    assert.not.ok(existsSync(lock));
  } finally {
    s.cleanup();
  }
});

test('a rotated trust root is copied into the tree and the new release key is used', async () => {
  const s = setupTrust();
  try {
    const base: UncheckedPublishOptions = {
      cacheCheck: 'skip',
      treeDir: s.treeDir,
      fleet: small(),
      releaseKeys: [s.releaseKey],
      trustDir: s.trustDir,
      now: T0,
    };
    publishRelease(base);
    const newRelease = keyFromLabel('release-2026');
    const v2 = signRoot(
      createRoot({
        fleet: 'generated',
        version: 2,
        issuedAt: isoTime(T0 + 1000),
        expires: isoTime(T0 + 365 * 86_400_000),
        rootKeys: [s.rootKey],
        rootThreshold: 1,
        releaseKeys: [
          { key: newRelease, validFrom: isoTime(T0), validUntil: isoTime(T0 + 30 * 86_400_000) },
        ],
        releaseThreshold: 1,
        cacheKeys: [],
      }),
      [s.rootKey],
    );
    writeFileSync(join(s.trustDir, 'root', '2.json'), envelopeBytes(v2));
    refuses(
      () => publishRelease({ ...base, now: T0 + 60_000 }),
      PublishRefused,
      /is not listed in trust root v2/,
    );
    // A tree that already carries root v2 (e.g. copied by an operator): refreshing the old release with
    // the new key would point a fresh timestamp at documents v2 rejects.
    writeFileSync(join(s.treeDir, 'root', '2.json'), envelopeBytes(v2));
    refuses(
      () => refreshTimestamp({ treeDir: s.treeDir, releaseKeys: [newRelease], now: T0 + 60_000 }),
      PublishRefused,
      /does not verify against trust root v2 .*publish a new release/,
    );
    const r = publishRelease({ ...base, releaseKeys: [newRelease], now: T0 + 60_000 });
    assert.is(r.rootVersion, 2);
    const report = await verifyTreeDir(s.treeDir, s.root, { now: T0 + 60_000 });
    assert.equal(report.root.chain, [1, 2]);
    assert.is(report.release.version, 2);
    assert.is(
      refreshTimestamp({ treeDir: s.treeDir, releaseKeys: [newRelease], now: T0 + 120_000 })
        .releaseVersion,
      2,
    );
  } finally {
    s.cleanup();
  }
});

test('a root with rejectBefore after the bound revocations: the next publish re-signs them (same key, same content)', async () => {
  const s = setupTrust();
  try {
    const base: UncheckedPublishOptions = {
      cacheCheck: 'skip',
      treeDir: s.treeDir,
      fleet: small(),
      releaseKeys: [s.releaseKey],
      trustDir: s.trustDir,
      now: T0,
    };
    const r1 = publishRelease(base);
    // Same keys, only the compromise switch: everything signed before T0 + 30 s is refused from now on.
    const v2 = signRoot(
      createRoot({
        fleet: 'generated',
        version: 2,
        issuedAt: isoTime(T0 + 30_000),
        expires: isoTime(T0 + 365 * 86_400_000),
        rootKeys: [s.rootKey],
        rootThreshold: 1,
        releaseKeys: [
          {
            key: s.releaseKey,
            validFrom: isoTime(T0 - 86_400_000),
            validUntil: isoTime(T0 + 365 * 86_400_000),
          },
        ],
        releaseThreshold: 1,
        cacheKeys: [],
        rejectBefore: isoTime(T0 + 30_000),
      }),
      [s.rootKey],
    );
    writeFileSync(join(s.trustDir, 'root', '2.json'), envelopeBytes(v2));
    const r2 = publishRelease({ ...base, now: T0 + 60_000 });
    assert.ok(
      r2.revocations.version > r1.revocations.version,
      'a new revocations version, signed after rejectBefore',
    );
    const report = await verifyTreeDir(s.treeDir, s.root, { now: T0 + 60_000 });
    assert.equal(report.root.chain, [1, 2]);
    assert.is(report.release.version, 2);
  } finally {
    s.cleanup();
  }
});

test.run();
