// Ack log snapshots: start-up from the last snapshot plus the records after it gives exactly the chain
// state a full replay of the log gives (appends, mid-chain adoption, back-fill), and a snapshot that does
// not fit the log (corrupt, or the log was replaced) is ignored in favour of a full replay.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  appendFileSync,
  cpSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  existsSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  AckService,
  loadReleaseView,
  parseAckLog,
  ACK_LOG_FILE,
  type ClientIdentity,
} from '../../control-plane/index.ts';
import { ACK_SNAPSHOT_FILE, readAckSnapshot } from '../../control-plane/ack-log.ts';
import { formatRecord } from '../../protocol/ack-log.ts';
import { canonicalString, sha256Digest } from '../../protocol/canonical.ts';
import { ackDigest, type SignedAck } from '../../protocol/acks.ts';
import {
  fixtureHosts,
  fixtureKeys,
  writeTree,
  tempDir,
  removeDir,
  AckChain,
  logRecordOf,
} from './tree-fixture.ts';

const test = suite('control-plane ack log snapshots');
const keys = fixtureKeys();
const hosts = fixtureHosts({ a: { wave: 0 }, b: { wave: 0 }, c: { wave: 1 }, d: { wave: 1 } });
let dir: string;

const agent = (cn: string): ClientIdentity => ({ cn, ou: 'agent', serial: '1001' });
const body = (x: unknown) => Buffer.from(JSON.stringify(x));

async function service(logDir: string, snapshotEvery = 4) {
  const svc = await AckService.open({
    logDir,
    publishRoot: dir,
    rateLimit: false,
    debounceMs: 5,
    snapshotEvery,
  });
  svc.setView(loadReleaseView(dir));
  return svc;
}

/** Every host's head as the endpoint answers it (seq, digest, missingBelow). */
function heads(svc: AckService): Record<string, unknown> {
  return Object.fromEntries(hosts.map((h) => [h.name, svc.head(h.name) ?? null]));
}

async function post(svc: AckService, ack: SignedAck, expect: number): Promise<void> {
  const r = await svc.submit(body(ack), agent(ack.signed.host));
  assert.is(
    r.status,
    expect,
    `${ack.signed.host} seq ${ack.signed.seq}: ${JSON.stringify(r.body)}`,
  );
}

/**
 * Host a's first `n` acks, each answered 201 by an endpoint on `logDir` that writes a snapshot every
 * `snapshotEvery` appends, then closed; the returned chain goes on from there.
 */
async function postedAcks(logDir: string, snapshotEvery: number, n: number): Promise<AckChain> {
  const svc = await service(logDir, snapshotEvery);
  const chain = new AckChain(hosts[0]!);
  for (let i = 0; i < n; i++) await post(svc, chain.next(), 201);
  await svc.close();
  return chain;
}

test.before.each(() => {
  dir = tempDir('ack-snapshot');
  writeTree(dir, { keys, hosts, version: 1 });
});
test.after.each(() => removeDir(dir));

