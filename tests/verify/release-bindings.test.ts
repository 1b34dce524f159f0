// The release walk's cross-checks, each met by a release that is genuinely and completely signed but
// holds ONE inconsistency (tests/verify/resign.ts): what a buggy or compromised publisher could produce.
// Each must be refused with the right typed error, naming the right file, saying what is wrong.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { diskFetch, diskTreeSource } from '../../protocol/disk-tree.ts';
import { signDocument } from '../../protocol/envelope.ts';
import {
  channelPlanPath,
  hostManifestPath,
  releaseIndexPath,
  budgetsPath,
} from '../../protocol/layout.ts';
import { isoTime } from '../../protocol/schemas/common.ts';
import type { HostManifest } from '../../protocol/schemas/release.ts';
import type { SignedDocument } from '../../protocol/schemas/envelope.ts';
import {
  verifyRelease,
  type VerifiedDocumentMemo,
  type VerifyReleaseOptions,
} from '../../protocol/verify/release.ts';
import { auditTree } from '../../protocol/verify/tree.ts';
import { checkManifestAgainstPlan } from '../../protocol/verify/host-view.ts';
import type { VerificationCode } from '../../protocol/errors.ts';
import {
  DAY,
  HOUR,
  buildStandardTree,
  makeKeys,
  makeRoot,
  writeRoot,
  writeRelease,
  writeRevocations,
  writeSigned,
  writeTimestamp,
  type StandardTree,
} from '../support/tree-builder.ts';
import { NOW, cleanupTempDirs, expectRefusal, expectRefusalAsync, tempDir } from './helpers.ts';
import { resignRelease, type ReleaseEdits } from './resign.ts';

test.after.each(cleanupTempDirs);

const INDEX = releaseIndexPath(1);
const manifestFile = (host: string) => hostManifestPath(1, host);
const planFile = (channel: string) => channelPlanPath(1, channel);
const OTHER_DIGEST = `sha256:${'ab'.repeat(32)}`;

function tree(edits: ReleaseEdits = {}): StandardTree {
  const t = buildStandardTree(tempDir('bind'), NOW);
  resignRelease(t, edits);
  return t;
}

function walk(
  t: StandardTree,
  manifests: VerifyReleaseOptions['manifests'] = ['prod-1'],
  plans: VerifyReleaseOptions['plans'] = 'needed',
  more: Partial<VerifyReleaseOptions> = {},
) {
  return verifyRelease({
    fetch: diskFetch(t.dir),
    trusted: t.root,
    now: NOW,
    manifests,
    plans,
    ...more,
  });
}

/** The walk refuses with `code`, naming `file`, with a detail matching `detail`. */
async function refused(
  t: StandardTree,
  code: VerificationCode,
  file: string,
  detail: RegExp,
  manifests: VerifyReleaseOptions['manifests'] = ['prod-1'],
  plans: VerifyReleaseOptions['plans'] = 'needed',
): Promise<void> {
  const e = await expectRefusalAsync(() => walk(t, manifests, plans), code, file);
  assert.match(e.detail, detail);
}

test('the re-signing helper leaves a consistent release consistent (the baseline every case bends)', async () => {
  const t = tree();
  const w = await walk(t, 'all', 'all');
  assert.is(w.manifests.size, 6);
  assert.equal(Object.keys(w.plans), ['canary', 'prod']);
});

test('index: signed under a newer root than the one in force; another release version', async () => {
  await refused(
    tree({ index: (i) => (i.rootVersion = 2) }),
    'MixAndMatch',
    INDEX,
    /was signed under trust root v2, newer than v1/,
  );
  await refused(
    tree({ index: (i) => (i.version = 2) }),
    'MixAndMatch',
    INDEX,
    /is release 2, the timestamp names release 1/,
  );
});

test("index: a host bound to another host's manifest file (agents read their own path)", async () => {
  const t = tree({ index: (i) => (i.hosts['prod-1']!.manifest = i.hosts['prod-0']!.manifest) });
  await refused(
    t,
    'MixAndMatch',
    INDEX,
    /binds releases\/1\/hosts\/prod-0\.json for host "prod-1", agents read releases\/1\/hosts\/prod-1\.json/,
  );
});

