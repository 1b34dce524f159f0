// The one release walk (verifyRelease): what it fetches for each kind of reader, and verifyReleaseIndex.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Fetch } from '../../protocol/verify/fetcher.ts';
import { diskFetch } from '../../protocol/disk-tree.ts';
import { verifyRelease, verifyReleaseIndex } from '../../protocol/verify/release.ts';
import { hostManifestPath, releaseIndexPath } from '../../protocol/layout.ts';
import {
  buildStandardTree,
  writeRelease,
  writeTimestamp,
  writeRevocations,
  HOUR,
} from '../support/tree-builder.ts';
import {
  NOW,
  cleanupTempDirs,
  expectRefusalAsync,
  flipByteInFleetValue,
  tempDir,
} from './helpers.ts';
import { readTimestamp } from '../../protocol/verify/documents.ts';

test.after.each(cleanupTempDirs);

function recording(dir: string): { fetch: Fetch; paths: string[] } {
  const paths: string[] = [];
  const disk = diskFetch(dir);
  return { paths, fetch: async (p, max) => (paths.push(p), disk(p, max)) };
}

test("an agent's walk fetches its own manifest only, every file once; the documents are the verified ones", async () => {
  const t = buildStandardTree(tempDir('walk'), NOW);
  const r = recording(t.dir);
  const w = await verifyRelease({
    fetch: r.fetch,
    trusted: t.root,
    now: NOW,
    manifests: ['prod-1'],
    plans: 'needed',
  });
  assert.equal(
    r.paths.filter((p) => p.includes('/hosts/')),
    [hostManifestPath(1, 'prod-1')],
  );
  assert.is(new Set(r.paths).size, r.paths.length);
  assert.equal([...w.manifests.keys()], ['prod-1']);
  assert.is(w.manifests.get('prod-1')!.manifest.host, 'prod-1');
  // prod is gated by canary, and the budget spans both channels.
  assert.equal(Object.keys(w.plans), ['canary', 'prod']);
  assert.is(w.index.version, w.timestamp.signed.release.version);
});

test("an auditor's walk fetches every manifest the index lists", async () => {
  const t = buildStandardTree(tempDir('walk'), NOW);
  const r = recording(t.dir);
  const w = await verifyRelease({
    fetch: r.fetch,
    trusted: t.root,
    now: NOW,
    manifests: 'all',
    plans: 'all',
  });
  assert.is(w.manifests.size, 6);
  assert.is(r.paths.filter((p) => p.includes('/hosts/')).length, 6);
});

test('a missing manifest: WrongHost for the host that asked, MixAndMatch for the auditor (the index binds it)', async () => {
  const t = buildStandardTree(tempDir('walk'), NOW);
  unlinkSync(join(t.dir, hostManifestPath(1, 'prod-2')));
  const fetch = diskFetch(t.dir);
  await expectRefusalAsync(
    () =>
      verifyRelease({ fetch, trusted: t.root, now: NOW, manifests: ['prod-2'], plans: 'needed' }),
    'WrongHost',
    hostManifestPath(1, 'prod-2'),
  );
  await expectRefusalAsync(
    () => verifyRelease({ fetch, trusted: t.root, now: NOW, manifests: 'all', plans: 'all' }),
    'MixAndMatch',
    hostManifestPath(1, 'prod-2'),
  );
  // Another host's walk does not need that file.
  await verifyRelease({ fetch, trusted: t.root, now: NOW, manifests: ['prod-0'], plans: 'needed' });
});

test("verifyReleaseIndex: forged -> BadSignature; another release's index -> MixAndMatch; bound bytes -> accepted", async () => {
  const t = buildStandardTree(tempDir('walk'), NOW);
  const ts = readTimestamp(readFileSync(join(t.dir, 'timestamp.json')), 'timestamp.json').signed;
  const file = releaseIndexPath(1);
  assert.is(
    verifyReleaseIndex(readFileSync(join(t.dir, file)), ts, t.root.signed).signed.version,
    1,
  );

  // A validly signed index of release 2 bound where the timestamp names release 1.
  const r2 = writeRelease({
    dir: t.dir,
    version: 2,
    issuedAt: NOW - HOUR,
    channels: { canary: ['canary-0'], prod: ['prod-0'] },
    gateOnFirst: true,
    signers: t.keys.release,
    targetLabel: 'b',
  });
  const revocations = writeRevocations({
    dir: t.dir,
    version: 1,
    issuedAt: NOW - 2 * HOUR,
    signers: t.keys.release,
  });
  writeTimestamp({
    dir: t.dir,
    issuedAt: NOW - 30 * 60_000,
    releaseVersion: 1,
    index: { ...r2.index },
    revocationsVersion: 1,
    revocations,
    signers: t.keys.release,
  });
  const ts2 = readTimestamp(readFileSync(join(t.dir, 'timestamp.json')), 'timestamp.json').signed;
  assert.throws(
    () => verifyReleaseIndex(readFileSync(join(t.dir, releaseIndexPath(2))), ts2, t.root.signed),
    (e: unknown) => (e as { code?: string }).code === 'MixAndMatch',
  );

  flipByteInFleetValue(join(t.dir, file));
  assert.throws(
    () => verifyReleaseIndex(readFileSync(join(t.dir, file)), ts, t.root.signed),
    (e: unknown) =>
      (e as { code?: string; file?: string }).code === 'BadSignature' &&
      (e as { file?: string }).file === file,
  );
});

test.run();
