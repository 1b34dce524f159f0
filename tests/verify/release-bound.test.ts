// The release walk's 'bound-by-index' manifests (a reader's option: the dashboard): a manifest whose
// bytes are exactly the file the verified index binds is authenticated by the index's signatures, so its
// own Ed25519 checks are skipped. Everything else about it is checked as in the default ('each'), and a
// manifest the index does not bind byte for byte is verified in full, refused exactly as before.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { diskFetch } from '../../protocol/disk-tree.ts';
import { signDocument } from '../../protocol/envelope.ts';
import { DocumentMemo } from '../../protocol/memo-file.ts';
import { isVerificationError } from '../../protocol/errors.ts';
import { hostManifestPath } from '../../protocol/layout.ts';
import type { SignedDocument } from '../../protocol/schemas/envelope.ts';
import {
  verifyRelease,
  type ManifestSignatures,
  type VerifiedDocumentMemo,
} from '../../protocol/verify/release.ts';
import { buildStandardTree, makeKeys, type StandardTree } from '../support/tree-builder.ts';
import {
  NOW,
  cleanupTempDirs,
  expectRefusalAsync,
  flipByteInFleetValue,
  tempDir,
} from './helpers.ts';
import { resignRelease, type ReleaseEdits } from './resign.ts';
import { join } from 'node:path';

test.after.each(cleanupTempDirs);

const PROD_1 = hostManifestPath(1, 'prod-1');

function tree(edits: ReleaseEdits = {}): StandardTree {
  const t = buildStandardTree(tempDir('bound'), NOW);
  resignRelease(t, edits);
  return t;
}

function walk(
  t: StandardTree,
  manifestSignatures: ManifestSignatures,
  memo?: VerifiedDocumentMemo,
) {
  return verifyRelease({
    fetch: diskFetch(t.dir),
    trusted: t.root,
    now: NOW,
    manifests: 'all',
    plans: 'all',
    manifestSignatures,
    ...(memo ? { memo } : {}),
  });
}

/** prod-1's manifest signed by the release keys, then one signature byte flipped; the index binds those bytes. */
function badSignatureOnProd1(t: { keys: { release: Parameters<typeof signDocument>[1] } }) {
  return (path: string, doc: unknown): SignedDocument<unknown> | undefined => {
    if (path !== PROD_1) return undefined;
    const env = signDocument(doc as Record<string, unknown>, t.keys.release);
    const sig = Buffer.from(env.signatures[0]!.sig, 'base64');
    sig[5]! ^= 1;
    env.signatures[0]!.sig = sig.toString('base64');
    return env;
  };
}

class MapMemo implements VerifiedDocumentMemo {
  readonly entries = new Map<string, SignedDocument<unknown>>();
  get(key: string) {
    return this.entries.get(key);
  }
  set(key: string, env: SignedDocument<unknown>) {
    this.entries.set(key, env);
  }
}

test('a consistent release: both modes give the same manifests', async () => {
  const t = tree();
  const each = await walk(t, 'each');
  const bound = await walk(t, 'bound-by-index');
  assert.equal([...bound.manifests], [...each.manifests]);
  assert.equal(bound.files, each.files);
});

test("a manifest the index binds byte for byte is vouched for by the index's signatures (its own are not checked)", async () => {
  const keys = makeKeys();
  const t = buildStandardTree(tempDir('bound'), NOW, { keys });
  resignRelease(t, { envelope: badSignatureOnProd1({ keys }) });
  // What 'each' (the auditor, the agent) refuses...
  await expectRefusalAsync(() => walk(t, 'each'), 'BadSignature', PROD_1);
  // ...a reader of a release index that binds exactly these bytes takes as the index's word.
  const bound = await walk(t, 'bound-by-index');
  assert.is(bound.manifests.get('prod-1')!.manifest.host, 'prod-1');
});

test('a manifest whose bytes differ from what the index binds is verified in full and refused as before', async () => {
  const t = tree();
  const file = join(t.dir, PROD_1);
  flipByteInFleetValue(file);
  const each = await expectRefusalAsync(() => walk(t, 'each'), 'BadSignature', PROD_1);
  const bound = await expectRefusalAsync(() => walk(t, 'bound-by-index'), 'BadSignature', PROD_1);
  assert.is(bound.detail, each.detail);
});

