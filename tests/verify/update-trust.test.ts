// updateTrust / verifySnapshot at their edges: the exact freshness bounds, each rollback a client's
// memory refuses (with what it says), documents the timestamp binds that are missing or relabelled, the
// root chain's length bound, and what the client remembers next.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Fetch } from '../../protocol/verify/fetcher.ts';
import { diskFetch } from '../../protocol/disk-tree.ts';
import { envelopeBytes } from '../../protocol/envelope.ts';
import { sha256Digest } from '../../protocol/canonical.ts';
import { MAX_ROOT_CHAIN_STEPS } from '../../protocol/trust-root.ts';
import {
  REVOCATIONS_PATH,
  TIMESTAMP_PATH,
  controlsPath,
  enrolmentPath,
  rootPath,
} from '../../protocol/layout.ts';
import { isoTime } from '../../protocol/schemas/common.ts';
import type { Timestamp } from '../../protocol/schemas/timestamp.ts';
import { initialClientState, type ClientState } from '../../protocol/verify/state.ts';
import {
  nextClientState,
  updateTrust,
  verifyRevocations,
} from '../../protocol/verify/update-trust.ts';
import type { VerificationCode } from '../../protocol/errors.ts';
import { requireBoundVersion } from '../../protocol/verify/documents.ts';
import {
  DAY,
  HOUR,
  buildStandardTree,
  makeRoot,
  writeRevocations,
  writeRoot,
  type StandardTree,
} from '../support/tree-builder.ts';
import { NOW, cleanupTempDirs, expectRefusal, expectRefusalAsync, tempDir } from './helpers.ts';
import { resignRelease } from './resign.ts';

test.after.each(cleanupTempDirs);

function tree(edit?: (ts: Timestamp) => void): StandardTree {
  const t = buildStandardTree(tempDir('trust'), NOW);
  if (edit) resignRelease(t, { timestamp: edit });
  return t;
}

const update = (
  t: StandardTree,
  o: { state?: Partial<ClientState>; now?: number; fetch?: Fetch } = {},
) =>
  updateTrust({
    fetch: o.fetch ?? diskFetch(t.dir),
    state: { ...initialClientState(t.root), ...o.state },
    now: o.now ?? NOW,
  });

async function refused(
  t: StandardTree,
  code: VerificationCode,
  file: string,
  detail: RegExp,
  o: Parameters<typeof update>[1] = {},
): Promise<void> {
  const e = await expectRefusalAsync(() => update(t, o), code, file);
  assert.match(e.detail, detail);
}

test('freshness bounds: issued exactly the skew ahead is fresh, a second more is FutureDated; expiring now is Stale', async () => {
  const ahead = (ms: number) =>
    tree((ts) => {
      ts.issuedAt = isoTime(NOW + ms);
      ts.expires = isoTime(NOW + ms + HOUR);
    });
  await update(ahead(300_000));
  await refused(
    ahead(301_000),
    'FutureDated',
    TIMESTAMP_PATH,
    /issued at 2030-01-15T12:05:01Z, more than 300 s after now \(2030-01-15T12:00:00Z\)/,
  );
  const expiring = tree((ts) => (ts.expires = isoTime(NOW)));
  await refused(
    expiring,
    'Stale',
    TIMESTAMP_PATH,
    /expired at 2030-01-15T12:00:00Z \(now 2030-01-15T12:00:00Z\): no new activations until a fresh timestamp is published/,
  );
  await update(expiring, { now: NOW - 1 });
});

test('a withheld timestamp is Stale and says so', async () => {
  const t = tree();
  const disk = diskFetch(t.dir);
  await refused(t, 'Stale', TIMESTAMP_PATH, /not found: no fresh timestamp is available/, {
    fetch: async (p, m) => (p === TIMESTAMP_PATH ? undefined : disk(p, m)),
  });
});

test('rollbacks against what the client has seen, each naming what it saw', async () => {
  const t = tree();
  const seenLater = isoTime(NOW - 30 * 60_000);
  await refused(
    t,
    'RollbackAttempt',
    TIMESTAMP_PATH,
    new RegExp(
      `issued at 2030-01-15T11:00:00Z, older than the timestamp already seen \\(${seenLater}\\)`,
    ),
    { state: { highestTimestampIssuedAt: seenLater } },
  );
  await refused(
    t,
    'RollbackAttempt',
    TIMESTAMP_PATH,
    /names revocations v1, but v2 was already seen/,
    { state: { highestRevocationsVersion: 2 } },
  );
  // Dropping the controls or the nonce document altogether is a rollback too.
  await refused(
    t,
    'RollbackAttempt',
    TIMESTAMP_PATH,
    /names controls vnone, but v1 was already seen/,
    { state: { highestControlsVersion: 1 } },
  );
  await refused(
    t,
    'RollbackAttempt',
    TIMESTAMP_PATH,
    /names enrolment vnone, but v3 was already seen/,
    { state: { highestEnrolmentVersion: 3 } },
  );
});

