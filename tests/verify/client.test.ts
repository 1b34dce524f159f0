// The agent-side workflow: updateTrust (root walk, timestamp, revocations, rollback state) and
// fetchHostView (one host's documents), driven through an injected fetch.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Fetch } from '../../protocol/verify/fetcher.ts';
import { diskFetch } from '../../protocol/disk-tree.ts';
import { initialClientState, parseClientState, ClientState } from '../../protocol/verify/state.ts';
import { updateTrust, isFreshnessFailure } from '../../protocol/verify/update-trust.ts';
import { fetchHostView, hostViewOf } from '../../protocol/verify/host-view.ts';
import {
  hostManifestPath,
  channelPlanPath,
  TIMESTAMP_PATH,
  REVOCATIONS_PATH,
  budgetsPath,
} from '../../protocol/layout.ts';
import { Stale, FutureDated, RollbackAttempt } from '../../protocol/errors.ts';
import { newSigningKey } from '../../protocol/keys.ts';
import {
  DAY,
  HOUR,
  buildStandardTree,
  makeRoot,
  writeRelease,
  writeRevocations,
  writeRoot,
  writeTimestamp,
} from '../support/tree-builder.ts';
import {
  NOW,
  cleanupTempDirs,
  expectRefusalAsync,
  flipByteInFleetValue,
  tempDir,
} from './helpers.ts';

test.after.each(cleanupTempDirs);

function setup() {
  const t = buildStandardTree(tempDir('client'), NOW);
  const fetch = diskFetch(t.dir);
  return { ...t, fetch, state: initialClientState(t.root) };
}

test('updateTrust + fetchHostView: the host gets its manifest, plan, gating plan and budgets', async () => {
  const s = setup();
  const u = await updateTrust({ fetch: s.fetch, state: s.state, now: NOW });
  assert.is(u.state.highestReleaseVersion, 1);
  assert.is(u.state.highestRevocationsVersion, 1);
  assert.is(u.state.highestTimestampIssuedAt, u.timestamp.signed.issuedAt);
  const view = await fetchHostView({ fetch: s.fetch, trusted: u, host: 'prod-1' });
  assert.is(view.manifest.host, 'prod-1');
  assert.is(view.plan.channel, 'prod');
  assert.equal(
    view.gatingPlans.map((p) => p.channel),
    ['canary'],
  );
  assert.is(view.budgets.type, 'disruption-budgets');
  // Its own and gating plans are not budget plans; canary's agent reaches prod only through the budgets.
  assert.equal(view.budgetPlans, []);
  const canary = await fetchHostView({ fetch: s.fetch, trusted: u, host: 'canary-1' });
  assert.equal(canary.gatingPlans, []);
  assert.equal(
    canary.budgetPlans.map((p) => p.channel),
    ['prod'],
  );
  assert.throws(
    () => hostViewOf({ manifests: new Map(), plans: {}, budgets: view.budgets }, 'prod-1'),
    /hostViewOf: host "prod-1" was not among the manifests walked/,
  );
  // The state survives a JSON round trip through the strict reader.
  const back = parseClientState(JSON.stringify(u.state), 'state.json');
  assert.equal(back, u.state);
});

test('client state is strict: unknown fields refused', () => {
  const s = setup();
  assert.not.ok(ClientState.safeParse({ ...s.state, extra: 1 }).success);
});

test('the fetch sees size caps for every file', async () => {
  const s = setup();
  const asked = new Map<string, number>();
  const spy: Fetch = async (p, max) => {
    asked.set(p, max);
    return s.fetch(p, max);
  };
  const u = await updateTrust({ fetch: spy, state: s.state, now: NOW });
  await fetchHostView({ fetch: spy, trusted: u, host: 'canary-0' });
  assert.is(asked.get(TIMESTAMP_PATH), 16 * 1024);
  assert.is(asked.get('root/2.json'), 64 * 1024);
  assert.is(asked.get(hostManifestPath(1, 'canary-0')), 64 * 1024);
  assert.ok(
    asked.has(REVOCATIONS_PATH) &&
      asked.has(channelPlanPath(1, 'canary')) &&
      asked.has(budgetsPath(1)),
  );
});