test('a host the release does not list, and a listed manifest that is missing: the refusal says which', async () => {
  const t = tree();
  await refused(t, 'WrongHost', manifestFile('nope'), /release 1 has no manifest for host "nope"/, [
    'nope',
  ]);
  writeFileSync(join(t.dir, manifestFile('prod-2')), '');
  const { unlinkSync } = await import('node:fs');
  unlinkSync(join(t.dir, manifestFile('prod-2')));
  await refused(
    t,
    'WrongHost',
    manifestFile('prod-2'),
    /release 1 has no manifest for host "prod-2"/,
    ['prod-2'],
  );
  await refused(
    t,
    'MixAndMatch',
    manifestFile('prod-2'),
    /is missing, but releases\/1\/index\.json binds it/,
    'all',
    'all',
  );
});

test('a plan or the budgets the index binds, missing: MixAndMatch naming the file and its binder', async () => {
  const { unlinkSync } = await import('node:fs');
  const t = tree();
  unlinkSync(join(t.dir, planFile('canary')));
  await refused(
    t,
    'MixAndMatch',
    planFile('canary'),
    /is missing, but releases\/1\/index\.json binds it/,
  );
  unlinkSync(join(t.dir, budgetsPath(1)));
  await refused(
    t,
    'MixAndMatch',
    budgetsPath(1),
    /is missing, but releases\/1\/index\.json binds it/,
  );
});

test('plans: a host placed in a channel the index does not list', async () => {
  const t = tree({ index: (i) => (i.hosts['prod-1']!.channel = 'ghost') });
  await refused(
    t,
    'MixAndMatch',
    INDEX,
    /host of channel "ghost" is listed but the channel is not/,
  );
});

test("plans: rollout, host count, hosts and gating channels must agree with the index's", async () => {
  await refused(
    tree({ index: (i) => (i.channels['prod']!.rolloutId = OTHER_DIGEST) }),
    'MixAndMatch',
    planFile('prod'),
    new RegExp(`rolloutId sha256:[0-9a-f]{64} differs from the index's ${OTHER_DIGEST}`),
    [],
    'all',
  );
  await refused(
    tree({ index: (i) => (i.channels['prod']!.hostCount = 2) }),
    'MixAndMatch',
    planFile('prod'),
    /lists 3 hosts, the index says 2/,
    [],
    'all',
  );
  await refused(
    tree({ index: (i) => (i.hosts['prod-1']!.channel = 'canary') }),
    'MixAndMatch',
    planFile('prod'),
    /lists host "prod-1", which the index does not place in channel "prod"/,
    [],
    'all',
  );
  await refused(
    tree({ plan: (c, p) => c === 'prod' && (p.gatedBy = ['canary', 'ghost']) }),
    'MixAndMatch',
    planFile('prod'),
    /is gated by channel "ghost", which the index does not list/,
    [],
    'all',
  );
  // The index binds canary's (genuine) plan as prod's.
  await refused(
    tree({ index: (i) => (i.channels['prod'] = { ...i.channels['canary']! }) }),
    'MixAndMatch',
    planFile('canary'),
    /is the plan of "canary", bound as the gating plan of "prod"/,
    [],
    'all',
  );
});

test('release documents of another fleet or another release, signed and bound: refused by content', async () => {
  await refused(
    tree({ manifest: (h, m) => h === 'prod-1' && (m.fleet = 'other-fleet') }),
    'MixAndMatch',
    manifestFile('prod-1'),
    /belongs to fleet "other-fleet", the trust root is for "test-fleet"/,
  );
  await refused(
    tree({ plan: (c, p) => c === 'prod' && (p.releaseVersion = 2) }),
    'MixAndMatch',
    planFile('prod'),
    /belongs to release 2, the timestamp names release 1/,
  );
  await refused(
    tree({ budgets: (b) => (b.fleet = 'other-fleet') }),
    'MixAndMatch',
    budgetsPath(1),
    /belongs to fleet "other-fleet", the trust root is for "test-fleet"/,
  );
});

test('bound bytes: a re-signed manifest the index does not bind, of another length or of the same length', async () => {
  const t = tree();
  const m = JSON.parse(readFileSync(join(t.dir, manifestFile('prod-1')), 'utf8')).signed;
  const bound = readFileSync(join(t.dir, manifestFile('prod-1'))).byteLength;
  writeSigned(t.dir, manifestFile('prod-1'), { ...m, healthyPassesRequired: 10 }, t.keys.release);
  await refused(
    t,
    'MixAndMatch',
    manifestFile('prod-1'),
    new RegExp(`is ${bound + 1} bytes but releases/1/index\\.json binds ${bound}`),
  );
  writeSigned(t.dir, manifestFile('prod-1'), { ...m, healthyPassesRequired: 2 }, t.keys.release);
  await refused(
    t,
    'MixAndMatch',
    manifestFile('prod-1'),
    /digest sha256:[0-9a-f]{64} differs from sha256:[0-9a-f]{64} bound by releases\/1\/index\.json/,
  );
});