test('bound by the index, its signature entries must still name release keys to the threshold', async () => {
  const keys = makeKeys();
  const t = buildStandardTree(tempDir('bound'), NOW, { keys });
  const stranger = makeKeys().release;
  resignRelease(t, {
    envelope: (path, doc) =>
      path === PROD_1 ? signDocument(doc as Record<string, unknown>, stranger) : undefined,
  });
  const each = await expectRefusalAsync(() => walk(t, 'each'), 'UnknownKey', PROD_1);
  const bound = await expectRefusalAsync(() => walk(t, 'bound-by-index'), 'UnknownKey', PROD_1);
  assert.is(bound.detail, each.detail);
});

test("a memo a 'bound-by-index' walk filled never vouches for a manifest's signature in an 'each' walk", async () => {
  const keys = makeKeys();
  const t = buildStandardTree(tempDir('bound'), NOW, { keys });
  resignRelease(t, { envelope: badSignatureOnProd1({ keys }) });
  const memo = new MapMemo();
  await walk(t, 'bound-by-index', memo);
  // The bound walk reuses its own entries...
  const again = await walk(t, 'bound-by-index', memo);
  assert.is(again.manifests.size, 6);
  // ...which the auditor's walk does not read: the bad signature is still found.
  await expectRefusalAsync(() => walk(t, 'each', memo), 'BadSignature', PROD_1);
});

test("a persisted memo keeps only that a bound manifest's bytes passed intake; the next walk decodes them: the same manifests", async () => {
  const t = tree();
  const memo = new DocumentMemo();
  const first = await walk(t, 'bound-by-index', memo);
  const taken = memo.used().filter(([key]) => key.endsWith(' host-manifest-bound-by-index'));
  assert.is(taken.length, first.manifests.size);
  assert.ok(
    taken.every(([, env]) => env === null),
    'no envelope kept for a bound manifest',
  );
  const next = new DocumentMemo(memo.used());
  const again = await walk(t, 'bound-by-index', next);
  assert.equal([...again.manifests], [...first.manifests]);
  assert.ok(next.hits >= first.manifests.size);
  // An auditor's walk over the same memo verifies every manifest itself (no entry of its kind).
  assert.equal([...(await walk(t, 'each', next)).manifests], [...first.manifests]);
});

test('a bound manifest whose bytes begin with a BOM (which intake drops) is decoded the same way by the next walk', async () => {
  const t = tree({
    bytes: (path, bytes) =>
      path === PROD_1 ? Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), bytes]) : undefined,
  });
  const memo = new DocumentMemo();
  const first = await walk(t, 'bound-by-index', memo);
  assert.ok(first.manifests.has('prod-1'));
  const next = new DocumentMemo(memo.used());
  const again = await walk(t, 'bound-by-index', next);
  assert.equal([...again.manifests], [...first.manifests]);
  assert.ok(next.hits >= first.manifests.size, 'the manifests were decoded from the memo');
});

test('a bound manifest that strict intake refuses (a field its schema does not know) is refused by every walk, with or without a memo', async () => {
  const t = tree({
    manifest: (host, m) => {
      if (host === 'prod-1') (m as unknown as Record<string, unknown>)['extra'] = 1;
    },
  });
  const refusal = async (memo?: VerifiedDocumentMemo) => {
    try {
      await walk(t, 'bound-by-index', memo);
    } catch (e) {
      if (isVerificationError(e)) return { code: e.code, file: e.file };
      throw e;
    }
    assert.unreachable('the walk took a manifest strict intake refuses');
    return { code: '', file: '' };
  };
  const memo = new DocumentMemo();
  const bare = await refusal();
  assert.is(bare.file, PROD_1);
  const withMemo = await refusal(memo);
  assert.equal([withMemo.code, withMemo.file], [bare.code, bare.file]);
  assert.equal([(await refusal(memo)).code, (await refusal(memo)).file], [bare.code, bare.file]);
});

test.run();
