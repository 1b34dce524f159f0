// Acceptance tests of the offline verifier (verifyTree) on small trees built from the schemas.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { sha256Digest } from '../../protocol/canonical.ts';
import { join } from 'node:path';
import { verifyTreeDir } from '../../protocol/disk-tree.ts';
import { SCHEMA_VERSION } from '../../protocol/schemas/common.ts';
import {
  hostManifestPath,
  budgetsPath,
  channelPlanPath,
  releaseIndexPath,
  TIMESTAMP_PATH,
  REVOCATIONS_PATH,
} from '../../protocol/layout.ts';
import { newSigningKey } from '../../protocol/keys.ts';
import { readEnvelope } from '../../protocol/document.ts';
import { HostManifest } from '../../protocol/schemas/release.ts';
import {
  DAY,
  HOUR,
  buildStandardTree,
  makeKeys,
  makeRoot,
  writeRelease,
  writeRevocations,
  writeRoot,
  writeTimestamp,
  writeSigned,
} from '../support/tree-builder.ts';
import {
  NOW,
  cleanupTempDirs,
  expectRefusal,
  expectRefusalAsync,
  flipByteInFleetValue,
  tempDir,
} from './helpers.ts';

test.after.each(cleanupTempDirs);

const standard = () => buildStandardTree(tempDir('tree'), NOW);

function readManifest(dir: string, path: string) {
  return readEnvelope(readFileSync(join(dir, path)), HostManifest, {
    file: path,
    maxBytes: 65536,
    expectType: 'host-manifest',
  });
}

test('a well-formed tree verifies; the report lists every document', async () => {
  const t = standard();
  const r = await verifyTreeDir(t.dir, t.root, { now: NOW });
  assert.ok(r.ok);
  assert.is(r.release.version, 1);
  assert.is(r.release.hosts, 6);
  assert.equal(r.release.channels, ['canary', 'prod']);
  assert.is(r.documents.length, 1 + 1 + 1 + 1 + 2 + 6);
  assert.ok(r.documents.every((d) => d.result === 'ok'));
  assert.equal(r.unlistedManifests, []);
});

const SIGNED_FILES = [
  TIMESTAMP_PATH,
  REVOCATIONS_PATH,
  releaseIndexPath(1),
  budgetsPath(1),
  channelPlanPath(1, 'canary'),
  channelPlanPath(1, 'prod'),
  hostManifestPath(1, 'canary-0'),
  hostManifestPath(1, 'prod-2'),
];
for (const file of SIGNED_FILES) {
  test(`one byte flipped inside a string value of ${file} -> BadSignature naming it`, async () => {
    const t = standard();
    flipByteInFleetValue(join(t.dir, file));
    await expectRefusalAsync(
      () => verifyTreeDir(t.dir, t.root, { now: NOW }),
      'BadSignature',
      file,
    );
  });
}

function twoReleases() {
  const t = standard();
  const release2 = writeRelease({
    dir: t.dir,
    version: 2,
    issuedAt: NOW - HOUR,
    channels: {
      canary: ['canary-0', 'canary-1', 'canary-2'],
      prod: ['prod-0', 'prod-1', 'prod-2'],
    },
    gateOnFirst: true,
    signers: t.keys.release,
    targetLabel: 'b',
  });
  const revocations = writeRevocations({
    dir: t.dir,
    version: 2,
    issuedAt: NOW - HOUR,
    signers: t.keys.release,
  });
  writeTimestamp({
    dir: t.dir,
    issuedAt: NOW - 30 * 60_000,
    releaseVersion: 2,
    index: release2.index,
    revocationsVersion: 2,
    revocations,
    signers: t.keys.release,
  });
  return { ...t, release2 };
}

test('two releases in one tree: the timestamp picks release 2', async () => {
  const t = twoReleases();
  assert.is((await verifyTreeDir(t.dir, t.root, { now: NOW })).release.version, 2);
});

test('a host manifest from an older release mixed into a newer tree -> MixAndMatch', async () => {
  const t = twoReleases();
  copyFileSync(
    join(t.dir, hostManifestPath(1, 'prod-1')),
    join(t.dir, hostManifestPath(2, 'prod-1')),
  );
  const e = await expectRefusalAsync(
    () => verifyTreeDir(t.dir, t.root, { now: NOW }),
    'MixAndMatch',
    hostManifestPath(2, 'prod-1'),
  );
  assert.match(e.detail, /belongs to release 1/);
});

