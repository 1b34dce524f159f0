// Enrolment documents (issue 13 section 2): the enrolment role of the trust root (its own keys and
// threshold), tokens bound to host, host key, nonce and expiry, and the nonce document bound by the
// timestamp like the controls (replay and rollback refused, withdrawn nonces refused).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { b64, keyIdOf, newSigningKey, type SigningKey } from '../../protocol/keys.ts';
import { isoTime } from '../../protocol/schemas/common.ts';
import { TrustRoot } from '../../protocol/schemas/root.ts';
import { createRoot, signRoot, type SignedRoot } from '../../protocol/trust-root.ts';
import { signDocument } from '../../protocol/envelope.ts';
import { diskFetch, verifyTreeDir } from '../../protocol/disk-tree.ts';
import { initialClientState } from '../../protocol/verify/state.ts';
import { updateTrust } from '../../protocol/verify/update-trust.ts';
import {
  readEnrolmentRequest,
  readEnrolmentToken,
  verifyEnrolmentToken,
  verifyEnrolmentRequest,
} from '../../protocol/verify/enrolment.ts';
import { enrolmentPath, TIMESTAMP_PATH } from '../../protocol/layout.ts';
import { sha256Digest } from '../../protocol/canonical.ts';
import { publishRelease } from '../../publisher/publish.ts';
import { refreshTimestamp } from '../../publisher/refresh.ts';
import { mintEnrolmentToken, withdrawEnrolmentNonces } from '../../publisher/enrolment.ts';
import { PublishRefused } from '../../publisher/errors.ts';
import type { FleetInput } from '../../publisher/fleet-schema.ts';
import type { EnrolmentToken, EnrolmentRequest } from '../../protocol/schemas/enrolment.ts';
import { expectRefusal, expectRefusalAsync } from '../verify/helpers.ts';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { syncTree } from '../../control-plane/sync.ts';

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
  enrolment: SigningKey[];
  hostKeys: Record<string, SigningKey>;
}

const window = { validFrom: isoTime(NOW - DAY), validUntil: isoTime(NOW + 365 * DAY) };

function setup(o: { threshold?: number; keys?: number } = {}): Setup {
  const dir = mkdtempSync(join(tmpdir(), 'nf-enrol-'));
  dirs.push(dir);
  const rootKey = newSigningKey('root');
  const release = newSigningKey('release');
  const enrolment = Array.from({ length: o.keys ?? 1 }, (_, i) => newSigningKey(`enrol-${i}`));
  const root = signRoot(
    createRoot({
      fleet: 'ops',
      version: 1,
      issuedAt: isoTime(NOW - DAY),
      expires: isoTime(NOW + 365 * DAY),
      rootKeys: [rootKey],
      rootThreshold: 1,
      releaseKeys: [{ key: release, ...window }],
      releaseThreshold: 1,
      cacheKeys: [],
      enrolmentKeys: enrolment.map((key) => ({ key, ...window })),
      enrolmentThreshold: o.threshold ?? 1,
    }),
    [rootKey],
  );
  const hostKeys = { 'web-1': newSigningKey('web-1'), 'web-2': newSigningKey('web-2') };
  publishRelease({
    cacheCheck: 'skip',
    treeDir: dir,
    fleet: fleet(hostKeys),
    releaseKeys: [release],
    roots: [root],
    now: NOW,
  });
  return { dir, root, release, enrolment, hostKeys };
}

function fleet(keys: Record<string, SigningKey>): FleetInput {
  const host = (k: SigningKey) => ({
    system: 'x86_64-linux',
    channel: 'prod',
    target: '/nix/store/11111111111111111111111111111111-nixos-system-a',
    hostKey: b64(k.publicKey),
    tags: [],
  });
  return {
    fleet: 'ops',
    hosts: Object.fromEntries(Object.entries(keys).map(([h, k]) => [h, host(k)])),
    channels: { prod: { policy: 'p', freshnessSeconds: 7200, signingIntervalSeconds: 600 } },
    policies: { p: { strategy: 'all-at-once', waves: [] } },
  } as unknown as FleetInput;
}

