// `nixfleet evidence export` / `verify` through the real dispatcher, over a real published tree whose
// manifests carry signed compliance results and real host-signed ack chains carrying runtime evidence.
// A good bundle verifies and shows each host's controls; every kind of tampering an auditor must catch
// is refused, naming what is wrong.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ackDigest, signAck, type SignedAck } from '../../protocol/acks.ts';
import { canonicalString } from '../../protocol/canonical.ts';
import { signingKeyFromSeed } from '../../protocol/keys.ts';
import { isoTime } from '../../protocol/schemas/common.ts';
import type { EvidenceBundle } from '../../protocol/schemas/evidence.ts';
import type { EvidenceReport } from '../../protocol/evidence.ts';
import { DAY, makeRoot } from '../support/tree-builder.ts';
import { HOSTILE_EXCERPT, digestOf, evidence, scene, type Scene } from './compliance-fixture.ts';
import { MIN, NOW, cleanupTempDirs, run, tempDir } from './fixture.ts';

test.after.each(cleanupTempDirs);

const NOW_ISO = isoTime(NOW);

async function exportScene(s: Scene, ...extra: string[]) {
  return run(
    'evidence',
    'export',
    '--tree',
    s.fx.tree,
    '--root',
    s.fx.rootFile,
    '--ack-log',
    s.fx.logFile,
    '--now',
    NOW_ISO,
    '--out',
    s.bundle,
    ...extra,
  );
}
const verify = (file: string, root: string, ...extra: string[]) =>
  run('evidence', 'verify', file, '--root', root, ...extra);
const readBundle = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as EvidenceBundle;
const writeBundle = (file: string, b: EvidenceBundle) => writeFileSync(file, JSON.stringify(b));

/** Re-signs a host's acks (seq 1..) with `key` as a complete chain, replacing its acks and digests in the bundle. */
function replaceChain(b: EvidenceBundle, host: string, acks: SignedAck[]): void {
  for (const k of Object.keys(b.digests)) if (k.startsWith(`acks/${host}/`)) delete b.digests[k];
  b.acks[host] = acks.map((a) => {
    const text = canonicalString(a);
    b.digests[`acks/${host}/${a.signed.seq}`] = digestOf(text);
    return text;
  });
}

