// The verifier against trees written by the real publisher (publishRelease + the fleet generator).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, cpSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { publishRelease } from '../../publisher/publish.ts';
import { generateFleet } from '../support/fleet-gen.ts';
import { signingKeyFromSeed } from '../../protocol/keys.ts';
import {
  TIMESTAMP_PATH,
  hostManifestPath,
  releaseIndexPath,
  channelPlanPath,
  budgetsPath,
} from '../../protocol/layout.ts';
import { verifyTreeDir } from '../../protocol/disk-tree.ts';
import { diskFetch } from '../../protocol/disk-tree.ts';
import { initialClientState } from '../../protocol/verify/state.ts';
import { updateTrust } from '../../protocol/verify/update-trust.ts';
import { fetchHostView } from '../../protocol/verify/host-view.ts';
import { DAY, makeRoot } from '../support/tree-builder.ts';
import {
  NOW,
  cleanupTempDirs,
  expectRefusal,
  expectRefusalAsync,
  flipByteInFleetValue,
  tempDir,
} from './helpers.ts';

test.after.each(cleanupTempDirs);

const key = (label: string) =>
  signingKeyFromSeed(
    label,
    new Uint8Array(createHash('sha256').update(`published-tree/${label}`).digest()),
  );
const rootKey = key('root');
const releaseKey = key('release');
const root = makeRoot({
  fleet: 'generated',
  issuedAt: NOW - 10 * DAY,
  rootKeys: [rootKey],
  releaseKeys: [{ key: releaseKey, validFrom: NOW - 10 * DAY, validUntil: NOW + 100 * DAY }],
});

function publish(tree: string, seed: string, at: number) {
  const { fleet } = generateFleet({
    hosts: 18,
    channels: 3,
    wavesPerChannel: 2,
    seed,
    chainChannels: true,
    budgetPct: 50,
  });
  return {
    fleet,
    result: publishRelease({
      cacheCheck: 'skip',
      treeDir: tree,
      fleet,
      releaseKeys: [releaseKey],
      roots: [root],
      now: at,
    }),
  };
}

test('a published tree verifies offline and for every host through the agent path', async () => {
  const tree = tempDir('published');
  const { fleet } = publish(tree, 'a', NOW - 60_000);
  const report = await verifyTreeDir(tree, root, { now: NOW });
  assert.ok(report.ok, JSON.stringify(report.unlistedManifests));
  assert.is(report.release.hosts, 18);
  const fetch = diskFetch(tree);
  const trusted = await updateTrust({ fetch, state: initialClientState(root), now: NOW });
  for (const host of Object.keys(fleet.hosts)) {
    const view = await fetchHostView({ fetch, trusted, host });
    assert.is(view.manifest.host, host);
    assert.is(view.gatingPlans.length, view.plan.gatedBy.length);
  }
});

test('flipping one byte in each kind of published signed file -> BadSignature naming it', async () => {
  const tree = tempDir('published');
  publish(tree, 'b', NOW - 60_000);
  const hosts = readdirSync(join(tree, 'releases/1/hosts'));
  const files = [
    TIMESTAMP_PATH,
    releaseIndexPath(1),
    budgetsPath(1),
    channelPlanPath(1, 'ch-1'),
    `releases/1/hosts/${hosts[3]}`,
  ];
  for (const file of files) {
    const copy = tempDir('flip');
    cpSync(tree, copy, { recursive: true });
    flipByteInFleetValue(join(copy, file));
    await expectRefusalAsync(() => verifyTreeDir(copy, root, { now: NOW }), 'BadSignature', file);
  }
});

test('a second publish: the old manifest mixed in -> MixAndMatch; the old timestamp replayed -> RollbackAttempt', async () => {
  const tree = tempDir('published');
  publish(tree, 'c', NOW - 2 * 60_000);
  const fetch = diskFetch(tree);
  const first = await updateTrust({ fetch, state: initialClientState(root), now: NOW });
  const oldTimestamp = await fetch(TIMESTAMP_PATH, 16384);
  const { fleet } = publish(tree, 'c2', NOW - 60_000);
  const second = await updateTrust({ fetch, state: first.state, now: NOW });
  assert.is(second.state.highestReleaseVersion, 2);
  const host = Object.keys(fleet.hosts)[4]!;
  copyFileSync(join(tree, hostManifestPath(1, host)), join(tree, hostManifestPath(2, host)));
  await expectRefusalAsync(
    () => verifyTreeDir(tree, root, { now: NOW }),
    'MixAndMatch',
    hostManifestPath(2, host),
  );
  await expectRefusalAsync(
    () => fetchHostView({ fetch, trusted: second, host }),
    'MixAndMatch',
    hostManifestPath(2, host),
  );
  const replay = async (p: string, max: number) =>
    p === TIMESTAMP_PATH ? oldTimestamp : fetch(p, max);
  await expectRefusalAsync(
    () => updateTrust({ fetch: replay, state: second.state, now: NOW }),
    'RollbackAttempt',
    TIMESTAMP_PATH,
  );
});

test.run();
