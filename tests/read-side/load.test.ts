// read-side/load.ts over a real published tree and real host-signed acks.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  loadFleetState,
  readAckLog,
  readPinnedRoot,
  ackTrustOf,
  loadVerifiedRelease,
  acksDirOf,
} from '../../read-side/load.ts';
import { VerificationError } from '../../protocol/errors.ts';
import { bundleRepeatsTakenFiles } from '../../read-side/acks.ts';
import { bundleJson } from '../../control-plane/ack-publisher.ts';
import { canonicalString, sha256Digest } from '../../protocol/canonical.ts';
import { formatRecord } from '../../protocol/ack-log.ts';
import { ackDigest, signAck, type SignedAck } from '../../protocol/acks.ts';
import {
  NOW,
  MIN,
  cleanupTempDirs,
  lifecycle,
  postAcks,
  publishedFixture,
  tempDir,
} from './fixture.ts';

test.after.each(cleanupTempDirs);

test('a verified tree + verified acks -> the fleet view the reconciler computes', async () => {
  const fx = publishedFixture();
  const [first] = fx.wave('ch-0', 0);
  postAcks(fx, first!, lifecycle(NOW - 10 * MIN, NOW - 2 * MIN));
  const st = await loadFleetState(fx.tree, readPinnedRoot(fx.rootFile), { now: NOW });
  assert.is(st.release.timestamp.release.version, 1);
  assert.equal(Object.keys(st.release.plans).sort(), ['ch-0', 'ch-1']);
  assert.is(st.acks.acks.length, 1);
  assert.is(st.acks.rejected.length, 0);
  const h = st.view.hosts.find((x) => x.host === first)!;
  assert.is(h.phase, 'soaked');
  const ch1 = st.view.channels.find((c) => c.channel === 'ch-1')!;
  assert.is(ch1.state, 'gated');
});

test("an ack signed by another key, for another fleet, or under another host's name is rejected and reported", async () => {
  const fx = publishedFixture();
  const [a, b] = fx.wave('ch-0', 0).concat(fx.wave('ch-0', 1));
  postAcks(fx, a!, lifecycle(NOW - 30 * MIN), fx.hostKeys[b!]);
  // b's genuine ack copied under a's name: the signature verifies, the name does not.
  const genuine = postAcks(fx, b!, [{ kind: 'started', at: NOW - MIN }]);
  writeFileSync(join(fx.tree, 'acks', 'hosts', `${a}.json`), canonicalString(genuine[0]));
  // b's own key, but an ack for another fleet, inside a wave bundle.
  const foreign = signAck(
    { ...genuine[0]!.signed, fleet: 'other-fleet', seq: 2, prev: ackDigest(genuine[0]!) },
    fx.hostKeys[b!]!,
  );
  mkdirSync(join(fx.tree, 'acks', 'channels', 'ch-0'), { recursive: true });
  writeFileSync(
    join(fx.tree, 'acks', 'channels', 'ch-0', 'wave-1.json'),
    canonicalString({
      type: 'ack-bundle',
      schemaVersion: 1,
      fleet: 'generated',
      channel: 'ch-0',
      wave: 1,
      generatedAt: '2030-03-01T11:59:00Z',
      acks: [genuine[0], foreign],
    }),
  );
  // Something that is not a regular file where an ack should be (it would never finish reading).
  symlinkSync('/dev/zero', join(fx.tree, 'acks', 'hosts', 'zz.json'));
  const st = await loadFleetState(fx.tree, readPinnedRoot(fx.rootFile), { now: NOW });
  assert.equal(
    st.acks.rejected.map((r) => [r.source, r.code]),
    [
      [`acks/hosts/${a}.json`, 'WrongHost'],
      ['acks/hosts/zz.json', 'Malformed'],
      ['acks/channels/ch-0/wave-1.json#1', 'WrongFleet'],
    ],
  );
  assert.is(st.acks.acks.length, 1, 'the same ack from the host file and the bundle counts once');
  assert.is(st.view.hosts.find((h) => h.host === a)!.phase, 'offline', 'a has no ack of its own');
  assert.is(st.view.hosts.find((h) => h.host === b)!.phase, 'activating');
  const log = readAckLog(fx.logFile, ackTrustOf(st.release));
  assert.is(log.acks.length, 1, "only b's own ack verifies");
  assert.is(log.rejected.length, 10);
  assert.ok(
    log.rejected.every((r) => r.code === 'UnknownKey' && r.host === a),
    JSON.stringify(log.rejected),
  );
});