function mint(
  s: Setup,
  host: string,
  now: number,
  o: { expires?: number; keys?: SigningKey[] } = {},
) {
  const r = mintEnrolmentToken({
    treeDir: s.dir,
    root: s.root.signed,
    keys: o.keys ?? s.enrolment,
    now,
    host,
    hostKeyId: keyIdOf(s.hostKeys[host]!.publicKey),
    expires: o.expires ?? now + DAY,
  });
  refreshTimestamp({ treeDir: s.dir, releaseKeys: [s.release], now: now + 1000 });
  return r;
}

async function nonces(s: Setup, now: number) {
  const u = await updateTrust({ fetch: diskFetch(s.dir), state: initialClientState(s.root), now });
  return u;
}

function ctx(s: Setup, u: Awaited<ReturnType<typeof nonces>>, now: number) {
  return {
    root: u.root.signed,
    nonces: u.enrolment?.signed ?? null,
    hostKeys: new Map(Object.entries(s.hostKeys).map(([h, k]) => [h, b64(k.publicKey)])),
    now,
    clockSkewSeconds: 60,
  };
}

test('the enrolment role has its own keys: a release or operator key in it is refused; absent = no enrolment', () => {
  const release = newSigningKey('release');
  const base = {
    type: 'root',
    schemaVersion: 1,
    fleet: 'ops',
    version: 1,
    issuedAt: isoTime(NOW),
    expires: isoTime(NOW + DAY),
    rootKeys: [{ keyid: keyIdOf(release.publicKey), publicKey: b64(release.publicKey), name: 'r' }],
    rootThreshold: 1,
    releaseKeys: [
      {
        keyid: keyIdOf(release.publicKey),
        publicKey: b64(release.publicKey),
        name: 'rel',
        ...window,
      },
    ],
    releaseThreshold: 1,
    cacheKeys: [],
    rejectBefore: null,
  };
  const same = TrustRoot.safeParse({
    ...base,
    enrolmentKeys: base.releaseKeys,
    enrolmentThreshold: 1,
  });
  assert.not.ok(same.success);
  assert.match(JSON.stringify(same.error?.issues), /also a release key/);
  const noThreshold = TrustRoot.safeParse({
    ...base,
    enrolmentKeys: [{ ...base.releaseKeys[0], keyid: 'a'.repeat(64) }],
  });
  assert.not.ok(noThreshold.success);
  assert.ok(TrustRoot.safeParse(base).success);
});

test('mint: refresh binds the nonce document; a client verifies it, remembers its version and the token verifies', async () => {
  const s = setup();
  const r = mint(s, 'web-1', NOW);
  const u = await nonces(s, NOW + 2000);
  assert.is(u.enrolment!.signed.version, 1);
  assert.is(u.timestamp.signed.enrolment!.file.path, enrolmentPath(1));
  assert.is(u.state.highestEnrolmentVersion, 1);
  const t = verifyEnrolmentToken(r.token, ctx(s, u, NOW + 2000));
  assert.is(t.host, 'web-1');
  // The offline verifier walks it too.
  const report = await verifyTreeDir(s.dir, s.root, { now: NOW + 2000 });
  assert.ok(report.documents.some((d) => d.file === enrolmentPath(1) && d.type === 'enrolment'));
});