test('a channel plan from an older release -> MixAndMatch naming the plan', async () => {
  const t = twoReleases();
  copyFileSync(join(t.dir, channelPlanPath(1, 'prod')), join(t.dir, channelPlanPath(2, 'prod')));
  await expectRefusalAsync(
    () => verifyTreeDir(t.dir, t.root, { now: NOW }),
    'MixAndMatch',
    channelPlanPath(2, 'prod'),
  );
});

test("host A's manifest served as host B's -> WrongHost", async () => {
  const t = standard();
  copyFileSync(
    join(t.dir, hostManifestPath(1, 'prod-0')),
    join(t.dir, hostManifestPath(1, 'prod-1')),
  );
  await expectRefusalAsync(
    () => verifyTreeDir(t.dir, t.root, { now: NOW }),
    'WrongHost',
    hostManifestPath(1, 'prod-1'),
  );
});

test('a validly signed manifest that differs from the one the index binds -> MixAndMatch', async () => {
  const t = standard();
  const path = hostManifestPath(1, 'prod-1');
  const m = readManifest(t.dir, path).signed;
  writeSigned(
    t.dir,
    path,
    { ...m, probes: [{ kind: 'tcp', name: 'x', host: 'localhost', port: 22, timeoutMs: 1000 }] },
    t.keys.release,
  );
  await expectRefusalAsync(() => verifyTreeDir(t.dir, t.root, { now: NOW }), 'MixAndMatch', path);
});

function retimestamp(t: ReturnType<typeof standard>, issuedAt: number, expiresInMs: number) {
  const bytes = readFileSync(join(t.dir, REVOCATIONS_PATH));
  const revocations = { path: REVOCATIONS_PATH, digest: sha256Digest(bytes), length: bytes.length };
  writeTimestamp({
    dir: t.dir,
    issuedAt,
    expiresInMs,
    releaseVersion: 1,
    index: t.release.index,
    revocationsVersion: 1,
    revocations,
    signers: t.keys.release,
  });
}

test('expired timestamp -> Stale', async () => {
  const t = standard();
  retimestamp(t, NOW - 5 * HOUR, 4 * HOUR);
  await expectRefusalAsync(
    () => verifyTreeDir(t.dir, t.root, { now: NOW }),
    'Stale',
    TIMESTAMP_PATH,
  );
});

test('timestamp issued a day in the future -> FutureDated; within the skew it is accepted', async () => {
  const t = standard();
  retimestamp(t, NOW + DAY, 4 * HOUR);
  await expectRefusalAsync(
    () => verifyTreeDir(t.dir, t.root, { now: NOW }),
    'FutureDated',
    TIMESTAMP_PATH,
  );
  retimestamp(t, NOW + 60_000, 4 * HOUR);
  await verifyTreeDir(t.dir, t.root, { now: NOW, clockSkewSeconds: 300 });
});

test('missing timestamp -> Stale (a withheld timestamp means no new activations)', async () => {
  const t = standard();
  unlinkSync(join(t.dir, TIMESTAMP_PATH));
  await expectRefusalAsync(
    () => verifyTreeDir(t.dir, t.root, { now: NOW }),
    'Stale',
    TIMESTAMP_PATH,
  );
});

test('a manifest signed by an unknown key -> UnknownKey', async () => {
  const t = standard();
  const path = hostManifestPath(1, 'canary-1');
  const m = readManifest(t.dir, path).signed;
  writeSigned(t.dir, path, m, [newSigningKey('intruder')]);
  await expectRefusalAsync(() => verifyTreeDir(t.dir, t.root, { now: NOW }), 'UnknownKey', path);
});