test("manifest bindings: channel, plan reference (path, digest or length), budgets, gating plans must be the index's", async () => {
  const prod1 = (edit: (m: HostManifest) => void): ReleaseEdits => ({
    manifest: (h, m) => h === 'prod-1' && edit(m),
  });
  const file = manifestFile('prod-1');
  await refused(
    tree(prod1((m) => (m.channel = 'canary'))),
    'MixAndMatch',
    file,
    /channel "canary" differs from the index \("prod"\)/,
  );
  for (const bend of [
    (m: HostManifest) => (m.plan = { ...m.plan, path: planFile('canary') }),
    (m: HostManifest) => (m.plan = { ...m.plan, digest: OTHER_DIGEST }),
    (m: HostManifest) => (m.plan = { ...m.plan, length: m.plan.length + 1 }),
  ])
    await refused(
      tree(prod1(bend)),
      'MixAndMatch',
      file,
      /binds a plan other than the index's for channel "prod"/,
    );
  await refused(
    tree(prod1((m) => (m.budgets = { ...m.budgets, digest: OTHER_DIGEST }))),
    'MixAndMatch',
    file,
    /binds a budgets file other than the index's/,
  );
  await refused(
    tree(prod1((m) => (m.gatingPlans = []))),
    'MixAndMatch',
    file,
    /binds 0 gating plans, its channel is gated by 1/,
  );
  await refused(
    tree(prod1((m) => (m.gatingPlans = [{ channel: 'prod', plan: m.plan }]))),
    'MixAndMatch',
    file,
    /binds a gating plan for "prod" other than the index's/,
  );
  await refused(
    tree(
      prod1((m) => (m.gatingPlans[0]!.plan = { ...m.gatingPlans[0]!.plan, digest: OTHER_DIGEST })),
    ),
    'MixAndMatch',
    file,
    /binds a gating plan for "canary" other than the index's/,
  );
});

test("manifest against its plan: rollout, target, wave and host key must be the plan's", async () => {
  const prod1 = (edit: (m: HostManifest) => void): ReleaseEdits => ({
    manifest: (h, m) => h === 'prod-1' && edit(m),
  });
  const file = manifestFile('prod-1');
  await refused(
    tree(prod1((m) => (m.rolloutId = OTHER_DIGEST))),
    'MixAndMatch',
    file,
    new RegExp(`rolloutId ${OTHER_DIGEST} differs from its plan's sha256:[0-9a-f]{64}`),
  );
  for (const bend of [
    (m: HostManifest) => (m.target = m.target.replace(/-nixos-system-/, '-nixos-systen-')),
    (m: HostManifest) => (m.wave = 0),
    (m: HostManifest) => (m.hostKey = Buffer.alloc(32, 7).toString('base64')),
  ])
    await refused(
      tree(prod1(bend)),
      'MixAndMatch',
      file,
      /target\/wave\/hostKey differ from the plan of channel "prod"/,
    );
});