test('start-up from the snapshot + the records after it equals a full replay, through appends, adoption and back-fill', async () => {
  const logDir = join(dir, 'log');
  // Snapshots after 7 and 14 appends: the back-fill (15th) is among the records replayed after one.
  const svc = await service(logDir, 7);
  const chains = new Map(hosts.map((h) => [h.name, new AckChain(h)]));
  // Host d's history starts mid-chain (as after a rebuild): acks 1..6 exist, the endpoint sees 4 first.
  const d = Array.from({ length: 6 }, () => chains.get('d')!.next());
  for (let round = 0; round < 5; round++) {
    for (const h of ['a', 'b', 'c']) await post(svc, chains.get(h)!.next(), 201);
    if (round === 1) await post(svc, d[3]!, 201); // adopted at seq 4
    if (round === 2) await post(svc, d[4]!, 201); // appended
    if (round === 3) await post(svc, d[2]!, 201); // back-filled (seq 3)
  }
  await svc.close();
  assert.ok(existsSync(join(logDir, ACK_SNAPSHOT_FILE)), 'a snapshot was written');
  const expected = heads(svc);
  assert.is((expected['d'] as { missingBelow?: number }).missingBelow, 3);

  // A copy of the log without the snapshot replays in full: the reference state.
  const fullDir = join(dir, 'log-full');
  cpSync(logDir, fullDir, { recursive: true });
  rmSync(join(fullDir, ACK_SNAPSHOT_FILE));
  const full = await service(fullDir, 0);
  assert.is(full.startup.fullReplayBecause, 'no snapshot');
  assert.is(full.startup.replayed, 18);
  assert.equal(heads(full), expected);
  await full.close();

  const fast = await service(logDir, 7);
  assert.is(fast.startup.replayed, 4);
  assert.ok(fast.startup.snapshotHeads > 0, JSON.stringify(fast.startup));
  assert.ok(fast.startup.replayed < 18, `replayed ${fast.startup.replayed} of 18 records`);
  assert.is(fast.startup.fullReplayBecause, undefined);
  assert.equal(heads(fast), expected);
  // The chains continue: forward for everyone, downwards for d.
  for (const h of ['a', 'b', 'c']) await post(fast, chains.get(h)!.next(), 201);
  await post(fast, d[5]!, 201);
  await post(fast, d[1]!, 201);
  await post(fast, d[1]!, 409); // held now: below the floor only seq 1 is wanted
  await post(fast, chains.get('a')!.make({ seq: 2 }), 409);
  await fast.close();
  assert.is(
    parseAckLog(readFileSync(join(logDir, ACK_LOG_FILE))).records.length,
    23,
    'the log keeps every ack (nothing compacted away)',
  );
});

test('a snapshot that does not fit the log is ignored: corrupt file, or a log replaced by a shorter copy', async () => {
  const logDir = join(dir, 'log');
  const svc = await service(logDir);
  const chain = new AckChain(hosts[0]!);
  const early: SignedAck[] = [];
  for (let i = 0; i < 9; i++) {
    const a = chain.next();
    if (i < 2) early.push(a);
    await post(svc, a, 201);
  }
  await svc.close();
  const snapshotFile = join(logDir, ACK_SNAPSHOT_FILE);
  const logFile = join(logDir, ACK_LOG_FILE);

  // One byte of the snapshot flipped: its checksum fails, the whole log is replayed.
  const snap = readFileSync(snapshotFile);
  const good = Buffer.from(snap);
  snap[snap.length - 10] = snap[snap.length - 10]! ^ 1;
  writeFileSync(snapshotFile, snap);
  const s1 = await service(logDir);
  assert.match(s1.startup.fullReplayBecause ?? '', /checksummed/);
  assert.is(s1.startup.replayed, 9);
  assert.is(s1.head('a')?.seq, 9);
  await s1.close();

  // The log restored from an older copy (2 records): the snapshot covers bytes it does not have.
  writeFileSync(snapshotFile, good);
  const lines = readFileSync(logFile, 'utf8').split('\n');
  writeFileSync(logFile, lines.slice(0, 2).join('\n') + '\n');
  const s2 = await service(logDir);
  assert.match(s2.startup.fullReplayBecause ?? '', /covers/);
  assert.is(s2.startup.replayed, 2);
  // (its published head, seq 9, is then taken back in: ack-service.ts adoptPublishedHeads)
  assert.is(s2.head('a')?.seq, 9);
  await s2.close();

  // Same length, other records: the record at the snapshot's offset is not the one it names.
  const snapAt = (
    JSON.parse(good.toString('utf8').split('\t').slice(1).join('\t')) as { at: { bytes: number } }
  ).at.bytes;
  writeFileSync(logFile, Buffer.alloc(0));
  rmSync(snapshotFile);
  const s3 = await service(logDir, 1);
  const other = new AckChain(hosts[1]!);
  while (statSync(logFile).size < snapAt) await post(s3, other.next(), 201);
  await s3.close();
  writeFileSync(snapshotFile, good);
  const s4 = await service(logDir);
  assert.match(
    s4.startup.fullReplayBecause ?? '',
    /the record ending at byte \d+ is sha256:[0-9a-f]+, the snapshot names/,
  );
  assert.is(s4.startup.replayed, parseAckLog(readFileSync(logFile)).records.length);
  assert.ok((s4.head('b')?.seq ?? 0) > 0);
  await s4.close();
});