test('a release key used after its validity window -> Expired naming the document', async () => {
  const dir = tempDir('window');
  const keys = makeKeys(1, 2);
  const [oldKey, newKey] = keys.release as [(typeof keys.release)[0], (typeof keys.release)[0]];
  const root = makeRoot({
    issuedAt: NOW - 30 * DAY,
    rootKeys: keys.root,
    releaseKeys: [
      { key: oldKey, validFrom: NOW - 60 * DAY, validUntil: NOW - DAY },
      { key: newKey, validFrom: NOW - 2 * DAY, validUntil: NOW + 300 * DAY },
    ],
  });
  writeRoot(dir, root);
  const channels = { canary: ['c-0'], prod: ['p-0', 'p-1'] };
  // The whole release signed by the retired key, after its window closed.
  const release = writeRelease({
    dir,
    version: 1,
    issuedAt: NOW - 2 * HOUR,
    channels,
    signers: [oldKey],
  });
  const revocations = writeRevocations({
    dir,
    version: 1,
    issuedAt: NOW - 2 * HOUR,
    signers: [newKey],
  });
  writeTimestamp({
    dir,
    issuedAt: NOW - HOUR,
    releaseVersion: 1,
    index: release.index,
    revocationsVersion: 1,
    revocations,
    signers: [newKey],
  });
  const e = await expectRefusalAsync(
    () => verifyTreeDir(dir, root, { now: NOW }),
    'Expired',
    releaseIndexPath(1),
  );
  assert.match(e.detail, /release-0.*valid from .* until/);
  // Signed by the new key it verifies.
  const good = writeRelease({
    dir,
    version: 1,
    issuedAt: NOW - 2 * HOUR,
    channels,
    signers: [newKey],
  });
  writeTimestamp({
    dir,
    issuedAt: NOW - HOUR,
    releaseVersion: 1,
    index: good.index,
    revocationsVersion: 1,
    revocations,
    signers: [newKey],
  });
  assert.ok((await verifyTreeDir(dir, root, { now: NOW })).ok);
  // The timestamp signed by the retired key (even backdated into its window) is refused too.
  writeTimestamp({
    dir,
    issuedAt: NOW - 2 * DAY,
    expiresInMs: 3 * DAY,
    releaseVersion: 1,
    index: good.index,
    revocationsVersion: 1,
    revocations,
    signers: [oldKey],
  });
  await expectRefusalAsync(() => verifyTreeDir(dir, root, { now: NOW }), 'Expired', TIMESTAMP_PATH);
});

test('duplicate JSON keys -> Malformed naming the file', async () => {
  const t = standard();
  const path = hostManifestPath(1, 'prod-0');
  const text = readFileSync(join(t.dir, path), 'utf8').replace(
    '"host":',
    '"host":"prod-9","host":',
  );
  writeFileSync(join(t.dir, path), text);
  const e = await expectRefusalAsync(
    () => verifyTreeDir(t.dir, t.root, { now: NOW }),
    'Malformed',
    path,
  );
  assert.match(e.detail, /duplicate key "host"/);
});

test('schemaVersion 2 -> SchemaUnsupported', async () => {
  const t = standard();
  const path = hostManifestPath(1, 'prod-0');
  const m = readManifest(t.dir, path).signed;
  writeSigned(t.dir, path, { ...m, schemaVersion: SCHEMA_VERSION + 1 }, t.keys.release);
  await expectRefusalAsync(
    () => verifyTreeDir(t.dir, t.root, { now: NOW }),
    'SchemaUnsupported',
    path,
  );
});

test('an unknown field in a signed document -> Malformed naming the field', async () => {
  const t = standard();
  const path = hostManifestPath(1, 'prod-0');
  const m = readManifest(t.dir, path).signed;
  writeSigned(t.dir, path, { ...m, extra: 1 }, t.keys.release);
  const e = await expectRefusalAsync(
    () => verifyTreeDir(t.dir, t.root, { now: NOW }),
    'Malformed',
    path,
  );
  assert.match(e.detail, /extra/);
});

test('oversized file -> TooLarge', async () => {
  const t = standard();
  const path = hostManifestPath(1, 'prod-0');
  writeFileSync(join(t.dir, path), ' '.repeat(64 * 1024 + 1));
  await expectRefusalAsync(() => verifyTreeDir(t.dir, t.root, { now: NOW }), 'TooLarge', path);
});

test('revoked host and revoked closure are reported per host', async () => {
  const t = standard();
  const revocations = writeRevocations({
    dir: t.dir,
    version: 2,
    issuedAt: NOW - HOUR,
    hosts: ['prod-1'],
    closures: [t.release.targets['canary-2']!],
    signers: t.keys.release,
  });
  writeTimestamp({
    dir: t.dir,
    issuedAt: NOW - 30 * 60_000,
    releaseVersion: 1,
    index: t.release.index,
    revocationsVersion: 2,
    revocations,
    signers: t.keys.release,
  });
  const r = await verifyTreeDir(t.dir, t.root, { now: NOW });
  assert.equal(r.revokedHosts.map((h) => h.host).sort(), ['canary-2', 'prod-1']);
  assert.is(r.documents.filter((d) => d.result === 'revoked').length, 2);
});

test("revocations not matching the timestamp's binding -> MixAndMatch", async () => {
  const t = standard();
  // A validly signed, newer revocations file that the timestamp does not bind.
  writeRevocations({
    dir: t.dir,
    version: 1,
    issuedAt: NOW - HOUR,
    hosts: ['prod-0'],
    signers: t.keys.release,
  });
  await expectRefusalAsync(
    () => verifyTreeDir(t.dir, t.root, { now: NOW }),
    'MixAndMatch',
    REVOCATIONS_PATH,
  );
});