test('checkManifestAgainstPlan on its own: another channel, a host the plan does not list, each differing field', async () => {
  const t = tree();
  const read = (path: string) => JSON.parse(readFileSync(join(t.dir, path), 'utf8')).signed;
  const manifest = read(manifestFile('prod-1')) as HostManifest;
  const plan = read(planFile('prod'));
  const canary = read(planFile('canary'));
  const file = manifestFile('prod-1');
  checkManifestAgainstPlan(manifest, plan, file);
  const check =
    (m: HostManifest, p = plan) =>
    () =>
      checkManifestAgainstPlan(m, p, file);
  let e = expectRefusal(
    check(manifest, { ...canary, rolloutId: manifest.rolloutId }),
    'MixAndMatch',
    file,
  );
  assert.match(e.detail, /is in channel "prod" but its plan is for "canary"/);
  e = expectRefusal(check({ ...manifest, rolloutId: OTHER_DIGEST }), 'MixAndMatch', file);
  assert.match(e.detail, /rolloutId sha256:ab.* differs from its plan's/);
  e = expectRefusal(check({ ...manifest, host: 'prod-9' }), 'MixAndMatch', file);
  assert.match(e.detail, /host "prod-9" is not listed in the plan of channel "prod"/);
  for (const field of ['target', 'wave', 'hostKey'] as const) {
    const other = { ...manifest, [field]: read(manifestFile('prod-2'))[field] };
    if (field === 'wave') other.wave = 0;
    e = expectRefusal(check(other), 'MixAndMatch', file);
    assert.match(e.detail, /target\/wave\/hostKey differ from the plan of channel "prod"/);
  }
});

test("plans 'needed': own channel, its gating channels (fetched for gating alone) and the budgets' channels", async () => {
  // No budgets: canary is fetched for prod's agent because it gates prod, and for no other reason.
  const none = tree({ budgets: (b) => (b.budgets = []) });
  assert.equal(Object.keys((await walk(none, ['prod-1'])).plans), ['canary', 'prod']);
  assert.equal(Object.keys((await walk(none, ['canary-1'])).plans), ['canary']);
  // Budgets over every host: canary's agent needs prod's plan, which only the budgets reach.
  assert.equal(Object.keys((await walk(tree(), ['canary-1'])).plans), ['canary', 'prod']);
  // No budgets and no manifests: nothing is needed, while 'all' still means every channel.
  assert.equal(Object.keys((await walk(none, [])).plans), []);
  assert.equal(Object.keys((await walk(none, [], 'all')).plans), ['canary', 'prod']);
});

test('plans come back sorted by channel, also when a gating plan is fetched after the plan it gates', async () => {
  const dir = tempDir('bind');
  const keys = makeKeys();
  const root = makeRoot({
    issuedAt: NOW - 30 * DAY,
    rootKeys: keys.root,
    releaseKeys: keys.release.map((key) => ({
      key,
      validFrom: NOW - 60 * DAY,
      validUntil: NOW + 300 * DAY,
    })),
  });
  writeRoot(dir, root);
  // "a" gates "z" and "m"; with no budgets, z's agent needs z's plan, then a's (for gating alone).
  const release = writeRelease({
    dir,
    version: 1,
    issuedAt: NOW - 2 * HOUR,
    channels: { a: ['a-0'], z: ['z-0'], m: ['m-0'] },
    gateOnFirst: true,
    signers: keys.release,
  });
  writeTimestamp({
    dir,
    issuedAt: NOW - HOUR,
    releaseVersion: 1,
    index: release.index,
    revocationsVersion: 1,
    revocations: writeRevocations({
      dir,
      version: 1,
      issuedAt: NOW - 2 * HOUR,
      signers: keys.release,
    }),
    signers: keys.release,
  });
  const t = { dir, keys, root, release, now: NOW };
  resignRelease(t, { budgets: (b) => (b.budgets = []) });
  assert.equal(Object.keys((await walk(t, ['z-0'])).plans), ['a', 'z']);
  assert.equal(Object.keys((await walk(t, ['z-0', 'm-0'])).plans), ['a', 'm', 'z']);
  const all = await walk(t, [], 'all');
  assert.equal(Object.keys(all.plans), ['a', 'm', 'z']);
  // The files are listed in the order verified: every reader of one tree lists them in one order.
  const planFiles = (w: { files: { file: string; type: string }[] }) =>
    w.files.filter((f) => f.type === 'channel-plan').map((f) => f.file);
  assert.equal(planFiles(all), ['a', 'm', 'z'].map(planFile));
  // An agent's: its channels sorted, then the gating ones.
  assert.equal(planFiles(await walk(t, ['z-0', 'm-0'])), ['m', 'z', 'a'].map(planFile));
});

test('a walk memo never vouches for a manifest it does not hold: a forged one next to a remembered one is refused', async () => {
  const t = tree();
  const entries = new Map<string, SignedDocument<unknown>>();
  const memo: VerifiedDocumentMemo = {
    get: (k) => entries.get(k),
    set: (k, v) => void entries.set(k, v),
  };
  await walk(t, ['prod-1'], 'needed', { memo });
  const file = join(t.dir, manifestFile('prod-2'));
  const env = JSON.parse(readFileSync(file, 'utf8'));
  env.signatures[0].sig = Buffer.alloc(64, 1).toString('base64');
  writeFileSync(file, JSON.stringify(env));
  // The forged manifest is the only one that goes to the batch; the remembered one is taken as is.
  const e = await expectRefusalAsync(
    () => walk(t, ['prod-1', 'prod-2'], 'needed', { memo }),
    'BadSignature',
    manifestFile('prod-2'),
  );
  assert.ok(e);
  await expectRefusalAsync(
    () => walk(t, ['prod-2', 'prod-1'], 'needed', { memo }),
    'BadSignature',
    manifestFile('prod-2'),
  );
});

test("a manifest signed before the root's rejectBefore is refused though everything else is newer", async () => {
  const t = tree({ manifest: (h, m) => h === 'prod-1' && (m.issuedAt = isoTime(NOW - 3 * HOUR)) });
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
      rejectBefore: NOW - 150 * 60_000,
    }),
  );
  const e = await expectRefusalAsync(
    () => walk(t, ['prod-1', 'prod-2']),
    'Revoked',
    manifestFile('prod-1'),
  );
  assert.match(e.detail, /before the trust root's rejectBefore/);
  // Its neighbours, signed after it, verify.
  await walk(t, ['prod-0', 'prod-2']);
});

