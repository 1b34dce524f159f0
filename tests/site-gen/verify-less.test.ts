// The dashboard verifies as a reader (build.ts SITE_SIGNATURES): host manifests bound by the verified
// release index, acks through each host's chain tip. Every case builds the site twice, that way and with
// every signature checked (`everySignature`, what `nixfleet verify` would vouch for), and the two sites
// must be byte for byte the same: a tampered or forged ack is refused alike, a tampered manifest fails
// the build alike.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { appendFileSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildSite, type SiteBuildResult } from '../../site-gen/build.ts';
import { ackDigest, type SignedAck } from '../../protocol/acks.ts';
import { sha256Digest } from '../../protocol/canonical.ts';
import { formatRecord } from '../../protocol/ack-log.ts';
import { hostManifestPath } from '../../protocol/layout.ts';
import { newSigningKey } from '../../protocol/keys.ts';
import { hostKeysOfPlans, readAckHistory, type AckSignatures } from '../../read-side/acks.ts';
import { AckWriter, NOW, createSiteFixture, readSite, type SiteFixture } from './fixture.ts';

const fixtures: SiteFixture[] = [];
test.after.each(() => {
  for (const f of fixtures.splice(0)) f.cleanup();
});
function fixture(): SiteFixture {
  const f = createSiteFixture();
  fixtures.push(f);
  return f;
}

/**
 * Builds `f` both ways; the sites must be identical. Returns the reader's build, which also takes the
 * log's acks in on the helper thread (ack-preparse.ts), the other on its own.
 */
async function bothWays(f: SiteFixture): Promise<SiteBuildResult> {
  const build = (out: string, everySignature: boolean) =>
    buildSite({
      treeDir: f.treeDir,
      pinnedRoot: f.root,
      outDir: out,
      now: NOW,
      everySignature,
      preparseAcks: !everySignature,
    });
  const reader = await build(join(f.dir, 'site-reader'), false);
  const every = await build(join(f.dir, 'site-every'), true);
  const strip = (r: SiteBuildResult) => ({ ...r, outDir: '', buildDir: '', timingsMs: null });
  assert.equal(strip(reader), strip(every));
  const a = readSite(join(f.dir, 'site-reader'));
  const b = readSite(join(f.dir, 'site-every'));
  assert.equal([...a.keys()], [...b.keys()]);
  for (const [path, text] of a) assert.ok(text === b.get(path), `${path} differs`);
  return reader;
}

const logFile = (f: SiteFixture) => join(f.treeDir, '.ack-log', 'acks.log');
const latest = (f: SiteFixture, host: string): SignedAck =>
  JSON.parse(readFileSync(join(f.treeDir, 'acks', 'hosts', `${host}.json`), 'utf8')) as SignedAck;

test('an untampered fleet: the same site both ways, every ack accepted', async () => {
  const f = fixture();
  const r = await bothWays(f);
  assert.is(r.status, 'verified');
  assert.is(r.acks.rejected, 0);
  assert.ok(r.acks.accepted > 12);
});