test('a torn tail after the snapshot is still cut, and the chain continues', async () => {
  const logDir = join(dir, 'log');
  const chain = await postedAcks(logDir, 2, 5);
  const logFile = join(logDir, ACK_LOG_FILE);
  const size = statSync(logFile).size;
  appendFileSync(logFile, 'sha256:' + 'cd'.repeat(32) + '\t{"signed":');
  const s2 = await service(logDir, 2);
  assert.ok(s2.startup.snapshotHeads > 0);
  assert.ok(s2.recoveredCutBytes > 0);
  assert.is(statSync(logFile).size, size);
  assert.is(s2.head('a')?.seq, 5);
  await post(s2, chain.next(), 201);
  await s2.close();
});

/** Rewrites the snapshot in `logDir` as `edit` makes it, framed and checksummed as the endpoint writes it. */
function rewriteSnapshot(logDir: string, edit: (snap: Record<string, unknown>) => unknown): void {
  const file = join(logDir, ACK_SNAPSHOT_FILE);
  const [record] = parseAckLog(readFileSync(file), file).records;
  const edited = edit(JSON.parse(record!.canonical) as Record<string, unknown>);
  writeFileSync(file, formatRecord(logRecordOf(edited)));
}

test('a checksummed snapshot of another format is not used, and says why', async () => {
  const logDir = join(dir, 'log');
  await postedAcks(logDir, 3, 4);
  const file = join(logDir, ACK_SNAPSHOT_FILE);
  const good = readFileSync(file);
  const cases: [string, (s: Record<string, unknown>) => unknown, string][] = [
    ['another type', (s) => ({ ...s, type: 'ack-log-floor' }), 'not a version 1 ack log snapshot'],
    ['another version', (s) => ({ ...s, version: 2 }), 'not a version 1 ack log snapshot'],
    ['no heads', (s) => ({ ...s, heads: {} }), 'not a version 1 ack log snapshot'],
    [
      'an offset that is no integer',
      (s) => ({ ...s, at: { ...(s['at'] as object), bytes: '12' } }),
      'not a version 1 ack log snapshot',
    ],
    [
      'a segment that is none',
      (s) => ({ ...s, at: { ...(s['at'] as object), segment: -1 } }),
      'at.segment is not a segment index',
    ],
  ];
  for (const [what, edit, problem] of cases) {
    writeFileSync(file, good);
    rewriteSnapshot(logDir, edit);
    assert.equal(readAckSnapshot(logDir), { snapshot: null, problem: `${file}: ${problem}` }, what);
    const again = await service(logDir, 1000);
    assert.is(again.startup.fullReplayBecause, `${file}: ${problem}`, what);
    assert.is(again.startup.replayed, 4, what);
    assert.is(again.head('a')?.seq, 4, what);
    await again.close();
  }
  // A checksummed body that is no JSON: the parser's words, after the file's name.
  const body = '{"type":';
  writeFileSync(file, formatRecord({ digest: sha256Digest(body), canonical: body }));
  const { snapshot, problem } = readAckSnapshot(logDir);
  assert.is(snapshot, null);
  assert.match(problem ?? '', new RegExp(`^${file}: .*JSON`));
  // A segment absent from older snapshots counts as segment 0 (acks.log).
  writeFileSync(file, good);
  rewriteSnapshot(logDir, (s) => {
    const { segment: _, ...at } = s['at'] as Record<string, unknown>;
    return { ...s, at };
  });
  assert.is(readAckSnapshot(logDir).snapshot?.at.segment, 0);
  assert.is(readAckSnapshot(join(dir, 'absent')).snapshot, null);
});