test('documents the timestamp binds: missing -> MixAndMatch naming them; revocations of another version', async () => {
  const t = tree();
  const disk = diskFetch(t.dir);
  await refused(t, 'MixAndMatch', REVOCATIONS_PATH, /is missing, but timestamp\.json binds it/, {
    fetch: async (p, m) => (p === REVOCATIONS_PATH ? undefined : disk(p, m)),
  });
  const ref = { path: controlsPath(1), digest: `sha256:${'cd'.repeat(32)}`, length: 100 };
  await refused(
    tree((ts) => (ts.controls = { version: 1, file: ref })),
    'MixAndMatch',
    controlsPath(1),
    /is missing, but timestamp\.json binds it/,
  );
  const eref = { ...ref, path: enrolmentPath(1) };
  await refused(
    tree((ts) => (ts.enrolment = { version: 1, file: eref })),
    'MixAndMatch',
    enrolmentPath(1),
    /is missing, but timestamp\.json binds it/,
  );
  // Genuine revocations v2, bound byte for byte, but the timestamp calls them v1.
  const relabelled = tree();
  const v2 = writeRevocations({
    dir: relabelled.dir,
    version: 2,
    issuedAt: NOW - HOUR,
    signers: relabelled.keys.release,
  });
  resignRelease(relabelled, { timestamp: (ts) => (ts.revocations = { version: 1, file: v2 }) });
  await refused(
    relabelled,
    'MixAndMatch',
    REVOCATIONS_PATH,
    /is version 2, the timestamp names v1/,
  );
});

test('verifyRevocations on its own refuses revocations older than those seen', async () => {
  const t = tree();
  const ts = JSON.parse(readFileSync(join(t.dir, TIMESTAMP_PATH), 'utf8')).signed as Timestamp;
  const bytes = readFileSync(join(t.dir, REVOCATIONS_PATH));
  const seen = { ...initialClientState(t.root) };
  assert.is(verifyRevocations(bytes, ts, t.root.signed, seen).signed.version, 1);
  const e = expectRefusal(
    () => verifyRevocations(bytes, ts, t.root.signed, { ...seen, highestRevocationsVersion: 2 }),
    'RollbackAttempt',
    REVOCATIONS_PATH,
  );
  assert.match(e.detail, /is version 1, but v2 was already seen/);
});

const rootV = (t: StandardTree, version: number) =>
  makeRoot({
    version,
    issuedAt: NOW - DAY + version * 1000,
    rootKeys: t.keys.root,
    releaseKeys: t.keys.release.map((key) => ({
      key,
      validFrom: NOW - 60 * DAY,
      validUntil: NOW + 300 * DAY,
    })),
  });

test('the root chain is walked to its end (two rotations), and a chain of more than the step limit is refused', async () => {
  const t = tree();
  writeRoot(t.dir, rootV(t, 2));
  writeRoot(t.dir, rootV(t, 3));
  const u = await update(t);
  assert.is(u.root.signed.version, 3);
  assert.equal(u.rootsAdded, [2, 3]);

  // A server that always has one more root: the client stops one past the limit and refuses.
  const disk = diskFetch(t.dir);
  const made = new Map<number, Uint8Array>();
  let fetchedRoots = 0;
  const endless: Fetch = async (p, m) => {
    const v = /^root\/(\d+)\.json$/.exec(p);
    if (!v) return disk(p, m);
    fetchedRoots++;
    const n = Number(v[1]);
    if (!made.has(n)) made.set(n, envelopeBytes(rootV(t, n)));
    return made.get(n);
  };
  const e = await expectRefusalAsync(
    () => update(t, { fetch: endless }),
    'MixAndMatch',
    rootPath(MAX_ROOT_CHAIN_STEPS + 2),
  );
  assert.match(e.detail, new RegExp(`root chain longer than ${MAX_ROOT_CHAIN_STEPS} steps`));
  assert.is(fetchedRoots, MAX_ROOT_CHAIN_STEPS + 1);
});

test('nextClientState keeps the newest timestamp time it has seen, whichever came last', () => {
  const t = tree();
  const ts = JSON.parse(readFileSync(join(t.dir, TIMESTAMP_PATH), 'utf8')).signed as Timestamp;
  const revocations = JSON.parse(readFileSync(join(t.dir, REVOCATIONS_PATH), 'utf8')).signed;
  const later = isoTime(NOW);
  const prev = { ...initialClientState(t.root), highestTimestampIssuedAt: later };
  assert.is(nextClientState(prev, ts, revocations, t.root).highestTimestampIssuedAt, later);
  const earlier = { ...prev, highestTimestampIssuedAt: isoTime(NOW - 2 * HOUR) };
  assert.is(
    nextClientState(earlier, ts, revocations, t.root).highestTimestampIssuedAt,
    ts.issuedAt,
  );
});

test('requireBoundVersion: the exact bytes, the version the timestamp names, never below the highest seen', () => {
  const bytes = Buffer.from('{"a":1}');
  const file = { path: controlsPath(3), digest: sha256Digest(bytes), length: bytes.byteLength };
  const ref = { version: 3, file };
  requireBoundVersion(bytes, { version: 3 }, ref, 3, controlsPath(3), TIMESTAMP_PATH);
  let e = expectRefusal(
    () => requireBoundVersion(bytes, { version: 2 }, ref, 0, controlsPath(3), TIMESTAMP_PATH),
    'MixAndMatch',
    controlsPath(3),
  );
  assert.match(e.detail, /is version 2, the timestamp names v3/);
  e = expectRefusal(
    () => requireBoundVersion(bytes, { version: 3 }, ref, 4, controlsPath(3), TIMESTAMP_PATH),
    'RollbackAttempt',
    controlsPath(3),
  );
  assert.match(e.detail, /is version 3, but v4 was already seen/);
});

test.run();