test('token refusals: expired, another host key, another host, withdrawn nonce, signed by the release key, below threshold', async () => {
  const s = setup({ keys: 2, threshold: 2 });
  const r = mint(s, 'web-1', NOW);
  const u = await nonces(s, NOW + 2000);
  const c = ctx(s, u, NOW + 2000);
  // Expired.
  expectRefusal(
    () => verifyEnrolmentToken(r.token, { ...c, now: NOW + 2 * DAY }),
    'Expired',
    'enrolment token',
  );
  // The release lists another key for the host: the token is useless for any other key.
  const rekeyed = new Map(c.hostKeys);
  rekeyed.set('web-1', b64(newSigningKey('other').publicKey));
  expectRefusal(
    () => verifyEnrolmentToken(r.token, { ...c, hostKeys: rekeyed }),
    'WrongHost',
    'enrolment token',
  );
  // Forged for another host (re-signed by someone without the enrolment keys).
  const forged = signDocument({ ...r.token.signed, host: 'web-2' } as EnrolmentToken, [s.release]);
  expectRefusal(() => verifyEnrolmentToken(forged, c), 'UnknownKey', 'enrolment token');
  // One enrolment key of two.
  const half = signDocument(r.token.signed, [s.enrolment[0]!]);
  expectRefusal(() => verifyEnrolmentToken(half, c), 'ThresholdNotMet', 'enrolment token');
  // A lifetime over 7 days is refused by the minting and by the verifier.
  assert.throws(
    () => mint(s, 'web-2', NOW, { expires: NOW + 8 * DAY }),
    (e: unknown) => e instanceof PublishRefused,
  );
  const long = signDocument({ ...r.token.signed, expires: isoTime(NOW + 8 * DAY) }, s.enrolment);
  expectRefusal(() => verifyEnrolmentToken(long, c), 'Expired', 'enrolment token');
  // Withdrawn: the next bound document no longer allows the nonce.
  withdrawEnrolmentNonces({
    treeDir: s.dir,
    root: s.root.signed,
    keys: s.enrolment,
    now: NOW + 3000,
    nonces: [r.token.signed.nonce],
  });
  refreshTimestamp({ treeDir: s.dir, releaseKeys: [s.release], now: NOW + 4000 });
  const after = await nonces(s, NOW + 5000);
  assert.is(after.enrolment!.signed.version, 2);
  expectRefusal(
    () => verifyEnrolmentToken(r.token, ctx(s, after, NOW + 5000)),
    'NonceRefused',
    'enrolment token',
  );
});

test('replay: a timestamp naming an older nonce document (or none) is a rollback once a newer one was seen', async () => {
  const s = setup();
  mint(s, 'web-1', NOW);
  const oldTs = readFileSync(join(s.dir, TIMESTAMP_PATH));
  mint(s, 'web-2', NOW + 10_000);
  const seen = await nonces(s, NOW + 20_000);
  assert.is(seen.state.highestEnrolmentVersion, 2);
  writeFileSync(join(s.dir, TIMESTAMP_PATH), oldTs);
  await expectRefusalAsync(
    () =>
      updateTrust({
        fetch: diskFetch(s.dir),
        state: { ...seen.state, highestTimestampIssuedAt: null },
        now: NOW + 20_000,
      }),
    'RollbackAttempt',
    TIMESTAMP_PATH,
  );
});

test('cp sync refuses a tree whose newer timestamp binds an older nonce document', async () => {
  const s = setup();
  mint(s, 'web-1', NOW);
  const older = join(s.dir, '..', `${s.dir.split('/').pop()}-older`);
  dirs.push(older);
  cpSync(s.dir, older, { recursive: true });
  mint(s, 'web-2', NOW + 10_000);
  const cp = mkdtempSync(join(tmpdir(), 'nf-enrol-cp-'));
  dirs.push(cp);
  const sync = (from: string) =>
    syncTree({ from, treeDir: cp, pinnedRoot: s.root, now: NOW + 60_000 });
  assert.ok((await sync(s.dir)).installed);
  // The older tree, re-signed later by CI: a newer timestamp, but enrolment v1 after v2.
  refreshTimestamp({ treeDir: older, releaseKeys: [s.release], now: NOW + 30_000 });
  const e = await expectRefusalAsync(() => sync(older), 'RollbackAttempt', TIMESTAMP_PATH);
  assert.match(e.detail, /enrolment v1 is older than the installed v2/);
});

test('the request: signed by the host key of the release, bound to the CSR, fresh', () => {
  const s = setup();
  const hostKeys = new Map(Object.entries(s.hostKeys).map(([h, k]) => [h, b64(k.publicKey)]));
  const csr = '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n';
  const doc: EnrolmentRequest = {
    type: 'enrolment-request',
    schemaVersion: 1,
    fleet: 'ops',
    host: 'web-1',
    kind: 'renew',
    nonce: null,
    csr: sha256Digest(Buffer.from(csr)),
    issuedAt: isoTime(NOW),
  };
  const c = { fleet: 'ops', hostKeys, now: NOW, clockSkewSeconds: 60 };
  assert.is(
    verifyEnrolmentRequest(signDocument(doc, [s.hostKeys['web-1']!]), csr, c).host,
    'web-1',
  );
  expectRefusal(
    () => verifyEnrolmentRequest(signDocument(doc, [s.hostKeys['web-2']!]), csr, c),
    'UnknownKey',
    'enrolment request',
  );
  expectRefusal(
    () =>
      verifyEnrolmentRequest(
        signDocument(doc, [s.hostKeys['web-1']!]),
        csr.replace('AAAA', 'BBBB'),
        c,
      ),
    'MixAndMatch',
    'enrolment request',
  );
  expectRefusal(
    () =>
      verifyEnrolmentRequest(signDocument(doc, [s.hostKeys['web-1']!]), csr, {
        ...c,
        now: NOW + 3_600_000,
      }),
    'Expired',
    'enrolment request',
  );
});

