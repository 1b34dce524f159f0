// Operator controls as a signed, versioned document bound by the timestamp (issue 9 section 2): the
// operator role of the trust root and its threshold, replay and rollback of controls, the wrong role,
// tampering, and the publisher binding the newest controls at publish and refresh.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { b64, newSigningKey, type SigningKey } from '../../protocol/keys.ts';
import { isoTime } from '../../protocol/schemas/common.ts';
import { TrustRoot } from '../../protocol/schemas/root.ts';
import {
  createRoot,
  signRoot,
  verifyOperatorSigned,
  type SignedRoot,
} from '../../protocol/trust-root.ts';
import { envelopeBytes, signDocument } from '../../protocol/envelope.ts';
import { diskFetch } from '../../protocol/disk-tree.ts';
import { initialClientState, parseClientState } from '../../protocol/verify/state.ts';
import { updateTrust } from '../../protocol/verify/update-trust.ts';
import { verifyTreeDir } from '../../protocol/disk-tree.ts';
import { controlsPath, TIMESTAMP_PATH } from '../../protocol/layout.ts';
import { publishRelease } from '../../publisher/publish.ts';
import { refreshTimestamp } from '../../publisher/refresh.ts';
import { writeControls, type ControlsBody } from '../../publisher/controls.ts';
import { PublishRefused } from '../../publisher/errors.ts';
import type { FleetInput } from '../../publisher/fleet-schema.ts';
import { expectRefusal, expectRefusalAsync } from '../verify/helpers.ts';