test('a mid-chain ack whose bytes were changed (valid log framing) is refused, as with every signature checked', async () => {
  const f = fixture();
  const host = f.roles.soaked; // five acks: heartbeat, started, activated, healthy, heartbeat
  const lines = readFileSync(logFile(f), 'utf8').split('\n');
  const i = lines.findIndex((l) => l.includes(`"host":"${host}"`) && l.includes('"activated"'));
  assert.ok(i >= 0);
  const canonical = lines[i]!.slice(lines[i]!.indexOf('{'));
  const forged = canonical.replace(/("time":"[0-9T:-]+:)00Z"/, '$101Z"');
  assert.is.not(forged, canonical);
  lines[i] = formatRecord({ digest: sha256Digest(forged), canonical: forged })
    .toString('utf8')
    .trimEnd();
  writeFileSync(logFile(f), lines.join('\n'));
  const r = await bothWays(f);
  assert.is(r.acks.rejected, 1);
});

test("a forged ack (the host's key id, another key's signature) outside any chain, and one forked onto the host's tip, are refused", async () => {
  const f = fixture();
  const host = f.roles.soaking;
  const forger = { ...newSigningKey('forger'), keyid: f.hostKeys[host]!.keyid };
  const before = await bothWays(f);
  const tip = latest(f, host);
  const loose = new AckWriter(f.treeDir, host, forger, 'generated');
  loose.write({ at: NOW - 10_000, kind: 'failed', reason: 'forged, seq 1' });
  const onTip = new AckWriter(f.treeDir, host, forger, 'generated');
  onTip.write({
    at: NOW - 5_000,
    kind: 'failed',
    seq: tip.signed.seq + 1,
    prev: ackDigest(tip),
    reason: 'forged onto the tip',
  });
  const r = await bothWays(f);
  assert.is(r.acks.rejected, 2);
  assert.is(r.acks.accepted, before.acks.accepted);
  assert.equal(r.phases, before.phases);
});

test("a host re-keyed mid-chain: the new key's tip never vouches for the acks under the old key", () => {
  // The plans now name a new key for the host; its chain continues under that key. Every reader checks
  // each ack against the plan's key: the old key's acks are refused both ways, the new one accepted.
  const f = fixture();
  const host = f.roles.soaked;
  const newKey = newSigningKey('rekeyed');
  const tip = latest(f, host);
  new AckWriter(f.treeDir, host, newKey, 'generated').write({
    at: NOW - 1_000,
    kind: 'heartbeat',
    seq: tip.signed.seq + 1,
    prev: ackDigest(tip),
  });
  const hostKeys = hostKeysOfPlans(f.plans);
  hostKeys.set(host, Buffer.from(newKey.publicKey).toString('base64'));
  const read = (signatures: AckSignatures) =>
    readAckHistory({
      acksDir: join(f.treeDir, 'acks'),
      logFile: logFile(f),
      bundles: false,
      trust: { fleet: 'generated', hostKeys },
      signatures,
    });
  const each = read('each');
  const chains = read('chain-tips');
  assert.equal(chains.acks, each.acks);
  assert.equal(chains.rejected, each.rejected);
  assert.equal(
    chains.acks.filter((a) => a.host === host).map((a) => a.seq),
    [tip.signed.seq + 1],
  );
  assert.is(chains.rejected.filter((r) => r.host === host).length, tip.signed.seq);
});

test('records the helper thread must not vouch for: a duplicate key (the signature still verifies) and an unknown field, mid-chain, are refused, as without the helper', async () => {
  // The reader's build takes the log's acks in on the helper thread; the build then only decodes the
  // records the helper vouched for (AckCache.primeTakenIn). A record that strict JSON refuses but whose
  // decoded ack is genuine (a duplicate key, the last one the genuine value) would be taken in if the
  // helper vouched for it: only the helper's strict intake keeps it out.
  const f = fixture();
  const host = f.roles.soaked;
  const lines = readFileSync(logFile(f), 'utf8').split('\n');
  const i = lines.findIndex((l) => l.includes(`"host":"${host}"`) && l.includes('"activated"'));
  assert.ok(i >= 0);
  const canonical = lines[i]!.slice(lines[i]!.indexOf('{'));
  const duplicated = canonical.replace('"seq":', '"seq":0,"seq":');
  const unknown = canonical.replace('"kind":', '"extra":1,"kind":');
  for (const variant of [duplicated, unknown]) {
    assert.is.not(variant, canonical);
    lines[i] = formatRecord({ digest: sha256Digest(variant), canonical: variant })
      .toString('utf8')
      .trimEnd();
    writeFileSync(logFile(f), lines.join('\n'));
    const r = await bothWays(f);
    assert.is(r.acks.rejected, 1, variant);
  }
});

test('a log record whose bytes begin with a BOM: the same site both ways (the helper thread does not vouch for it)', async () => {
  // The intake of an ack's bytes drops a leading BOM; the helper reads the record's text, which keeps
  // it. Had the helper vouched for the record, the build would decode that text (JSON.parse refuses a
  // BOM) and fail.
  const f = fixture();
  const lines = readFileSync(logFile(f), 'utf8').split('\n').filter(Boolean);
  const canonical = lines.at(-1)!.slice(lines.at(-1)!.indexOf('\t') + 1);
  const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(canonical, 'utf8')]);
  appendFileSync(
    logFile(f),
    Buffer.concat([Buffer.from(`${sha256Digest(bom)}\t`), bom, Buffer.from('\n')]),
  );
  const r = await bothWays(f);
  assert.is(r.status, 'verified');
});

test('a host manifest whose bytes were changed fails the build, as with every signature checked', async () => {
  const f = fixture();
  const dir = join(f.treeDir, 'releases', '1', 'hosts');
  const host = readdirSync(dir)[0]!.replace(/\.json$/, '');
  const file = join(f.treeDir, hostManifestPath(1, host));
  writeFileSync(
    file,
    readFileSync(file, 'utf8').replace('"fleet":"generated"', '"fleet":"generatee"'),
  );
  const r = await bothWays(f);
  assert.is(r.status, 'failed');
  assert.is(r.failure!.file, hostManifestPath(1, host));
});

test.run();