test("host A's manifest served as host B's -> WrongHost", async () => {
  const s = setup();
  const u = await updateTrust({ fetch: s.fetch, state: s.state, now: NOW });
  const swapped: Fetch = async (p, max) =>
    s.fetch(p === hostManifestPath(1, 'prod-1') ? hostManifestPath(1, 'prod-0') : p, max);
  await expectRefusalAsync(
    () => fetchHostView({ fetch: swapped, trusted: u, host: 'prod-1' }),
    'WrongHost',
    hostManifestPath(1, 'prod-1'),
  );
});

test('no manifest for this host in the release -> WrongHost', async () => {
  const s = setup();
  const u = await updateTrust({ fetch: s.fetch, state: s.state, now: NOW });
  await expectRefusalAsync(
    () => fetchHostView({ fetch: s.fetch, trusted: u, host: 'stranger' }),
    'WrongHost',
    hostManifestPath(1, 'stranger'),
  );
});

test('tampered manifest -> BadSignature; tampered plan -> BadSignature naming the plan', async () => {
  const s = setup();
  const u = await updateTrust({ fetch: s.fetch, state: s.state, now: NOW });
  flipByteInFleetValue(join(s.dir, channelPlanPath(1, 'canary')));
  await expectRefusalAsync(
    () => fetchHostView({ fetch: s.fetch, trusted: u, host: 'prod-0' }),
    'BadSignature',
    channelPlanPath(1, 'canary'),
  );
  flipByteInFleetValue(join(s.dir, hostManifestPath(1, 'prod-0')));
  await expectRefusalAsync(
    () => fetchHostView({ fetch: s.fetch, trusted: u, host: 'prod-0' }),
    'BadSignature',
    hostManifestPath(1, 'prod-0'),
  );
});

function addRelease2(s: ReturnType<typeof setup>) {
  const release2 = writeRelease({
    dir: s.dir,
    version: 2,
    issuedAt: NOW - HOUR,
    channels: {
      canary: ['canary-0', 'canary-1', 'canary-2'],
      prod: ['prod-0', 'prod-1', 'prod-2'],
    },
    gateOnFirst: true,
    signers: s.keys.release,
    targetLabel: 'b',
  });
  const revocations = writeRevocations({
    dir: s.dir,
    version: 2,
    issuedAt: NOW - HOUR,
    signers: s.keys.release,
  });
  writeTimestamp({
    dir: s.dir,
    issuedAt: NOW - 30 * 60_000,
    releaseVersion: 2,
    index: release2.index,
    revocationsVersion: 2,
    revocations,
    signers: s.keys.release,
  });
  return release2;
}

test("an older release's manifest served for the current release -> MixAndMatch", async () => {
  const s = setup();
  addRelease2(s);
  const u = await updateTrust({ fetch: s.fetch, state: s.state, now: NOW });
  const old: Fetch = async (p, max) =>
    s.fetch(p === hostManifestPath(2, 'prod-2') ? hostManifestPath(1, 'prod-2') : p, max);
  await expectRefusalAsync(
    () => fetchHostView({ fetch: old, trusted: u, host: 'prod-2' }),
    'MixAndMatch',
    hostManifestPath(2, 'prod-2'),
  );
});

test('a plan that is not the one the manifest binds -> MixAndMatch naming the plan', async () => {
  const s = setup();
  addRelease2(s);
  const u = await updateTrust({ fetch: s.fetch, state: s.state, now: NOW });
  copyFileSync(join(s.dir, channelPlanPath(1, 'prod')), join(s.dir, channelPlanPath(2, 'prod')));
  await expectRefusalAsync(
    () => fetchHostView({ fetch: s.fetch, trusted: u, host: 'prod-0' }),
    'MixAndMatch',
    channelPlanPath(2, 'prod'),
  );
});

test('an older release served again (fresh timestamp) -> RollbackAttempt', async () => {
  const s = setup();
  const snapshot = readFileSync(join(s.dir, TIMESTAMP_PATH));
  const snapshotRev = readFileSync(join(s.dir, REVOCATIONS_PATH));
  addRelease2(s);
  const u = await updateTrust({ fetch: s.fetch, state: s.state, now: NOW });
  assert.is(u.state.highestReleaseVersion, 2);
  // The control plane replays the release-1 timestamp and revocations (both still unexpired).
  const replay: Fetch = async (p, max) =>
    p === TIMESTAMP_PATH ? snapshot : p === REVOCATIONS_PATH ? snapshotRev : s.fetch(p, max);
  const e = await expectRefusalAsync(
    () => updateTrust({ fetch: replay, state: u.state, now: NOW }),
    'RollbackAttempt',
    TIMESTAMP_PATH,
  );
  assert.instance(e, RollbackAttempt);
  assert.not.ok(isFreshnessFailure(e));
});