test('a control plane directory: current -> versions/x, acks beside it', async () => {
  const fx = publishedFixture();
  const cp = tempDir('cp');
  mkdirSync(join(cp, 'versions'));
  cpSync(fx.tree, join(cp, 'versions', 'v1'), { recursive: true });
  symlinkSync('versions/v1', join(cp, 'current'));
  const [first] = fx.wave('ch-0', 0);
  postAcks(fx, first!, [{ kind: 'started', at: NOW - MIN }]);
  cpSync(join(fx.tree, 'acks'), join(cp, 'acks'), { recursive: true });
  const release = await loadVerifiedRelease(cp, readPinnedRoot(fx.rootFile), { now: NOW });
  assert.ok(release.treeRoot.endsWith('versions/v1'));
  const st = await loadFleetState(cp, readPinnedRoot(fx.rootFile), { now: NOW });
  assert.is(st.view.hosts.find((h) => h.host === first)!.phase, 'activating');
  assert.is(acksDirOf(cp), join(cp, 'acks'));
});

test('a tampered plan -> the typed error naming the file', async () => {
  const fx = publishedFixture();
  const file = 'releases/1/channels/ch-1.json';
  const p = join(fx.tree, file);
  const text = readFileSync(p, 'utf8');
  writeFileSync(p, text.replace('"soakSeconds":300', '"soakSeconds":30'));
  try {
    await loadFleetState(fx.tree, readPinnedRoot(fx.rootFile), { now: NOW });
    assert.unreachable('tampered tree loaded');
  } catch (e) {
    assert.instance(e, VerificationError);
    assert.is((e as VerificationError).file, file);
  }
});

test('a long log is verified as one batch: exactly the altered and the foreign-keyed acks are rejected, at their lines', async () => {
  const fx = publishedFixture();
  const [a, b] = fx.wave('ch-0', 0).concat(fx.wave('ch-0', 1));
  postAcks(fx, a!, lifecycle(NOW - 1200 * MIN, NOW - MIN));
  const lines = readFileSync(fx.logFile, 'utf8').split('\n').filter(Boolean);
  assert.ok(lines.length > 1100, `${lines.length} acks: enough for the parallel path`);
  // Line 700: the signed reason changed after signing (BadSignature); line 900: signed by b's key (UnknownKey).
  const alter = (i: number, fn: (ack: SignedAck) => SignedAck) => {
    const ack = fn(JSON.parse(lines[i]!.split('\t')[1]!) as SignedAck);
    const canonical = canonicalString(ack);
    lines[i] = formatRecord({ digest: sha256Digest(canonical), canonical })
      .toString('utf8')
      .trimEnd();
  };
  alter(699, (x) => ({ ...x, signed: { ...x.signed, reason: 'altered' } }));
  alter(899, (x) => signAck(x.signed, fx.hostKeys[b!]!));
  writeFileSync(fx.logFile, lines.join('\n') + '\n');
  const release = await loadVerifiedRelease(fx.tree, readPinnedRoot(fx.rootFile), { now: NOW });
  const log = readAckLog(fx.logFile, ackTrustOf(release));
  assert.equal(
    log.rejected.map((r) => [r.source, r.code]),
    [
      [`${fx.logFile}:700`, 'BadSignature'],
      [`${fx.logFile}:900`, 'UnknownKey'],
    ],
  );
  assert.is(log.acks.length, lines.length - 2);
  assert.equal(log.acks.map((x) => x.seq).slice(698, 700), [699, 701]);
});

/** The bundle the endpoint writes for a wave (control-plane/ack-publisher.ts) from the given latest acks. */
function writeBundle(
  fx: ReturnType<typeof publishedFixture>,
  channel: string,
  wave: number,
  latest: (host: string) => string | undefined,
  generatedAt = '2030-03-01T11:59:00Z',
): string {
  const text = bundleJson('generated', channel, wave, generatedAt, fx.wave(channel, wave), latest);
  mkdirSync(join(fx.tree, 'acks', 'channels', channel), { recursive: true });
  writeFileSync(join(fx.tree, 'acks', 'channels', channel, `wave-${wave}.json`), text);
  return text;
}

