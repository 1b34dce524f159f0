// The one release walk (verifyRelease): what it fetches for each kind of reader, and verifyReleaseIndex.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Fetch } from '../../protocol/verify/fetcher.ts';
import { diskFetch } from '../../protocol/disk-tree.ts';
import {
  verifyRelease,
  verifyReleaseIndex,
  verifyReleaseIndexHead,
} from '../../protocol/verify/release.ts';
import { hostManifestPath, releaseIndexPath } from '../../protocol/layout.ts';
import type { SignedDocument } from '../../protocol/schemas/envelope.ts';
import type { VerifiedDocumentMemo } from '../../protocol/verify/release.ts';
import {
  DAY,
  makeRoot,
  writeRoot,
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

for (const [name, verify] of [
  ['verifyReleaseIndex', verifyReleaseIndex],
  ['verifyReleaseIndexHead (host entries without their schema)', verifyReleaseIndexHead],
] as const)
  test(`${name}: forged -> BadSignature; another release's index -> MixAndMatch; bound bytes -> accepted`, async () => {
    const t = buildStandardTree(tempDir('walk'), NOW);
    const ts = readTimestamp(readFileSync(join(t.dir, 'timestamp.json')), 'timestamp.json').signed;
    const file = releaseIndexPath(1);
    const accepted = verify(readFileSync(join(t.dir, file)), ts, t.root.signed).signed;
    assert.is(accepted.version, 1);
    // The same document either way (the host entries as the schema would give them).
    assert.equal(
      accepted,
      verifyReleaseIndex(readFileSync(join(t.dir, file)), ts, t.root.signed).signed,
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
      () => verify(readFileSync(join(t.dir, releaseIndexPath(2))), ts2, t.root.signed),
      (e: unknown) => (e as { code?: string }).code === 'MixAndMatch',
    );

    flipByteInFleetValue(join(t.dir, file));
    assert.throws(
      () => verify(readFileSync(join(t.dir, file)), ts, t.root.signed),
      (e: unknown) =>
        (e as { code?: string; file?: string }).code === 'BadSignature' &&
        (e as { file?: string }).file === file,
    );
  });

/** An in-memory memo that counts what the walk found in it and what it added. */
function countingMemo(): VerifiedDocumentMemo & {
  hits: number;
  added: number;
  entries: Map<string, SignedDocument<unknown>>;
} {
  const entries = new Map<string, SignedDocument<unknown>>();
  const m = {
    entries,
    hits: 0,
    added: 0,
    get(key: string) {
      const e = entries.get(key);
      if (e !== undefined) m.hits++;
      return e;
    },
    set(key: string, env: SignedDocument<unknown>) {
      m.added++;
      entries.set(key, env);
    },
  };
  return m;
}

test('the walk memo: a second walk reuses index, budgets and plans; documents equal; another root reuses nothing', async () => {
  const t = buildStandardTree(tempDir('walk'), NOW);
  const memo = countingMemo();
  const walk = (trusted = t.root) =>
    verifyRelease({
      fetch: diskFetch(t.dir),
      trusted,
      now: NOW,
      manifests: [],
      plans: 'all',
      memo,
    });
  const cold = await walk();
  const planCount = Object.keys(cold.plans).length;
  assert.is(memo.added, 2 + planCount, 'index, budgets and each plan');
  assert.is(memo.hits, 0);
  const warm = await walk();
  assert.is(memo.hits, 2 + planCount);
  assert.is(memo.added, 2 + planCount);
  assert.equal(warm.plans, cold.plans);
  assert.equal(warm.index, cold.index);
  assert.equal(warm.budgets, cold.budgets);

  // A rotated root (same keys, a new version): entries verified under v1 are not believed under v2.
  writeRoot(
    t.dir,
    makeRoot({
      version: 2,
      issuedAt: NOW - 10 * 60_000,
      rootKeys: t.keys.root,
      releaseKeys: t.keys.release.map((key) => ({
        key,
        validFrom: NOW - 60 * DAY,
        validUntil: NOW + 300 * DAY,
      })),
    }),
  );
  const hitsBefore = memo.hits;
  const rotated = await walk();
  assert.is(rotated.root.signed.version, 2);
  assert.is(memo.hits, hitsBefore, 'no entry of the v1 walk is reused under v2');
  assert.is(memo.added, 2 * (2 + planCount));
});

test('a warm walk memo refuses exactly what a walk without one refuses: a plan swapped for the signed budgets', async () => {
  const t = buildStandardTree(tempDir('walk'), NOW);
  const memo = countingMemo();
  const walk = (m?: VerifiedDocumentMemo) =>
    verifyRelease({
      fetch: diskFetch(t.dir),
      trusted: t.root,
      now: NOW,
      manifests: [],
      plans: 'all',
      ...(m ? { memo: m } : {}),
    });
  const first = await walk(memo);
  // The budgets are genuinely signed and in the memo; put their bytes where a plan should be.
  const [channel] = Object.keys(first.plans);
  const planFile = first.index.channels[channel!]!.plan.path;
  writeFileSync(join(t.dir, planFile), readFileSync(join(t.dir, first.index.budgets.path)));
  const plain = await expectRefusalAsync(() => walk(), 'Malformed', planFile);
  const warm = await expectRefusalAsync(() => walk(memo), 'Malformed', planFile);
  assert.is(warm.detail, plain.detail);
});

test('the walk memo covers host manifests: a warm agent walk reuses its manifest; changed bytes are a miss and refused as without a memo', async () => {
  const t = buildStandardTree(tempDir('walk'), NOW);
  const memo = countingMemo();
  const walk = (m?: VerifiedDocumentMemo, hosts = ['prod-1', 'prod-2']) =>
    verifyRelease({
      fetch: diskFetch(t.dir),
      trusted: t.root,
      now: NOW,
      manifests: hosts,
      plans: 'needed',
      ...(m ? { memo: m } : {}),
    });
  const cold = await walk(memo);
  const planCount = Object.keys(cold.plans).length;
  assert.is(memo.added, 2 + planCount + 2, 'index, budgets, each plan and both manifests');
  const warm = await walk(memo);
  assert.is(memo.hits, 2 + planCount + 2);
  assert.is(memo.added, 2 + planCount + 2, 'nothing new');
  assert.equal(warm.manifests, cold.manifests);

  // Genuine bytes of another host where prod-1's manifest belongs: a hit, and refused all the same.
  const file1 = join(t.dir, hostManifestPath(1, 'prod-1'));
  const genuine1 = readFileSync(file1);
  writeFileSync(file1, readFileSync(join(t.dir, hostManifestPath(1, 'prod-2'))));
  const plainSwap = await expectRefusalAsync(
    () => walk(),
    'WrongHost',
    hostManifestPath(1, 'prod-1'),
  );
  const hits = memo.hits;
  const warmSwap = await expectRefusalAsync(
    () => walk(memo),
    'WrongHost',
    hostManifestPath(1, 'prod-1'),
  );
  assert.ok(memo.hits > hits, 'the swapped bytes came from the memo');
  assert.is(warmSwap.detail, plainSwap.detail);

  // Tampered bytes: a miss (nothing added: the forgery fails its signature), refused as forged.
  writeFileSync(file1, genuine1);
  flipByteInFleetValue(file1);
  const added = memo.added;
  const plainForged = await expectRefusalAsync(
    () => walk(undefined, ['prod-1']),
    'BadSignature',
    hostManifestPath(1, 'prod-1'),
  );
  const warmForged = await expectRefusalAsync(
    () => walk(memo, ['prod-1']),
    'BadSignature',
    hostManifestPath(1, 'prod-1'),
  );
  assert.is(warmForged.detail, plainForged.detail);
  assert.is(memo.added, added, 'a refused manifest is never memoised');
});

test.run();
