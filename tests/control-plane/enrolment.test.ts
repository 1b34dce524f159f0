// The enrolment endpoint's workflow (control-plane/enrolment.ts) with the real openssl: a token and a
// host-signed CSR give a short-lived certificate from the name-constrained issuing CA; every refusal of
// issue 13 section 2 (replayed, expired, other host, wrong key, withdrawn, reused key, revoked host
// renewing), a crash between the durable reservation and the answer (nothing issued twice), renewal,
// and what the issuing CA cannot sign (server certificates, operators, another fleet).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { b64, keyIdOf, newSigningKey, type SigningKey } from '../../protocol/keys.ts';
import { isoTime } from '../../protocol/schemas/common.ts';
import { createRoot, signRoot, type SignedRoot } from '../../protocol/trust-root.ts';
import { envelopeBytes, signDocument } from '../../protocol/envelope.ts';
import { sha256Digest } from '../../protocol/canonical.ts';
import type { EnrolmentRequest } from '../../protocol/schemas/enrolment.ts';
import { publishRelease } from '../../publisher/publish.ts';
import { refreshTimestamp } from '../../publisher/refresh.ts';
import { mintEnrolmentToken, withdrawEnrolmentNonces } from '../../publisher/enrolment.ts';
import type { FleetInput } from '../../publisher/fleet-schema.ts';
import {
  initPki,
  initIssuingCa,
  listEnrolmentCerts,
  type IssuingCaPaths,
} from '../../control-plane/pki.ts';
import { EnrolmentService, type EnrolmentAnswer } from '../../control-plane/enrolment.ts';
import type { ClientIdentity } from '../../control-plane/identity.ts';
import { requireTool } from '../support/skip.ts';

const NOW = Date.parse('2030-01-15T12:00:00Z');
const DAY = 86_400_000;
const dirs: string[] = [];
const services: EnrolmentService[] = [];
test.after.each(() => {
  for (const s of services.splice(0)) s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const window = { validFrom: isoTime(NOW - DAY), validUntil: isoTime(NOW + 365 * DAY) };

interface World {
  dir: string;
  tree: string;
  root: SignedRoot;
  release: SigningKey;
  enrolment: SigningKey[];
  hostKeys: Record<string, SigningKey>;
  issuing: IssuingCaPaths;
  clock: { now: number };
  service: (o?: { afterReserve?: () => Promise<void> }) => EnrolmentService;
}

function fleet(keys: Record<string, SigningKey>, revoked: string[] = []): FleetInput {
  return {
    fleet: 'ops',
    hosts: Object.fromEntries(
      Object.entries(keys).map(([h, k]) => [
        h,
        {
          system: 'x86_64-linux',
          channel: 'prod',
          target: '/nix/store/11111111111111111111111111111111-nixos-system-a',
          hostKey: b64(k.publicKey),
          tags: [],
        },
      ]),
    ),
    channels: { prod: { policy: 'p', freshnessSeconds: 7 * 86_400, signingIntervalSeconds: 600 } },
    policies: { p: { strategy: 'all-at-once', waves: [] } },
    ...(revoked.length
      ? {
          revoked: {
            hosts: revoked.map((host) => ({ host, reason: 'decommissioned' })),
            closures: [],
          },
        }
      : {}),
  } as unknown as FleetInput;
}

function world(): World {
  const dir = mkdtempSync(join(tmpdir(), 'nf-enrol-cp-'));
  dirs.push(dir);
  const tree = join(dir, 'tree');
  const rootKey = newSigningKey('root');
  const release = newSigningKey('release');
  const enrolment = [newSigningKey('enrol')];
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
      enrolmentThreshold: 1,
    }),
    [rootKey],
  );
  const hostKeys = { 'web-1': newSigningKey('web-1'), 'web-2': newSigningKey('web-2') };
  publishRelease({
    cacheCheck: 'skip',
    treeDir: tree,
    fleet: fleet(hostKeys),
    releaseKeys: [release],
    roots: [root],
    now: NOW,
  });
  initPki(join(dir, 'pki'), { fleet: 'ops' });
  const issuing = initIssuingCa(join(dir, 'pki'), join(dir, 'issuing'));
  const clock = { now: NOW + 10_000 };
  const w: World = {
    dir,
    tree,
    root,
    release,
    enrolment,
    hostKeys,
    issuing,
    clock,
    service: (o = {}) => {
      const s = new EnrolmentService({
        treeDir: tree,
        pinnedRoot: root,
        issuingDir: issuing.dir,
        stateDir: join(dir, 'enrol-state'),
        now: () => clock.now,
        ...(o.afterReserve ? { afterReserve: o.afterReserve } : {}),
      });
      services.push(s);
      return s;
    },
  };
  return w;
}