test('a wave bundle that repeats the latest-ack files byte for byte is skipped; any difference reads it in full', async () => {
  const fx = publishedFixture();
  const hosts = fx.wave('ch-0', 1);
  const chains = new Map(hosts.map((h) => [h, postAcks(fx, h, lifecycle(NOW - 20 * MIN))]));
  const file = (h: string) => readFileSync(join(fx.tree, 'acks', 'hosts', `${h}.json`));
  const taken = new Map(hosts.map((h) => [h, file(h)]));
  const fromFiles = (h: string) => taken.get(h)?.toString('utf8');
  const repeats = (text: string) =>
    bundleRepeatsTakenFiles(Buffer.from(text), taken, 'acks/channels/ch-0/wave-1.json');

  assert.ok(repeats(writeBundle(fx, 'ch-0', 1, fromFiles)));
  assert.ok(repeats(writeBundle(fx, 'ch-0', 0, () => undefined)), 'an empty bundle adds nothing');
  // Not repeats: an entry missing from the files, a malformed rest, another layout, a foreign entry.
  assert.not.ok(repeats(writeBundle(fx, 'ch-0', 1, fromFiles).replace('"wave":1', '"wave":"1"')));
  assert.not.ok(
    repeats(writeBundle(fx, 'ch-0', 1, fromFiles).replace('},{"signatures"', '}, {"signatures"')),
  );
  const [h0, h1] = hosts as [string, string];
  const older = canonicalString(chains.get(h0)![0]!);
  assert.not.ok(repeats(writeBundle(fx, 'ch-0', 1, (h) => (h === h0 ? older : fromFiles(h)))));
  assert.ok(
    repeats(writeBundle(fx, 'ch-0', 1, (h) => (h === h0 ? fromFiles(h1) : fromFiles(h)))),
    "h1's ack twice: still only acks already taken in (a bundle never takes one away)",
  );
  const partial = new Map(taken);
  partial.delete(h1);
  assert.not.ok(
    bundleRepeatsTakenFiles(Buffer.from(writeBundle(fx, 'ch-0', 1, fromFiles)), partial, 'b'),
  );

  // Read through the view: a bundle ahead of the files by one ack counts that ack; a forged entry
  // among repeated ones is rejected at its index; a repeating bundle changes nothing.
  const root = readPinnedRoot(fx.rootFile);
  writeBundle(fx, 'ch-0', 1, fromFiles);
  const same = await loadFleetState(fx.tree, root, { now: NOW });
  assert.equal(same.acks.rejected, []);
  assert.is(same.acks.acks.length, hosts.length);
  const chain = chains.get(h0)!;
  const last = chain[chain.length - 1]!;
  const next = signAck(
    {
      ...last.signed,
      seq: last.signed.seq + 1,
      prev: ackDigest(last),
      kind: 'failed',
      reason: 'x',
    },
    fx.hostKeys[h0]!,
  );
  writeBundle(fx, 'ch-0', 1, (h) => (h === h0 ? canonicalString(next) : fromFiles(h)));
  const ahead = await loadFleetState(fx.tree, root, { now: NOW });
  assert.equal(ahead.acks.rejected, []);
  assert.is(ahead.view.hosts.find((h) => h.host === h0)!.phase, 'failed');
  const forged = canonicalString(next).replace('"kind":"failed"', '"kind":"healthy"');
  writeBundle(fx, 'ch-0', 1, (h) => (h === h0 ? forged : fromFiles(h)));
  const st = await loadFleetState(fx.tree, root, { now: NOW });
  assert.equal(
    st.acks.rejected.map((r) => [r.source, r.code]),
    [[`acks/channels/ch-0/wave-1.json#${[...hosts].sort().indexOf(h0)}`, 'BadSignature']],
  );
  assert.is(st.view.hosts.find((h) => h.host === h0)!.phase, 'soaked');
});

test.run();