test('token boundaries and details: future-dated, lifetime, expiry, unknown host, another key, nonce', async () => {
  const s = setup();
  const r = mint(s, 'web-1', NOW);
  const u = await nonces(s, NOW + 2000);
  const c = ctx(s, u, NOW + 2000);
  const resigned = (edit: Partial<EnrolmentToken>) =>
    signDocument({ ...r.token.signed, ...edit } as EnrolmentToken, s.enrolment);
  const refusal = (
    t: ReturnType<typeof resigned>,
    code: Parameters<typeof expectRefusal>[1],
    o = c,
  ) => expectRefusal(() => verifyEnrolmentToken(t, o), code, 'enrolment token').detail;
  // Issued up to the clock skew ahead is accepted; beyond it, FutureDated.
  const at = (ms: number, lifeMs = DAY) =>
    resigned({ issuedAt: isoTime(ms), expires: isoTime(ms + lifeMs) });
  assert.is(verifyEnrolmentToken(at(NOW + 2000 + 60_000), c).host, 'web-1');
  assert.is(verifyEnrolmentToken(at(NOW + 2000 + 30_000), c).host, 'web-1');
  assert.match(
    refusal(at(NOW + 2000 + 61_000), 'FutureDated'),
    /issued at 2030-01-15T12:01:03Z, more than 60 s after now \(2030-01-15T12:00:02Z\)/,
  );
  // A lifetime of exactly 7 days is the longest allowed; expiring at (or before) the issue time never is.
  assert.is(verifyEnrolmentToken(at(NOW, 7 * DAY), c).host, 'web-1');
  assert.match(
    refusal(at(NOW, 7 * DAY + 1000), 'Expired'),
    /lives from 2030-01-15T12:00:00Z to 2030-01-22T12:00:01Z; a token must expire after it is issued and within 7 days/,
  );
  refusal(at(NOW - 1000, 0), 'Expired');
  // Expiring exactly now is expired.
  assert.match(
    refusal(at(NOW - DAY, DAY + 2000), 'Expired'),
    /expired at 2030-01-15T12:00:02Z \(now 2030-01-15T12:00:02Z\)/,
  );
  assert.is(verifyEnrolmentToken(at(NOW - DAY, DAY + 3000), c).host, 'web-1');
  // A host the release does not list; a key other than the release's.
  const noHost = new Map(c.hostKeys);
  noHost.delete('web-1');
  assert.match(
    refusal(r.token, 'UnknownHost', { ...c, hostKeys: noHost }),
    /host "web-1" is not in the verified release/,
  );
  const otherKey = newSigningKey('other');
  assert.match(
    refusal(resigned({ hostKeyId: keyIdOf(otherKey.publicKey) }), 'WrongHost'),
    new RegExp(
      `names host key ${keyIdOf(otherKey.publicKey).slice(0, 16)}\\.\\., but the signed release lists ${keyIdOf(s.hostKeys['web-1']!.publicKey).slice(0, 16)}\\.\\. for "web-1"`,
    ),
  );
  // A nonce never published, and one published for another host, are refused; so is any without a bound document.
  const never = 'f'.repeat(r.token.signed.nonce.length);
  assert.match(
    refusal(resigned({ nonce: never }), 'NonceRefused'),
    new RegExp(
      `nonce ${never.slice(0, 16)}\\.\\. is not allowed by the bound enrolment document v1: withdrawn, or never published`,
    ),
  );
  const r2 = mint(s, 'web-2', NOW + 3000);
  const u2 = await nonces(s, NOW + 5000);
  const c2 = ctx(s, u2, NOW + 5000);
  assert.is(verifyEnrolmentToken(r.token, c2).host, 'web-1');
  assert.is(verifyEnrolmentToken(r2.token, c2).host, 'web-2');
  refusal(resigned({ nonce: r2.token.signed.nonce }), 'NonceRefused', c2);
  assert.match(
    refusal(r.token, 'NonceRefused', { ...c, nonces: null }),
    /is not allowed by the bound enrolment document \(none bound\)/,
  );
});