function mint(w: World, host: string, o: { expires?: number; refresh?: boolean } = {}) {
  const now = w.clock.now;
  const r = mintEnrolmentToken({
    treeDir: w.tree,
    root: w.root.signed,
    keys: w.enrolment,
    now,
    host,
    hostKeyId: keyIdOf(w.hostKeys[host]!.publicKey),
    expires: o.expires ?? now + DAY,
  });
  if (o.refresh !== false)
    refreshTimestamp({ treeDir: w.tree, releaseKeys: [w.release], now: now + 1000 });
  w.clock.now += 2000;
  return envelopeBytes(r.token).toString('utf8');
}

/** A new P-256 key and a CSR for it (openssl, as a host would). */
function newCsr(w: World, subject = '/CN=whatever'): { key: string; csr: string } {
  const d = mkdtempSync(join(w.dir, 'csr-'));
  execFileSync('openssl', [
    'genpkey',
    '-algorithm',
    'EC',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-out',
    join(d, 'k.pem'),
  ]);
  const csr = execFileSync('openssl', ['req', '-new', '-key', join(d, 'k.pem'), '-subj', subject], {
    encoding: 'utf8',
  });
  return { key: join(d, 'k.pem'), csr };
}

function body(
  w: World,
  o: {
    host: string;
    signer?: SigningKey;
    token: string | null;
    csr: string;
    kind?: 'enrol' | 'renew';
  },
): Buffer {
  const nonce =
    o.token === null ? null : (JSON.parse(o.token) as { signed: { nonce: string } }).signed.nonce;
  const doc: EnrolmentRequest = {
    type: 'enrolment-request',
    schemaVersion: 1,
    fleet: 'ops',
    host: o.host,
    kind: o.kind ?? (o.token ? 'enrol' : 'renew'),
    nonce,
    csr: sha256Digest(Buffer.from(o.csr)),
    issuedAt: isoTime(w.clock.now),
  };
  const request = envelopeBytes(signDocument(doc, [o.signer ?? w.hostKeys[o.host]!])).toString(
    'utf8',
  );
  return Buffer.from(JSON.stringify({ token: o.token, request, csr: o.csr }));
}

function refused(a: EnrolmentAnswer, code: string): void {
  assert.is(
    a.status,
    a.status >= 400 ? a.status : -1,
    `expected a refusal ${code}, got ${a.status} ${JSON.stringify(a.body).slice(0, 200)}`,
  );
  assert.is(a.body['error'], code, JSON.stringify(a.body));
}