test('a newly signed timestamp naming an older release -> RollbackAttempt', async () => {
  const s = setup();
  addRelease2(s);
  const u = await updateTrust({ fetch: s.fetch, state: s.state, now: NOW });
  const revocations = writeRevocations({
    dir: s.dir,
    version: 2,
    issuedAt: NOW - HOUR,
    signers: s.keys.release,
  });
  writeTimestamp({
    dir: s.dir,
    issuedAt: NOW - 60_000,
    releaseVersion: 1,
    index: s.release.index,
    revocationsVersion: 2,
    revocations,
    signers: s.keys.release,
  });
  const e = await expectRefusalAsync(
    () => updateTrust({ fetch: s.fetch, state: u.state, now: NOW }),
    'RollbackAttempt',
    TIMESTAMP_PATH,
  );
  assert.match(e.detail, /names release 1, but release 2 was already seen/);
});

test('an older timestamp for the same release -> RollbackAttempt; the same one again is fine', async () => {
  const s = setup();
  const u1 = await updateTrust({ fetch: s.fetch, state: s.state, now: NOW });
  const older = readFileSync(join(s.dir, TIMESTAMP_PATH));
  const bytes = readFileSync(join(s.dir, REVOCATIONS_PATH));
  const { sha256Digest } = await import('../../protocol/canonical.ts');
  writeTimestamp({
    dir: s.dir,
    issuedAt: NOW - 10 * 60_000,
    releaseVersion: 1,
    index: s.release.index,
    revocationsVersion: 1,
    revocations: { path: REVOCATIONS_PATH, digest: sha256Digest(bytes), length: bytes.length },
    signers: s.keys.release,
  });
  const u2 = await updateTrust({ fetch: s.fetch, state: u1.state, now: NOW });
  await updateTrust({ fetch: s.fetch, state: u2.state, now: NOW });
  const replay: Fetch = async (p, max) => (p === TIMESTAMP_PATH ? older : s.fetch(p, max));
  await expectRefusalAsync(
    () => updateTrust({ fetch: replay, state: u2.state, now: NOW }),
    'RollbackAttempt',
    TIMESTAMP_PATH,
  );
});

test('older revocations -> RollbackAttempt', async () => {
  const s = setup();
  const u = await updateTrust({ fetch: s.fetch, state: s.state, now: NOW });
  const ahead = { ...u.state, highestRevocationsVersion: 5 };
  await expectRefusalAsync(
    () => updateTrust({ fetch: s.fetch, state: ahead, now: NOW }),
    'RollbackAttempt',
    TIMESTAMP_PATH,
  );
});

test('stale and future-dated timestamps are freshness failures (no new activations, not a rollback)', async () => {
  const s = setup();
  const late = await expectRefusalAsync(
    () => updateTrust({ fetch: s.fetch, state: s.state, now: NOW + 4 * HOUR }),
    'Stale',
    TIMESTAMP_PATH,
  );
  assert.instance(late, Stale);
  assert.ok(isFreshnessFailure(late));
  const early = await expectRefusalAsync(
    () => updateTrust({ fetch: s.fetch, state: s.state, now: NOW - DAY, clockSkewSeconds: 60 }),
    'FutureDated',
    TIMESTAMP_PATH,
  );
  assert.instance(early, FutureDated);
  assert.ok(isFreshnessFailure(early));
});

test('withheld timestamp -> Stale; withheld revocations -> MixAndMatch', async () => {
  const s = setup();
  await expectRefusalAsync(
    () =>
      updateTrust({
        fetch: async (p, m) => (p === TIMESTAMP_PATH ? undefined : s.fetch(p, m)),
        state: s.state,
        now: NOW,
      }),
    'Stale',
    TIMESTAMP_PATH,
  );
  await expectRefusalAsync(
    () =>
      updateTrust({
        fetch: async (p, m) => (p === REVOCATIONS_PATH ? undefined : s.fetch(p, m)),
        state: s.state,
        now: NOW,
      }),
    'MixAndMatch',
    REVOCATIONS_PATH,
  );
});