test('a snapshot is used only where exactly the record it names ends in the log', async () => {
  const logDir = join(dir, 'log');
  // A snapshot after the very first record: its position starts at byte 0 of the log.
  await postedAcks(logDir, 1, 1);
  const good = readFileSync(join(logDir, ACK_SNAPSHOT_FILE));
  const fromFirst = await service(logDir, 1000);
  assert.is(fromFirst.startup.fullReplayBecause, undefined);
  assert.equal([fromFirst.startup.snapshotHeads, fromFirst.startup.replayed], [1, 0]);
  await fromFirst.close();

  const at = (s: Record<string, unknown>) =>
    s['at'] as { bytes: number; lastDigest: string | null };
  writeFileSync(join(logDir, ACK_SNAPSHOT_FILE), good);
  rewriteSnapshot(logDir, (s) => ({ ...s, at: { ...at(s), bytes: 0 } }));
  const emptyNamed = await service(logDir, 1000);
  assert.match(emptyNamed.startup.fullReplayBecause ?? '', /an empty prefix with a last digest/);
  assert.is(emptyNamed.startup.replayed, 1);
  await emptyNamed.close();

  writeFileSync(join(logDir, ACK_SNAPSHOT_FILE), good);
  rewriteSnapshot(logDir, (s) => ({ ...s, at: { ...at(s), bytes: at(s).bytes - 5 } }));
  const midRecord = await service(logDir, 1000);
  assert.match(midRecord.startup.fullReplayBecause ?? '', /no complete record ends at byte \d+/);
  assert.is(midRecord.head('a')?.seq, 1);
  await midRecord.close();
});

test('start-up from a snapshot keeps held runs: an adopted head after it, and the back-fill that reaches them', async () => {
  const logDir = join(dir, 'log');
  const published = join(dir, 'acks', 'hosts', 'a.json');
  const chain = new AckChain(hosts[0]!);
  const a = Array.from({ length: 6 }, () => chain.next());
  // The endpoint holds a's seq 1..3, with a snapshot after each append.
  const first = await service(logDir, 1);
  for (const ack of a.slice(0, 3)) await post(first, ack, 201);
  await first.close();
  // Its log was behind: a's seq 6 is published (taken by an endpoint whose log was lost). The next
  // start adopts it over a gap, keeping seq 1..3 as a run held below; no snapshot is written after it.
  writeFileSync(published, canonicalString(a[5]!));
  const adopting = await service(logDir, 1000);
  assert.equal(adopting.head('a'), { seq: 6, digest: ackDigest(a[5]!), missingBelow: 6 });
  await adopting.close();

  // From the snapshot at seq 3, the adoption record after it is applied as it was, not a reason to replay.
  const fromSnapshot = await service(logDir, 1);
  assert.is(fromSnapshot.startup.fullReplayBecause, undefined);
  assert.equal([fromSnapshot.startup.snapshotHeads, fromSnapshot.startup.replayed], [1, 1]);
  assert.equal(fromSnapshot.head('a'), { seq: 6, digest: ackDigest(a[5]!), missingBelow: 6 });
  await post(fromSnapshot, a[4]!, 201); // back-fill seq 5; a snapshot now holds the run below
  await fromSnapshot.close();

  // From that snapshot: back-filling seq 4 reaches the held run, and the history is whole again.
  const whole = await service(logDir, 1000);
  assert.is(whole.startup.replayed, 0);
  assert.equal(whole.head('a'), { seq: 6, digest: ackDigest(a[5]!), missingBelow: 5 });
  await post(whole, a[3]!, 201);
  assert.equal(whole.head('a'), { seq: 6, digest: ackDigest(a[5]!) });
  await post(whole, a[2]!, 409); // held already: nothing is missing below
  await whole.close();
});

test('records after the snapshot that this endpoint could not have written: the whole log is replayed', async () => {
  const logDir = join(dir, 'log');
  const chain = await postedAcks(logDir, 1, 3);
  // An older record again after the snapshot (as in a log merged from two endpoints' logs).
  const logFile = join(logDir, ACK_LOG_FILE);
  const [, second] = parseAckLog(readFileSync(logFile)).records;
  appendFileSync(logFile, formatRecord(second!));
  const again = await service(logDir, 1000);
  assert.is(
    again.startup.fullReplayBecause,
    'the records after the snapshot do not follow from it',
  );
  assert.is(again.startup.replayed, 4);
  assert.is(again.head('a')?.seq, 3);
  await post(again, chain.next(), 201);
  await again.close();
});

test.run();