test('readEnrolmentToken / readEnrolmentRequest: strict intake of the wire bytes, each refusing the other type', () => {
  const s = setup();
  const r = mint(s, 'web-1', NOW);
  const tokenBytes = JSON.stringify(r.token);
  assert.equal(readEnrolmentToken(tokenBytes).signed, r.token.signed);
  const request = signDocument(requestDoc(), [s.hostKeys['web-1']!]);
  assert.equal(readEnrolmentRequest(JSON.stringify(request)).signed, request.signed);
  const e1 = expectRefusal(
    () => readEnrolmentToken(JSON.stringify(request)),
    'Malformed',
    'enrolment token',
  );
  assert.match(e1.detail, /enrolment-token/);
  const e2 = expectRefusal(
    () => readEnrolmentRequest(tokenBytes),
    'Malformed',
    'enrolment request',
  );
  assert.match(e2.detail, /enrolment-request/);
});

const CSR = '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n';
function requestDoc(edit: Partial<EnrolmentRequest> = {}): EnrolmentRequest {
  return {
    type: 'enrolment-request',
    schemaVersion: 1,
    fleet: 'ops',
    host: 'web-1',
    kind: 'renew',
    nonce: null,
    csr: sha256Digest(Buffer.from(CSR)),
    issuedAt: isoTime(NOW),
    ...edit,
  };
}

test('request details: unknown host, signer role, fleet, freshness bounds, CSR', () => {
  const s = setup();
  const hostKeys = new Map(Object.entries(s.hostKeys).map(([h, k]) => [h, b64(k.publicKey)]));
  const c = { fleet: 'ops', hostKeys, now: NOW, clockSkewSeconds: 60 };
  const signed = (edit: Partial<EnrolmentRequest> = {}) =>
    signDocument(requestDoc(edit), [s.hostKeys['web-1']!]);
  const refusal = (
    env: ReturnType<typeof signed>,
    code: Parameters<typeof expectRefusal>[1],
    csr = CSR,
    o = c,
  ) => expectRefusal(() => verifyEnrolmentRequest(env, csr, o), code, 'enrolment request').detail;
  assert.match(
    refusal(signed({ host: 'web-9' }), 'UnknownHost'),
    /host "web-9" is not in the verified release/,
  );
  assert.match(
    refusal(signDocument(requestDoc(), [s.hostKeys['web-2']!]), 'UnknownKey'),
    /no signature by a valid host key of web-1 key/,
  );
  assert.match(
    refusal(signed({ fleet: 'other' }), 'MixAndMatch'),
    /belongs to fleet "other", this is "ops"/,
  );
  // Exactly the skew away (either side) is fresh; a second more is not; 30 s is well within 60 s.
  for (const ms of [60_000, -60_000, 30_000])
    assert.is(
      verifyEnrolmentRequest(signed({ issuedAt: isoTime(NOW + ms) }), CSR, c).host,
      'web-1',
    );
  assert.match(
    refusal(signed({ issuedAt: isoTime(NOW - 61_000) }), 'Expired'),
    /signed at 2030-01-15T11:58:59Z, more than 60 s from now \(2030-01-15T12:00:00Z\): sign a fresh request/,
  );
  refusal(signed({ issuedAt: isoTime(NOW + 61_000) }), 'Expired');
  const other = CSR.replace('AAAA', 'BBBB');
  assert.match(
    refusal(signed(), 'MixAndMatch', other),
    new RegExp(
      `binds CSR ${sha256Digest(Buffer.from(CSR))}, but the CSR sent is ${sha256Digest(Buffer.from(other))}`,
    ),
  );
});

test.run();