test('rejectBefore in a rotated root refuses documents signed before it', async () => {
  const t = standard();
  const root2 = makeRoot({
    version: 2,
    issuedAt: NOW - 10 * 60_000,
    rootKeys: t.keys.root,
    releaseKeys: t.keys.release.map((key) => ({
      key,
      validFrom: NOW - 60 * DAY,
      validUntil: NOW + 300 * DAY,
    })),
    rejectBefore: NOW - 90 * 60_000,
  });
  writeRoot(t.dir, root2);
  // The timestamp (1 h old) passes; the revocations (2 h old) were signed before rejectBefore.
  const e = await expectRefusalAsync(
    () => verifyTreeDir(t.dir, t.root, { now: NOW }),
    'Revoked',
    REVOCATIONS_PATH,
  );
  assert.match(e.detail, /rejectBefore/);
});

test('root rotation: a good chain verifies and the report names the chain', async () => {
  const t = standard();
  const newRootKey = newSigningKey('root-new');
  const newRelease = newSigningKey('release-new');
  const root2 = makeRoot({
    version: 2,
    issuedAt: NOW - DAY,
    rootKeys: [newRootKey],
    releaseKeys: [{ key: newRelease, validFrom: NOW - DAY, validUntil: NOW + 300 * DAY }],
    signers: [...t.keys.root, newRootKey],
  });
  writeRoot(t.dir, root2);
  const release = writeRelease({
    dir: t.dir,
    version: 2,
    issuedAt: NOW - HOUR,
    rootVersion: 2,
    channels: { canary: ['canary-0'], prod: ['prod-0'] },
    signers: [newRelease],
  });
  const revocations = writeRevocations({
    dir: t.dir,
    version: 2,
    issuedAt: NOW - HOUR,
    signers: [newRelease],
  });
  writeTimestamp({
    dir: t.dir,
    issuedAt: NOW - 30 * 60_000,
    rootVersion: 2,
    releaseVersion: 2,
    index: release.index,
    revocationsVersion: 2,
    revocations,
    signers: [newRelease],
  });
  const r = await verifyTreeDir(t.dir, t.root, { now: NOW });
  assert.equal(r.root.chain, [1, 2]);
  assert.is(r.release.version, 2);
});

test('root rotation with a skipped version (root/3.json without root/2.json) -> MixAndMatch at the timestamp', async () => {
  const t = standard();
  const root3 = makeRoot({
    version: 3,
    issuedAt: NOW - DAY,
    rootKeys: t.keys.root,
    releaseKeys: t.keys.release.map((key) => ({
      key,
      validFrom: NOW - DAY,
      validUntil: NOW + DAY,
    })),
  });
  writeRoot(t.dir, root3);
  const bytes = readFileSync(join(t.dir, REVOCATIONS_PATH));
  const revocations = { path: REVOCATIONS_PATH, digest: sha256Digest(bytes), length: bytes.length };
  writeTimestamp({
    dir: t.dir,
    issuedAt: NOW - 30 * 60_000,
    rootVersion: 3,
    releaseVersion: 1,
    index: t.release.index,
    revocationsVersion: 1,
    revocations,
    signers: t.keys.release,
  });
  const e = await expectRefusalAsync(
    () => verifyTreeDir(t.dir, t.root, { now: NOW }),
    'MixAndMatch',
    TIMESTAMP_PATH,
  );
  assert.match(e.detail, /trust root v3/);
});

test('a manifest file not listed in the index is reported', async () => {
  const t = standard();
  const m = readManifest(t.dir, hostManifestPath(1, 'prod-0')).signed;
  writeSigned(t.dir, hostManifestPath(1, 'ghost'), { ...m, host: 'ghost' }, t.keys.release);
  const r = await verifyTreeDir(t.dir, t.root, { now: NOW });
  assert.not.ok(r.ok);
  assert.equal(r.unlistedManifests, [hostManifestPath(1, 'ghost')]);
});

test('a file the index binds is missing -> MixAndMatch naming it', async () => {
  const t = standard();
  unlinkSync(join(t.dir, hostManifestPath(1, 'prod-2')));
  await expectRefusalAsync(
    () => verifyTreeDir(t.dir, t.root, { now: NOW }),
    'MixAndMatch',
    hostManifestPath(1, 'prod-2'),
  );
});

test('a tree for another fleet -> MixAndMatch', async () => {
  const t = standard();
  const path = hostManifestPath(1, 'prod-0');
  const m = readManifest(t.dir, path).signed;
  writeSigned(t.dir, path, { ...m, fleet: 'other-fleet' }, t.keys.release);
  await expectRefusalAsync(() => verifyTreeDir(t.dir, t.root, { now: NOW }), 'MixAndMatch', path);
});

test.run();