test('threshold 2: a manifest with one good and one bad release signature is refused, in a batch of good ones', async () => {
  const keys = makeKeys(1, 2);
  const t = buildStandardTree(tempDir('bind'), NOW, { keys });
  // The standard root has threshold 1: replace it with one requiring both release keys.
  const root = makeRoot({
    issuedAt: NOW - 30 * DAY,
    rootKeys: keys.root,
    releaseKeys: keys.release.map((key) => ({
      key,
      validFrom: NOW - 60 * DAY,
      validUntil: NOW + 300 * DAY,
    })),
    releaseThreshold: 2,
  });
  writeRoot(t.dir, root);
  const t2 = { ...t, root };
  resignRelease(t2, {
    envelope: (path, doc) => {
      if (path !== manifestFile('prod-1')) return undefined;
      const good = signDocument(doc, [keys.release[0]!]);
      const other = signDocument({ ...(doc as HostManifest), healthyPassesRequired: 2 }, [
        keys.release[1]!,
      ]);
      return { ...good, signatures: [...good.signatures, ...other.signatures] };
    },
  });
  await walk(t2, ['prod-0', 'prod-2']);
  const e = await expectRefusalAsync(
    () => walk(t2, ['prod-0', 'prod-1', 'prod-2']),
    'BadSignature',
    manifestFile('prod-1'),
  );
  assert.ok(e);
});

test('clock skew is passed through: a timestamp 10 min ahead is accepted with 15 min of skew, refused with the default', async () => {
  const t = tree({ timestamp: (ts) => (ts.issuedAt = isoTime(NOW + 10 * 60_000)) });
  await expectRefusalAsync(() => walk(t), 'FutureDated', 'timestamp.json');
  await walk(t, ['prod-1'], 'needed', { clockSkewSeconds: 900 });
  const audit = (clockSkewSeconds?: number) =>
    auditTree(diskTreeSource(t.dir), t.root, {
      now: NOW,
      ...(clockSkewSeconds === undefined ? {} : { clockSkewSeconds }),
    });
  await expectRefusalAsync(() => audit(), 'FutureDated', 'timestamp.json');
  assert.ok((await audit(900)).report.ok);
  await expectRefusalAsync(() => audit(60), 'FutureDated', 'timestamp.json');
});

test('auditTree: a partial audit (some manifests) reports no unlisted manifests; the memo is used', async () => {
  const t = tree();
  const entries = new Map<string, SignedDocument<unknown>>();
  const memo: VerifiedDocumentMemo = {
    get: (k) => entries.get(k),
    set: (k, v) => void entries.set(k, v),
  };
  const partial = await auditTree(diskTreeSource(t.dir), t.root, {
    now: NOW,
    manifests: ['prod-1'],
    memo,
  });
  assert.ok(partial.report.ok);
  assert.equal(partial.report.unlistedManifests, []);
  assert.is(entries.size, 2 + 2 + 1, 'index, budgets, two plans and the one manifest');
  writeSigned(t.dir, manifestFile('extra-1'), { stray: true }, t.keys.release);
  const full = await auditTree(diskTreeSource(t.dir), t.root, { now: NOW });
  assert.not.ok(full.report.ok);
  assert.equal(full.report.unlistedManifests, [manifestFile('extra-1')]);
  const again = await auditTree(diskTreeSource(t.dir), t.root, { now: NOW, manifests: [] });
  assert.equal(again.report.unlistedManifests, []);
});

test.run();