test('a good bundle verifies offline and shows static and runtime controls per host', async () => {
  const s = scene('ev-good');
  const ex = await exportScene(s);
  assert.is(ex.code, 0, ex.err);
  assert.match(ex.out, /wrote .*evidence\.json: fleet "generated"/);
  const b = readBundle(s.bundle);
  // Everything the release walk verified, nothing else: roots, timestamp, revocations, index, budgets, plans, manifests.
  assert.ok(b.documents['root/1.json']);
  assert.ok(b.documents['timestamp.json']);
  assert.is(Object.keys(b.documents).filter((p) => p.includes('/hosts/')).length, 8);
  assert.is(Object.keys(b.documents).filter((p) => p.includes('/channels/')).length, 2);
  assert.is(b.acks[s.a]!.length, 13);
  // Each ack's digest is its chain digest (what the next ack's prev names).
  const second = JSON.parse(b.acks[s.a]![1]!) as SignedAck;
  assert.is(second.signed.prev, b.digests[`acks/${s.a}/1`]);

  const json = await verify(s.bundle, s.fx.rootFile, '--json');
  assert.is(json.code, 0, json.err);
  const report = JSON.parse(json.out) as EvidenceReport;
  assert.is(report.fleet, 'generated');
  assert.is(report.scope.channel, null);
  assert.is(report.acks, 13 + 10);
  const ha = report.hosts.find((h) => h.host === s.a)!;
  assert.is(ha.mode, 'enforce');
  assert.equal(ha.frameworks, ['cis']);
  assert.equal(
    ha.controls.map((c) => [c.control, c.kind, c.status, c.ackSeq ?? null]),
    [
      ['ssh-no-password', 'static', 'ok', null],
      ['aide', 'runtime', 'failing', 13],
      ['auditd', 'runtime', 'ok', 13],
    ],
  );
  const aide = ha.controls[1]!;
  assert.is(aide.time, isoTime(NOW - 10 * MIN));
  assert.is(aide.exitCode, 1);
  assert.is(aide.outputDigest, digestOf(HOSTILE_EXCERPT));
  const hb = report.hosts.find((h) => h.host === s.b)!;
  assert.equal(
    hb.controls.map((c) => c.status),
    ['ok', 'no-evidence', 'no-evidence'],
  );
  const other = report.hosts.find((h) => h.channel === 'ch-1')!;
  assert.is(other.mode, null);
  assert.equal(other.controls, []);

  const text = await verify(s.bundle, s.fx.rootFile);
  assert.is(text.code, 0, text.err);
  assert.match(text.out, /^OK: evidence bundle /);
  const aideRow = text.out.split('\n').find((l) => l.startsWith(s.a) && l.includes(' aide '))!;
  assert.match(aideRow, /FAILING/);
  assert.match(aideRow, /ack seq 13, exit 1/);
  // The excerpt's line break stays on its row, and the escape never reaches the terminal raw.
  assert.match(aideRow, /changed: \/etc\/passwd\\nFAKE ROW ok \\u001b\[2J/);
  assert.not.ok(text.out.includes('\u001b'));
  assert.not.ok(text.out.split('\n').some((l) => l.startsWith('FAKE ROW')));
});

test('a tampered byte is refused: by the digest manifest, and with the digest updated by the signature', async () => {
  const s = scene('ev-tamper');
  assert.is((await exportScene(s)).code, 0);
  const b = readBundle(s.bundle);
  const path = Object.keys(b.documents).find((p) => p.endsWith(`/hosts/${s.a}.json`))!;
  // Flip the static control's result in the signed manifest: "ok":true -> "ok":fals... one byte at a time.
  const tampered = b.documents[path]!.replace('"ok":true', '"ok":fals');
  assert.is.not(tampered, b.documents[path]);
  b.documents[path] = tampered.replace('"ok":fals', '"ok":!rue');
  writeBundle(s.bundle, b);
  let r = await verify(s.bundle, s.fx.rootFile);
  assert.is(r.code, 1);
  assert.match(
    r.err,
    new RegExp(
      `REFUSED: MixAndMatch: .*documents/${path}: has digest sha256:[0-9a-f]{64}, the bundle's digest manifest says`,
    ),
  );
  // A consistent forger also fixes the manifest: then the release key's signature refuses it.
  b.documents[path] = b.documents[path]!.replace('"ok":!rue', '"ok":true').replace(
    'PasswordAuthentication = false',
    'PasswordAuthentication = fals3',
  );
  b.digests[`documents/${path}`] = digestOf(b.documents[path]!);
  writeBundle(s.bundle, b);
  r = await verify(s.bundle, s.fx.rootFile);
  assert.is(r.code, 1);
  assert.match(r.err, new RegExp(`REFUSED: BadSignature: ${path}`));
  // A tampered ack (its excerpt) with its digest fixed: the host's signature refuses it.
  assert.is((await exportScene(s)).code, 0);
  const b3 = readBundle(s.bundle);
  const i = b3.acks[s.a]!.length - 1;
  b3.acks[s.a]![i] = b3.acks[s.a]![i]!.replace('changed: /etc/passwd', 'changed: /etc/passwe');
  b3.digests[`acks/${s.a}/13`] = digestOf(b3.acks[s.a]![i]!);
  writeBundle(s.bundle, b3);
  r = await verify(s.bundle, s.fx.rootFile);
  assert.is(r.code, 1);
  assert.match(r.err, new RegExp(`REFUSED: BadSignature: .*acks/${s.a}\\[12\\] \\(seq 13\\)`));
});

test('a dropped ack is a gap and refuses the bundle, naming host and seq', async () => {
  const s = scene('ev-drop');
  assert.is((await exportScene(s)).code, 0);
  const b = readBundle(s.bundle);
  b.acks[s.a]!.splice(4, 1);
  delete b.digests[`acks/${s.a}/5`];
  writeBundle(s.bundle, b);
  const r = await verify(s.bundle, s.fx.rootFile, '--json');
  assert.is(r.code, 1);
  const err = (JSON.parse(r.out) as { error: { code: string; file: string; detail: string } })
    .error;
  assert.is(err.code, 'AckChainBroken');
  assert.match(err.file, `acks/${s.a}`);
  assert.match(err.detail, `host ${s.a}: seq 5 is missing between seq 4 and 6`);
  // Dropping the head (seq 1) is refused too: a chain starts at seq 1.
  const b2 = readBundle(s.bundle);
  b2.acks[s.a] = b2.acks[s.a]!.slice(1);
  delete b2.digests[`acks/${s.a}/1`];
  writeBundle(s.bundle, b2);
  const r2 = await verify(s.bundle, s.fx.rootFile);
  assert.is(r2.code, 1);
  assert.match(r2.err, /AckChainBroken: .*acks start at seq 2, seq 1-1 missing/);
});

test('an ack chain signed by a host key the release does not name is refused', async () => {
  const s = scene('ev-foreign');
  assert.is((await exportScene(s)).code, 0);
  const b = readBundle(s.bundle);
  // A complete, well-formed chain for host a, with evidence all passing, signed by a foreign key.
  const foreign = signingKeyFromSeed('foreign', new Uint8Array(32).fill(7));
  const originals = b.acks[s.a]!.map((t) => JSON.parse(t) as SignedAck);
  const forged: SignedAck[] = [];
  for (const o of originals) {
    const prev: string | null = forged.length === 0 ? null : ackDigest(forged.at(-1)!);
    const { evidence: _e, ...rest } = o.signed;
    forged.push(
      signAck({ ...rest, prev, evidence: [evidence('aide', true, 'all good')] }, foreign),
    );
  }
  replaceChain(b, s.a, forged);
  writeBundle(s.bundle, b);
  const r = await verify(s.bundle, s.fx.rootFile);
  assert.is(r.code, 1);
  assert.match(
    r.err,
    new RegExp(`REFUSED: (UnknownKey|BadSignature): .*acks/${s.a}\\[0\\] \\(seq 1\\)`),
  );
  // The host's own key on another host's acks: also refused (the key must be the one the release names for that host).
  assert.is((await exportScene(s)).code, 0);
  const b2 = readBundle(s.bundle);
  const resigned: SignedAck[] = [];
  for (const t of b2.acks[s.a]!) {
    const o = JSON.parse(t) as SignedAck;
    const prev: string | null = resigned.length === 0 ? null : ackDigest(resigned.at(-1)!);
    resigned.push(signAck({ ...o.signed, prev }, s.fx.hostKeys[s.b]!));
  }
  replaceChain(b2, s.a, resigned);
  writeBundle(s.bundle, b2);
  const r2 = await verify(s.bundle, s.fx.rootFile);
  assert.is(r2.code, 1);
  assert.match(r2.err, new RegExp(`REFUSED: (UnknownKey|BadSignature): .*acks/${s.a}`));
});

test('a wrong pinned root, and a bundle of another fleet, are refused', async () => {
  const s = scene('ev-root');
  assert.is((await exportScene(s)).code, 0);
  const dir = tempDir('ev-roots');
  const key = (l: string) => signingKeyFromSeed(l, new Uint8Array(32).fill(l.length));
  const writeRoot = (name: string, fleet: string) => {
    const root = makeRoot({
      fleet,
      issuedAt: NOW - 10 * DAY,
      rootKeys: [key('other-root')],
      releaseKeys: [{ key: key('other-rel'), validFrom: NOW - 10 * DAY, validUntil: NOW + DAY }],
    });
    const file = join(dir, name);
    writeFileSync(file, canonicalString(root));
    return file;
  };
  // Same fleet name, other keys: not the root the bundle's chain starts from.
  const r = await verify(s.bundle, writeRoot('same-fleet.json', 'generated'));
  assert.is(r.code, 1);
  assert.match(r.err, /REFUSED: MixAndMatch: .*root\/1\.json: differs from the pinned root v1/);
  // The auditor's root is for another fleet.
  const r2 = await verify(s.bundle, writeRoot('other-fleet.json', 'other'), '--json');
  assert.is(r2.code, 1);
  assert.is(JSON.parse(r2.out).error.code, 'WrongFleet');
  // The bundle claims another fleet than its documents (its own root must still be the pinned one).
  const b = readBundle(s.bundle);
  b.fleet = 'other';
  writeBundle(s.bundle, b);
  const r3 = await verify(s.bundle, s.fx.rootFile);
  assert.is(r3.code, 1);
  assert.match(
    r3.err,
    /REFUSED: WrongFleet: .*the bundle is for fleet "other", the pinned root for "generated"/,
  );
});

test('digest manifest mismatches, missing and stowaway entries are refused', async () => {
  const s = scene('ev-digests');
  assert.is((await exportScene(s)).code, 0);
  const fresh = () => readBundle(s.bundle);
  const out = join(s.fx.dir, 'edited.json');
  const refused = async (b: EvidenceBundle, re: RegExp) => {
    writeBundle(out, b);
    const r = await verify(out, s.fx.rootFile);
    assert.is(r.code, 1, r.out);
    assert.match(r.err, re);
  };
  let b = fresh();
  b.digests['documents/timestamp.json'] = digestOf('something else');
  await refused(
    b,
    /MixAndMatch: .*documents\/timestamp\.json: has digest .*, the bundle's digest manifest says/,
  );
  b = fresh();
  delete b.digests[`acks/${s.b}/3`];
  await refused(
    b,
    new RegExp(`MixAndMatch: .*acks/${s.b}/3: is not in the bundle's digest manifest`),
  );
  b = fresh();
  b.digests['documents/releases/9/index.json'] = digestOf('x');
  await refused(
    b,
    /MixAndMatch: .*releases\/9\/index\.json: is in the bundle's digest manifest, but the bundle does not hold it/,
  );
  // A document no verified document binds (a plan of a channel the release lacks) cannot ride along.
  b = fresh();
  const extra = 'releases/1/channels/stowaway.json';
  b.documents[extra] = b.documents['releases/1/channels/ch-0.json']!;
  b.digests[`documents/${extra}`] = digestOf(b.documents[extra]!);
  await refused(
    b,
    /MixAndMatch: .*stowaway\.json: is in the bundle, but no verified document of the release binds it/,
  );
  // A manifest of the scope missing (with its digest): the index binds it.
  b = fresh();
  const path = Object.keys(b.documents).find((p) => p.endsWith(`/hosts/${s.b}.json`))!;
  delete b.documents[path];
  delete b.digests[`documents/${path}`];
  await refused(
    b,
    new RegExp(`MixAndMatch: .*${path}: is missing, but the release index binds it`),
  );
});

test('--channel and --since: a scoped bundle with anchored chains verifies; unknown channel is exit 2', async () => {
  const s = scene('ev-scope');
  const since = isoTime(NOW - 15 * MIN);
  const ex = await exportScene(s, '--channel', 'ch-0', '--since', since);
  assert.is(ex.code, 0, ex.err);
  const b = readBundle(s.bundle);
  assert.equal(b.scope, { channel: 'ch-0', since });
  const manifests = Object.keys(b.documents).filter((p) => p.includes('/hosts/'));
  assert.is(manifests.length, Object.keys(s.fx.plans['ch-0']!.hosts).length);
  // Host a: the anchor (its last ack before --since, the heartbeat at -20 min), then the one at -10 min.
  const seqs = b.acks[s.a]!.map((t) => (JSON.parse(t) as SignedAck).signed.seq);
  assert.equal(seqs, [12, 13]);
  const r = await verify(s.bundle, s.fx.rootFile, '--json');
  assert.is(r.code, 0, r.err);
  const report = JSON.parse(r.out) as EvidenceReport;
  assert.ok(report.hosts.every((h) => h.channel === 'ch-0'));
  assert.is(report.hosts.find((h) => h.host === s.a)!.controls[1]!.status, 'failing');
  // Dropping the anchor: the chain now starts after --since without seq 1: refused.
  b.acks[s.a] = b.acks[s.a]!.slice(1);
  delete b.digests[`acks/${s.a}/12`];
  writeBundle(s.bundle, b);
  const r2 = await verify(s.bundle, s.fx.rootFile);
  assert.is(r2.code, 1);
  assert.match(r2.err, /AckChainBroken: .*acks start at seq 13/);
  const bad = await exportScene(s, '--channel', 'nope');
  assert.is(bad.code, 2);
  assert.match(bad.err, /--channel: release 1 has no channel "nope"/);
});

test('export refuses a history with a hole (an ack missing from the log), naming host and seq', async () => {
  const s = scene('ev-export-gap');
  // Rewrite the log without host b's third ack.
  const lines = readFileSync(s.fx.logFile, 'utf8')
    .split('\n')
    .filter((l) => l !== '');
  const kept = lines.filter((l) => !(l.includes(`"host":"${s.b}"`) && l.includes('"seq":3,')));
  assert.is(kept.length, lines.length - 1);
  writeFileSync(s.fx.logFile, kept.map((l) => l + '\n').join(''));
  const r = await exportScene(s);
  assert.is(r.code, 1);
  assert.match(
    r.err,
    new RegExp(
      `REFUSED: AckChainBroken: acks of ${s.b}: host ${s.b}: seq 3 is missing between seq 2 and 4`,
    ),
  );
});

test.run();