const NOW = Date.parse('2030-01-15T12:00:00Z');
const DAY = 86_400_000;
const dirs: string[] = [];
test.after.each(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

interface Setup {
  dir: string;
  root: SignedRoot;
  release: SigningKey;
  operators: SigningKey[];
}

function setup(
  o: {
    operators?: number;
    threshold?: number;
    withRole?: boolean;
    operatorWindow?: [number, number];
  } = {},
): Setup {
  const dir = mkdtempSync(join(tmpdir(), 'nf-controls-'));
  dirs.push(dir);
  const rootKey = newSigningKey('root');
  const release = newSigningKey('release');
  const operators = Array.from({ length: o.operators ?? 1 }, (_, i) =>
    newSigningKey(`operator-${i}`),
  );
  const [from, until] = o.operatorWindow ?? [NOW - DAY, NOW + 365 * DAY];
  const root = signRoot(
    createRoot({
      fleet: 'ops',
      version: 1,
      issuedAt: isoTime(NOW - DAY),
      expires: isoTime(NOW + 365 * DAY),
      rootKeys: [rootKey],
      rootThreshold: 1,
      releaseKeys: [
        { key: release, validFrom: isoTime(NOW - DAY), validUntil: isoTime(NOW + 365 * DAY) },
      ],
      releaseThreshold: 1,
      cacheKeys: [],
      ...(o.withRole === false
        ? {}
        : {
            operatorKeys: operators.map((k) => ({
              key: k,
              validFrom: isoTime(from),
              validUntil: isoTime(until),
            })),
            operatorThreshold: o.threshold ?? 1,
          }),
    }),
    [rootKey],
  );
  publishRelease({
    cacheCheck: 'skip',
    treeDir: dir,
    fleet: fleet(),
    releaseKeys: [release],
    roots: [root],
    now: NOW,
  });
  return { dir, root, release, operators };
}

function fleet(): FleetInput {
  const host = (channel: string) => ({
    system: 'x86_64-linux',
    channel,
    target: '/nix/store/11111111111111111111111111111111-nixos-system-a',
    hostKey: b64(newSigningKey('h').publicKey),
    tags: [],
  });
  const timing = {
    signingIntervalSeconds: 600,
    confirmDeadlineSeconds: 60,
    heartbeatSeconds: 30,
    offlineWindowSeconds: 600,
  };
  return {
    fleet: 'ops',
    hosts: { 'web-1': host('prod'), 'lab-1': host('lab') },
    channels: {
      prod: { policy: 'p', freshnessSeconds: 1800, ...timing },
      lab: { policy: 'p', freshnessSeconds: 7200, ...timing },
    },
    policies: { p: { strategy: 'all-at-once', waves: [] } },
  } as unknown as FleetInput;
}

const pause =
  (channel: string) =>
  (c: ControlsBody, at: string): ControlsBody => ({
    ...c,
    paused: [...c.paused, { channel, since: at, reason: 'test' }],
  });

function control(
  s: Setup,
  edit: (c: ControlsBody, at: string) => ControlsBody,
  now: number,
  keys = s.operators,
) {
  const r = writeControls({ treeDir: s.dir, root: s.root.signed, keys, now, edit });
  refreshTimestamp({ treeDir: s.dir, releaseKeys: [s.release], now });
  return r;
}

test('refresh binds the newest controls; the client verifies them and remembers the version', async () => {
  const s = setup();
  const before = await updateTrust({
    fetch: diskFetch(s.dir),
    state: initialClientState(s.root),
    now: NOW,
  });
  assert.is(before.controls, null);
  assert.is(before.state.highestControlsVersion, 0);
  control(s, pause('prod'), NOW + 1000);
  const u = await updateTrust({ fetch: diskFetch(s.dir), state: before.state, now: NOW + 2000 });
  assert.is(u.controls!.signed.version, 1);
  assert.equal(
    u.controls!.signed.paused.map((p) => p.channel),
    ['prod'],
  );
  assert.is(u.timestamp.signed.controls!.file.path, controlsPath(1));
  assert.is(u.state.highestControlsVersion, 1);
  // A new publish carries the controls forward (they are not part of the release).
  publishRelease({
    cacheCheck: 'skip',
    treeDir: s.dir,
    fleet: fleet(),
    releaseKeys: [s.release],
    roots: [s.root],
    now: NOW + 3000,
  });
  const after = await updateTrust({ fetch: diskFetch(s.dir), state: u.state, now: NOW + 4000 });
  assert.is(after.timestamp.signed.release.version, 2);
  assert.is(after.controls!.signed.version, 1);
  // The offline verifier walks them too.
  const report = await verifyTreeDir(s.dir, s.root, { now: NOW + 4000 });
  assert.ok(report.documents.some((d) => d.file === controlsPath(1) && d.type === 'controls'));
  // State files written before controls existed still load (none seen).
  const old = JSON.parse(JSON.stringify(initialClientState(s.root))) as Record<string, unknown>;
  delete old['highestControlsVersion'];
  assert.is(parseClientState(JSON.stringify(old), 'trust-state.json').highestControlsVersion, 0);
});

test('replay: an older timestamp naming older controls, or none, is a rollback attempt once newer ones were seen', async () => {
  const s = setup();
  const noControls = readFileSync(join(s.dir, TIMESTAMP_PATH));
  control(s, pause('prod'), NOW + 1000);
  const v1 = readFileSync(join(s.dir, TIMESTAMP_PATH));
  control(s, (c) => ({ ...c, paused: [] }), NOW + 2000);
  const seen = await updateTrust({
    fetch: diskFetch(s.dir),
    state: initialClientState(s.root),
    now: NOW + 3000,
  });
  assert.is(seen.state.highestControlsVersion, 2);
  // A compromised CI (release key) re-signs a fresh timestamp that binds controls v1 again (the pause).
  const ts = JSON.parse(v1.toString('utf8')) as { signed: Record<string, unknown> };
  const replay = envelopeBytes(
    signDocument({ ...ts.signed, issuedAt: isoTime(NOW + 4000), expires: isoTime(NOW + DAY) }, [
      s.release,
    ]),
  );
  writeFileSync(join(s.dir, TIMESTAMP_PATH), replay);
  const e = await expectRefusalAsync(
    () => updateTrust({ fetch: diskFetch(s.dir), state: seen.state, now: NOW + 5000 }),
    'RollbackAttempt',
    TIMESTAMP_PATH,
  );
  assert.match(e.detail, /controls v1, but v2 was already seen/);
  // ...or one that drops the controls altogether.
  const bare = JSON.parse(noControls.toString('utf8')) as { signed: Record<string, unknown> };
  writeFileSync(
    join(s.dir, TIMESTAMP_PATH),
    envelopeBytes(
      signDocument({ ...bare.signed, issuedAt: isoTime(NOW + 4000), expires: isoTime(NOW + DAY) }, [
        s.release,
      ]),
    ),
  );
  await expectRefusalAsync(
    () => updateTrust({ fetch: diskFetch(s.dir), state: seen.state, now: NOW + 5000 }),
    'RollbackAttempt',
    TIMESTAMP_PATH,
  );
  // A client that has not seen v2 accepts v1 (it is signed and bound): delay, never widen.
  writeFileSync(join(s.dir, TIMESTAMP_PATH), replay);
  const fresh = await updateTrust({
    fetch: diskFetch(s.dir),
    state: initialClientState(s.root),
    now: NOW + 5000,
  });
  assert.is(fresh.controls!.signed.version, 1);
});

test('wrong role: the release key (CI) cannot sign controls, and a root without the operator role accepts none', async () => {
  const s = setup();
  assert.throws(
    () =>
      writeControls({
        treeDir: s.dir,
        root: s.root.signed,
        keys: [s.release],
        now: NOW + 1000,
        edit: pause('prod'),
      }),
    (e: Error) => e.name === 'UnknownKey',
  );
  assert.not.ok(existsSync(join(s.dir, controlsPath(1))), 'a refused control was written');
  // CI forges controls with its release key and binds them: agents refuse, naming the controls file.
  const forged = envelopeBytes(
    signDocument(
      {
        type: 'controls',
        schemaVersion: 1,
        fleet: 'ops',
        version: 1,
        issuedAt: isoTime(NOW + 1000),
        paused: [],
        resumedHalts: [],
        retries: [],
        quarantineClears: [],
      },
      [s.release],
    ),
  );
  writeFileSync(join(s.dir, controlsPath(1)), forged);
  assert.throws(
    () => refreshTimestamp({ treeDir: s.dir, releaseKeys: [s.release], now: NOW + 1000 }),
    (e: Error) => e instanceof PublishRefused && /operator role/.test(e.message),
  );
  const cur = JSON.parse(readFileSync(join(s.dir, TIMESTAMP_PATH), 'utf8')) as {
    signed: Record<string, unknown>;
  };
  const { sha256Digest } = await import('../../protocol/canonical.ts');
  writeFileSync(
    join(s.dir, TIMESTAMP_PATH),
    envelopeBytes(
      signDocument(
        {
          ...cur.signed,
          issuedAt: isoTime(NOW + 2000),
          controls: {
            version: 1,
            file: { path: controlsPath(1), digest: sha256Digest(forged), length: forged.length },
          },
        },
        [s.release],
      ),
    ),
  );
  await expectRefusalAsync(
    () =>
      updateTrust({ fetch: diskFetch(s.dir), state: initialClientState(s.root), now: NOW + 3000 }),
    'UnknownKey',
    controlsPath(1),
  );

  const noRole = setup({ withRole: false });
  assert.throws(
    () =>
      writeControls({
        treeDir: noRole.dir,
        root: noRole.root.signed,
        keys: s.operators,
        now: NOW + 1000,
        edit: pause('prod'),
      }),
    (e: Error) => e.name === 'UnknownKey' && /no operator role/.test(e.message),
  );
});

test('operator threshold: one of two required keys is refused before anything is written; two sign', async () => {
  const s = setup({ operators: 3, threshold: 2 });
  assert.throws(
    () =>
      writeControls({
        treeDir: s.dir,
        root: s.root.signed,
        keys: [s.operators[0]!],
        now: NOW + 1000,
        edit: pause('prod'),
      }),
    (e: Error) => e.name === 'ThresholdNotMet',
  );
  assert.not.ok(existsSync(join(s.dir, controlsPath(1))));
  control(s, pause('prod'), NOW + 1000, [s.operators[0]!, s.operators[2]!]);
  const u = await updateTrust({
    fetch: diskFetch(s.dir),
    state: initialClientState(s.root),
    now: NOW + 2000,
  });
  assert.is(u.controls!.signatures.length, 2);
});

test('tampered or mismatched controls: a flipped byte is BadSignature, a swapped genuine version is MixAndMatch', async () => {
  const s = setup();
  control(s, pause('prod'), NOW + 1000);
  const path = join(s.dir, controlsPath(1));
  const good = readFileSync(path);
  const bad = Buffer.from(good.toString('utf8').replace('"reason":"test"', '"reason":"tesT"'));
  writeFileSync(path, bad);
  const env = JSON.parse(bad.toString('utf8'));
  expectRefusal(
    () => verifyOperatorSigned(env, s.root.signed, controlsPath(1)),
    'BadSignature',
    controlsPath(1),
  );
  await expectRefusalAsync(
    () =>
      updateTrust({ fetch: diskFetch(s.dir), state: initialClientState(s.root), now: NOW + 2000 }),
    'BadSignature',
    controlsPath(1),
  );
  writeFileSync(path, good);
  // controls-2 written, but the served timestamp still binds v1 and controls-1 is replaced by v2's bytes.
  writeControls({
    treeDir: s.dir,
    root: s.root.signed,
    keys: s.operators,
    now: NOW + 2000,
    edit: (c) => ({ ...c, paused: [] }),
  });
  writeFileSync(path, readFileSync(join(s.dir, controlsPath(2))));
  await expectRefusalAsync(
    () =>
      updateTrust({ fetch: diskFetch(s.dir), state: initialClientState(s.root), now: NOW + 3000 }),
    'MixAndMatch',
    controlsPath(1),
  );
});

test('operator key outside its window: Expired naming the key; the root refuses an operator key that is also a release key', () => {
  const s = setup({ operatorWindow: [NOW + DAY, NOW + 2 * DAY] });
  assert.throws(
    () =>
      writeControls({
        treeDir: s.dir,
        root: s.root.signed,
        keys: s.operators,
        now: NOW,
        edit: pause('prod'),
      }),
    (e: Error) => e.name === 'Expired' && /operator key "operator-0"/.test(e.message),
  );
  const shared = {
    ...s.root.signed,
    operatorKeys: [{ ...s.root.signed.releaseKeys[0]! }],
    operatorThreshold: 1,
  };
  const r = TrustRoot.safeParse(shared);
  assert.not.ok(r.success);
  assert.match(JSON.stringify(r.error?.issues), /also a release key/);
  assert.not.ok(
    TrustRoot.safeParse({ ...s.root.signed, operatorThreshold: undefined }).success,
    'operatorKeys without a threshold',
  );
});

test("timestamp lifetime is the largest channel freshness (each agent applies its own channel's)", async () => {
  const s = setup();
  const u = await updateTrust({
    fetch: diskFetch(s.dir),
    state: initialClientState(s.root),
    now: NOW,
  });
  assert.is(
    Date.parse(u.timestamp.signed.expires) - Date.parse(u.timestamp.signed.issuedAt),
    7200_000,
  );
  const { channelFreshness } = await import('../../protocol/verify/freshness.ts');
  const ts = u.timestamp.signed;
  assert.is(
    channelFreshness(ts, { channel: 'prod', freshnessSeconds: 1800 }, NOW + 1799_000).status,
    'fresh',
  );
  const stale = channelFreshness(ts, { channel: 'prod', freshnessSeconds: 1800 }, NOW + 1800_000);
  assert.is(stale.status, 'stale');
  // The operator reads why: the channel, its bound and since when.
  assert.match(
    stale.status === 'stale' ? stale.reason : '',
    /channel prod's freshness of 1800 s \(stale since 2030-01-15T12:30:00Z, now 2030-01-15T12:30:00Z\)$/,
  );
  assert.ok(
    stale.status === 'stale' &&
      stale.reason.startsWith(
        `timestamp.json issued at ${ts.issuedAt} is older than channel prod's`,
      ),
  );
  assert.is(
    channelFreshness(ts, { channel: 'lab', freshnessSeconds: 7200 }, NOW + 1800_000).status,
    'fresh',
  );
  // A channel bound beyond the timestamp's own expiry is still held to that expiry.
  const capped = channelFreshness(ts, { channel: 'lab', freshnessSeconds: 9000 }, NOW + 7200_000);
  assert.is(capped.status, 'stale');
});

test('cp sync installs bound controls and refuses a tree whose timestamp drops them (release-key re-signed)', async () => {
  const { syncTree } = await import('../../control-plane/sync.ts');
  const s = setup();
  const cp = mkdtempSync(join(tmpdir(), 'nf-controls-cp-'));
  dirs.push(cp);
  control(s, pause('prod'), NOW + 1000);
  const first = await syncTree({ from: s.dir, treeDir: cp, pinnedRoot: s.root, now: NOW + 2000 });
  assert.ok(first.installed);
  assert.ok(existsSync(join(cp, 'current', controlsPath(1))));
  // CI (holding the release key) re-signs a newer timestamp without the controls: a rollback of the pause.
  const cur = JSON.parse(readFileSync(join(s.dir, TIMESTAMP_PATH), 'utf8')) as {
    signed: Record<string, unknown>;
  };
  const { controls: _, ...rest } = cur.signed;
  writeFileSync(
    join(s.dir, TIMESTAMP_PATH),
    envelopeBytes(signDocument({ ...rest, issuedAt: isoTime(NOW + 3000) }, [s.release])),
  );
  const e = await expectRefusalAsync(
    () => syncTree({ from: s.dir, treeDir: cp, pinnedRoot: s.root, now: NOW + 4000 }),
    'RollbackAttempt',
    TIMESTAMP_PATH,
  );
  assert.match(e.detail, /controls vnone are older than the installed v1/);
});

test('controls issued beyond the clock-skew tolerance are FutureDated, even when bound by a valid timestamp', async () => {
  const s = setup();
  writeControls({
    treeDir: s.dir,
    root: s.root.signed,
    keys: s.operators,
    now: NOW + DAY,
    edit: pause('prod'),
  });
  refreshTimestamp({ treeDir: s.dir, releaseKeys: [s.release], now: NOW });
  const e = await expectRefusalAsync(
    () => updateTrust({ fetch: diskFetch(s.dir), state: initialClientState(s.root), now: NOW }),
    'FutureDated',
    controlsPath(1),
  );
  assert.match(e.detail, /more than 300 s after now/);
  // Exactly at the tolerance (issued 300 s after the client's now) is still accepted.
  const edge = setup();
  writeControls({
    treeDir: edge.dir,
    root: edge.root.signed,
    keys: edge.operators,
    now: NOW + 300_000,
    edit: pause('prod'),
  });
  refreshTimestamp({ treeDir: edge.dir, releaseKeys: [edge.release], now: NOW });
  const atEdge = await updateTrust({
    fetch: diskFetch(edge.dir),
    state: initialClientState(edge.root),
    now: NOW,
  });
  assert.is(atEdge.controls!.signed.version, 1);
  // Once the client's clock reaches it (and a fresh timestamp binds it), the same document is accepted.
  refreshTimestamp({ treeDir: s.dir, releaseKeys: [s.release], now: NOW + DAY });
  const ok = await updateTrust({
    fetch: diskFetch(s.dir),
    state: initialClientState(s.root),
    now: NOW + DAY,
  });
  assert.is(ok.controls!.signed.version, 1);
});

test('a timestamp whose controls reference names another version than the bytes it pins is MixAndMatch', async () => {
  const s = setup();
  control(s, pause('prod'), NOW + 1000);
  control(s, (c) => ({ ...c, paused: [] }), NOW + 2000);
  // A (compromised or buggy) CI re-signs the timestamp: it pins controls v2's exact bytes but calls them v1.
  const ts = JSON.parse(readFileSync(join(s.dir, TIMESTAMP_PATH), 'utf8')) as {
    signed: { controls: { version: number } } & Record<string, unknown>;
  };
  assert.is(ts.signed.controls.version, 2);
  const relabelled = { ...ts.signed, controls: { ...ts.signed.controls, version: 1 } };
  writeFileSync(join(s.dir, TIMESTAMP_PATH), envelopeBytes(signDocument(relabelled, [s.release])));
  const e = await expectRefusalAsync(
    () =>
      updateTrust({ fetch: diskFetch(s.dir), state: initialClientState(s.root), now: NOW + 3000 }),
    'MixAndMatch',
    controlsPath(2),
  );
  assert.match(e.detail, /is version 2, the timestamp names v1/);
});
test.run();