test('endless data: a fetcher returning more than the cap -> TooLarge', async () => {
  const s = setup();
  const endless: Fetch = async (p, m) =>
    p === TIMESTAMP_PATH ? new Uint8Array(20 * 1024).fill(32) : s.fetch(p, m);
  await expectRefusalAsync(
    () => updateTrust({ fetch: endless, state: s.state, now: NOW }),
    'TooLarge',
    TIMESTAMP_PATH,
  );
});

test('revoked host -> Revoked; revoked closure -> Revoked', async () => {
  const s = setup();
  const revocations = writeRevocations({
    dir: s.dir,
    version: 2,
    issuedAt: NOW - HOUR,
    hosts: ['prod-1'],
    closures: [s.release.targets['canary-2']!],
    signers: s.keys.release,
  });
  writeTimestamp({
    dir: s.dir,
    issuedAt: NOW - 30 * 60_000,
    releaseVersion: 1,
    index: s.release.index,
    revocationsVersion: 2,
    revocations,
    signers: s.keys.release,
  });
  const u = await updateTrust({ fetch: s.fetch, state: s.state, now: NOW });
  const e1 = await expectRefusalAsync(
    () => fetchHostView({ fetch: s.fetch, trusted: u, host: 'prod-1' }),
    'Revoked',
    hostManifestPath(1, 'prod-1'),
  );
  assert.match(e1.detail, /host "prod-1" is revoked/);
  const e2 = await expectRefusalAsync(
    () => fetchHostView({ fetch: s.fetch, trusted: u, host: 'canary-2' }),
    'Revoked',
    hostManifestPath(1, 'canary-2'),
  );
  assert.match(e2.detail, /target .* is revoked/);
  await fetchHostView({ fetch: s.fetch, trusted: u, host: 'prod-0' });
});

test('root rotation through updateTrust: the state moves to root 2, then a release signed by the new key verifies', async () => {
  const s = setup();
  const u1 = await updateTrust({ fetch: s.fetch, state: s.state, now: NOW });
  const newRoot = newSigningKey('root-2');
  const newRelease = newSigningKey('release-2');
  writeRoot(
    s.dir,
    makeRoot({
      version: 2,
      issuedAt: NOW - DAY,
      rootKeys: [newRoot],
      releaseKeys: [{ key: newRelease, validFrom: NOW - DAY, validUntil: NOW + 300 * DAY }],
      signers: [...s.keys.root, newRoot],
    }),
  );
  const release = writeRelease({
    dir: s.dir,
    version: 2,
    issuedAt: NOW - HOUR,
    rootVersion: 2,
    channels: { canary: ['canary-0'], prod: ['prod-0'] },
    signers: [newRelease],
  });
  const revocations = writeRevocations({
    dir: s.dir,
    version: 2,
    issuedAt: NOW - HOUR,
    signers: [newRelease],
  });
  writeTimestamp({
    dir: s.dir,
    issuedAt: NOW - 30 * 60_000,
    rootVersion: 2,
    releaseVersion: 2,
    index: release.index,
    revocationsVersion: 2,
    revocations,
    signers: [newRelease],
  });
  const u2 = await updateTrust({ fetch: s.fetch, state: u1.state, now: NOW });
  assert.equal(u2.rootsAdded, [2]);
  assert.is(u2.state.trustedRoot.signed.version, 2);
  assert.is(
    (await fetchHostView({ fetch: s.fetch, trusted: u2, host: 'prod-0' })).manifest.releaseVersion,
    2,
  );
});

test('root 2 signed only by the new root keys -> ThresholdNotMet', async () => {
  const s = setup();
  const newRoot = newSigningKey('root-2');
  writeRoot(
    s.dir,
    makeRoot({
      version: 2,
      issuedAt: NOW - DAY,
      rootKeys: [newRoot],
      releaseKeys: s.keys.release.map((key) => ({
        key,
        validFrom: NOW - DAY,
        validUntil: NOW + DAY,
      })),
      signers: [newRoot],
    }),
  );
  await expectRefusalAsync(
    () => updateTrust({ fetch: s.fetch, state: s.state, now: NOW }),
    'ThresholdNotMet',
    'root/2.json',
  );
});

test.run();