function opensslVerify(w: World, cert: string, purpose: string): { ok: boolean; out: string } {
  const f = join(w.dir, `verify-${Math.random().toString(16).slice(2)}.pem`);
  writeFileSync(f, cert);
  try {
    const out = execFileSync(
      'openssl',
      ['verify', '-CAfile', w.issuing.clientCaBundle, '-purpose', purpose, f],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    return { ok: true, out };
  } catch (e) {
    return {
      ok: false,
      out:
        String((e as { stdout?: string }).stdout ?? '') +
        String((e as { stderr?: string }).stderr ?? ''),
    };
  }
}

test('a token + a host-signed CSR give a 7-day client certificate (CN = host, OU = agent) from the issuing CA; the same request again gets the same certificate, a replayed token nothing', async () => {
  if (!requireTool('openssl', 'the issuing CA is openssl')) return;
  const w = world();
  const svc = w.service();
  const token = mint(w, 'web-1');
  const { csr } = newCsr(w, '/O=evil/OU=operator/CN=admin');
  const a = await svc.handle(body(w, { host: 'web-1', token, csr }), null, null);
  assert.is(a.status, 201, JSON.stringify(a.body));
  const x = new X509Certificate(a.body['certificate'] as string);
  assert.equal(x.subject.split('\n'), ['O=ops', 'OU=agent', 'CN=web-1']);
  assert.ok(x.checkIssued(new X509Certificate(a.body['chain'] as string)));
  const days = (Date.parse(x.validTo) - Date.parse(x.validFrom)) / DAY;
  assert.ok(days >= 6.9 && days <= 7.1, `validity ${days} days`);
  assert.ok(opensslVerify(w, a.body['certificate'] as string, 'sslclient').ok);
  // The identical request again (an answer lost on the way): the same certificate, not a second one.
  const again = await svc.handle(body(w, { host: 'web-1', token, csr }), null, null);
  assert.is(again.status, 200);
  assert.is(again.body['serial'], a.body['serial']);
  assert.is(again.body['certificate'], a.body['certificate']);
  // The token replayed with another key: refused.
  refused(
    await svc.handle(body(w, { host: 'web-1', token, csr: newCsr(w).csr }), null, null),
    'NonceRefused',
  );
  assert.is(readdirSync(join(w.dir, 'enrol-state', 'certs')).length, 1);
});

test('refused: expired token, token for another host, CSR not signed by the host key, withdrawn nonce, unbound nonce, reused key', async () => {
  if (!requireTool('openssl', 'the issuing CA is openssl')) return;
  const w = world();
  const svc = w.service();
  // Expired.
  const short = mint(w, 'web-1', { expires: w.clock.now + 60_000 });
  w.clock.now += 120_000;
  refused(
    await svc.handle(body(w, { host: 'web-1', token: short, csr: newCsr(w).csr }), null, null),
    'Expired',
  );
  // A token of web-2 used for a request of web-1.
  const t2 = mint(w, 'web-2');
  refused(
    await svc.handle(body(w, { host: 'web-1', token: t2, csr: newCsr(w).csr }), null, null),
    'WrongHost',
  );
  // The request (binding the CSR) signed by a key that is not web-2's host key.
  refused(
    await svc.handle(
      body(w, { host: 'web-2', signer: newSigningKey('x'), token: t2, csr: newCsr(w).csr }),
      null,
      null,
    ),
    'UnknownKey',
  );
  // Withdrawn.
  const t3 = mint(w, 'web-1');
  withdrawEnrolmentNonces({
    treeDir: w.tree,
    root: w.root.signed,
    keys: w.enrolment,
    now: w.clock.now,
    host: 'web-1',
  });
  refreshTimestamp({ treeDir: w.tree, releaseKeys: [w.release], now: w.clock.now + 1000 });
  w.clock.now += 2000;
  refused(
    await svc.handle(body(w, { host: 'web-1', token: t3, csr: newCsr(w).csr }), null, null),
    'NonceRefused',
  );
  // Minted but not yet bound by a timestamp: not allowed yet.
  const t4 = mint(w, 'web-1', { refresh: false });
  refused(
    await svc.handle(body(w, { host: 'web-1', token: t4, csr: newCsr(w).csr }), null, null),
    'NonceRefused',
  );
  // web-2 enrols; a second token with the same key is refused (a key is certified once).
  const { csr } = newCsr(w);
  assert.is((await svc.handle(body(w, { host: 'web-2', token: t2, csr }), null, null)).status, 201);
  const t5 = mint(w, 'web-2');
  refused(await svc.handle(body(w, { host: 'web-2', token: t5, csr }), null, null), 'KeyReused');
  // A renewal request without a certificate (no token) is refused too.
  refused(
    await svc.handle(body(w, { host: 'web-2', token: null, csr: newCsr(w).csr }), null, null),
    'WrongHost',
  );
});

test('killed between the durable reservation and the answer: the retry gets the reserved certificate, a second key gets nothing', async () => {
  if (!requireTool('openssl', 'the issuing CA is openssl')) return;
  const w = world();
  const crashing = w.service({ afterReserve: () => Promise.reject(new Error('killed')) });
  const token = mint(w, 'web-1');
  const { csr } = newCsr(w);
  await crashing.handle(body(w, { host: 'web-1', token, csr }), null, null).then(
    () => assert.unreachable('the crash hook must abort the request'),
    (e: Error) => assert.is(e.message, 'killed'),
  );
  crashing.close();
  services.splice(services.indexOf(crashing), 1);
  assert.is(readdirSync(join(w.dir, 'enrol-state', 'certs')).length, 0);
  // Restarted from the durable record.
  const svc = w.service();
  assert.is(svc.record.size, 1);
  refused(
    await svc.handle(body(w, { host: 'web-1', token, csr: newCsr(w).csr }), null, null),
    'NonceRefused',
  );
  const a = await svc.handle(body(w, { host: 'web-1', token, csr }), null, null);
  assert.is(a.status, 200, JSON.stringify(a.body));
  assert.is(a.body['status'], 'recovered');
  assert.is(readdirSync(join(w.dir, 'enrol-state', 'certs')).length, 1);
});

test('renewal with the current certificate: a new key gets a new certificate, the same key or a revoked host gets nothing', async () => {
  if (!requireTool('openssl', 'the issuing CA is openssl')) return;
  const w = world();
  const svc = w.service();
  const token = mint(w, 'web-1');
  const k1 = newCsr(w);
  const first = await svc.handle(body(w, { host: 'web-1', token, csr: k1.csr }), null, null);
  assert.is(first.status, 201);
  const cert = first.body['certificate'] as string;
  const id: ClientIdentity = { cn: 'web-1', ou: 'agent', serial: first.body['serial'] as string };
  // A renewal for the key of the presented certificate (a fresh CSR of the same key): refused.
  const sameKeyCsr = execFileSync(
    'openssl',
    ['req', '-new', '-key', k1.key, '-subj', '/CN=again'],
    {
      encoding: 'utf8',
    },
  );
  refused(
    await svc.handle(body(w, { host: 'web-1', token: null, csr: sameKeyCsr }), id, cert),
    'KeyReused',
  );
  w.clock.now += 5 * DAY;
  const renewed = await svc.handle(
    body(w, { host: 'web-1', token: null, csr: newCsr(w).csr }),
    id,
    cert,
  );
  assert.is(renewed.status, 201, JSON.stringify(renewed.body));
  assert.is.not(renewed.body['serial'], first.body['serial']);
  // `pki list --issuing --enrol-state`: the issuing CA and each host's newest certificate only.
  const listed = listEnrolmentCerts(w.issuing.dir, join(w.dir, 'enrol-state'));
  assert.equal(
    listed.map((c) => [c.kind, c.serial]),
    [
      [
        'issuing-ca',
        new X509Certificate(readFileSync(w.issuing.caCert)).serialNumber.toUpperCase(),
      ],
      ['enrolled', renewed.body['serial']],
    ],
  );
  // A certificate of web-2 cannot renew web-1.
  refused(
    await svc.handle(
      body(w, { host: 'web-1', token: null, csr: newCsr(w).csr }),
      { cn: 'web-2', ou: 'agent', serial: '10' },
      null,
    ),
    'WrongHost',
  );
  // Revoked by a signed release: no renewal, whatever it presents.
  publishRelease({
    cacheCheck: 'skip',
    treeDir: w.tree,
    fleet: fleet(w.hostKeys, ['web-1']),
    releaseKeys: [w.release],
    roots: [w.root],
    now: w.clock.now,
  });
  w.clock.now += 1000;
  refused(
    await svc.handle(body(w, { host: 'web-1', token: null, csr: newCsr(w).csr }), id, cert),
    'Revoked',
  );
});

test('the issuing CA signs nothing its certificate excludes: server certificates, operators, another fleet', () => {
  if (!requireTool('openssl', 'the issuing CA is openssl')) return;
  const w = world();
  const { csr } = newCsr(w);
  const sign = (subject: string, ext: string) => {
    const d = mkdtempSync(join(w.dir, 'evil-'));
    writeFileSync(join(d, 'r.csr'), csr);
    writeFileSync(join(d, 'x.ext'), ext);
    return execFileSync(
      'openssl',
      [
        'x509',
        '-req',
        '-in',
        join(d, 'r.csr'),
        '-CA',
        w.issuing.caCert,
        '-CAkey',
        w.issuing.caKey,
        '-set_serial',
        '0x5000',
        '-days',
        '1',
        '-subj',
        subject,
        '-extfile',
        join(d, 'x.ext'),
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
  };
  const client =
    'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n';
  const server =
    'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n';
  // The control: a host certificate of this fleet verifies.
  assert.ok(opensslVerify(w, sign('/O=ops/OU=agent/CN=web-1', client), 'sslclient').ok);
  const serverCert = opensslVerify(w, sign('/O=ops/OU=agent/CN=localhost', server), 'sslserver');
  assert.not.ok(serverCert.ok);
  for (const subject of ['/O=ops/OU=operator/CN=admin', '/O=other/OU=agent/CN=web-1']) {
    const v = opensslVerify(w, sign(subject, client), 'sslclient');
    assert.not.ok(v.ok, subject);
    assert.match(v.out, /permitted subtree violation/);
  }
});

test.run();
