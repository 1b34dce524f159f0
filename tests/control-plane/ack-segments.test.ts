// The ack log in segments: the log rolls to a new segment past segmentBytes without losing an ack
// under concurrent appends, a restart reads the snapshot's segment and the ones after it only, a crash
// or failure at any step of a roll loses nothing acknowledged and leaves one current segment, archived
// segments leave history verifiable (archive + live: from seq 1; live only: from the floor), and every
// reader (read-side history, verify's audit, cp merge) reads every segment.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import {
  AckService,
  loadReleaseView,
  mergeAckLogFiles,
  archiveAckSegments,
  type ClientIdentity,
} from '../../control-plane/index.ts';
import {
  AckLog,
  ACK_SNAPSHOT_FILE,
  readAckSnapshot,
  writeAckSnapshot,
} from '../../control-plane/ack-log.ts';
import { ackTrustOfView } from '../../control-plane/ack-service.ts';
import {
  AckLogCorrupt,
  formatRecord,
  ackFloorName,
  listAckFloors,
  listAckLogSegments,
  parseAckLog,
  readAckFloor,
  readAckLogRecords,
  ackSegmentName,
} from '../../protocol/ack-log.ts';
import { sha256Digest } from '../../protocol/canonical.ts';
import { auditAckLogs, collectAckLog, AckCollector } from '../../read-side/acks.ts';
import type { SignedAck } from '../../protocol/acks.ts';
import {
  fixtureHosts,
  fixtureKeys,
  writeTree,
  tempDir,
  removeDir,
  AckChain,
  logRecordOf,
} from './tree-fixture.ts';

const test = suite('control-plane ack log segments');
const keys = fixtureKeys();
const hosts = fixtureHosts({ a: { wave: 0 }, b: { wave: 0 }, c: { wave: 1 }, d: { wave: 1 } });
/** A signed ack record is about 1 KB: a few acks per segment, so a run of acks rolls many times. */
const SEGMENT_BYTES = 4096;
let dir: string;
let logDir: string;

const agent = (cn: string): ClientIdentity => ({ cn, ou: 'agent', serial: '1001' });
const body = (x: unknown) => Buffer.from(JSON.stringify(x));

async function service(opts: { snapshotEvery?: number; events?: Record<string, unknown>[] } = {}) {
  const svc = await AckService.open({
    logDir,
    publishRoot: dir,
    rateLimit: false,
    debounceMs: 5,
    snapshotEvery: opts.snapshotEvery ?? 1_000_000,
    segmentBytes: SEGMENT_BYTES,
    ...(opts.events ? { log: (e: Record<string, unknown>) => opts.events!.push(e) } : {}),
  });
  svc.setView(loadReleaseView(dir));
  return svc;
}

function heads(svc: AckService): Record<string, unknown> {
  return Object.fromEntries(hosts.map((h) => [h.name, svc.head(h.name) ?? null]));
}

/**
 * Posts `perHost` acks of every host as one stream of concurrent posts: a round of one ack per host,
 * then a turn of the event loop so the flush in progress (group commit) overlaps the next rounds.
 * Resolves when every answer is in (and the log is idle again); returns the acks' digests.
 */
async function postConcurrently(
  svc: AckService,
  chains: Map<string, AckChain>,
  perHost: number,
): Promise<string[]> {
  const pending: Promise<{ status: number; body: Record<string, unknown> }>[] = [];
  for (let i = 0; i < perHost; i++) {
    for (const c of chains.values()) {
      const a: SignedAck = c.next();
      pending.push(svc.submit(body(a), agent(a.signed.host)));
    }
    await new Promise((r) => setImmediate(r));
  }
  const answers = await Promise.all(pending);
  await svc.logSettled(); // a roll follows the answers of its flush
  answers.forEach((r, i) => assert.is(r.status, 201, `ack ${i}: ${JSON.stringify(r.body)}`));
  return answers.map((r) => r.body.digest as string);
}

const newChains = () => new Map(hosts.map((h) => [h.name, new AckChain(h)]));

test.before.each(() => {
  dir = tempDir('ack-segments');
  logDir = join(dir, 'log');
  writeTree(dir, { keys, hosts, version: 1 });
});
test.after.each(() => removeDir(dir));

test('roll-over under concurrent appends loses nothing; every sealed segment ends at a record', async () => {
  const svc = await service();
  const chains = newChains();
  // One stream of concurrent posts, kept up until the log rolled a few times mid-stream (how many
  // flushes a stream takes depends on the disk; the bound only stops a log that never rolls).
  const pending: Promise<{ status: number; body: Record<string, unknown> }>[] = [];
  for (let round = 0; round < 2000 && svc.logStats.rolls < 4; round++) {
    for (const c of chains.values()) {
      const a: SignedAck = c.next();
      pending.push(svc.submit(body(a), agent(a.signed.host)));
    }
    await new Promise((r) => setImmediate(r));
  }
  const answers = await Promise.all(pending);
  answers.forEach((r, i) => assert.is(r.status, 201, `ack ${i}: ${JSON.stringify(r.body)}`));
  const digests = answers.map((r) => r.body.digest as string);
  assert.ok(svc.logStats.rolls >= 4, `rolled ${svc.logStats.rolls} times`);
  assert.ok(svc.logStats.syncs < digests.length, 'group commit batched appends');
  await svc.close();
  const segments = listAckLogSegments(logDir);
  assert.equal(
    segments.map((s) => s.index),
    segments.map((_, i) => i),
    'segments 0..n with no hole',
  );
  assert.is(segments[0]!.file, join(logDir, 'acks.log'), 'segment 0 is the legacy file name');
  for (const s of segments.slice(0, -1)) {
    const parsed = parseAckLog(readFileSync(s.file), s.file);
    assert.is(parsed.tornBytes, 0, `${s.file} is whole records`);
    assert.ok(statSync(s.file).size >= SEGMENT_BYTES, `${s.file} was rolled only once full`);
  }
  const stored = readAckLogRecords(logDir).map((r) => r.digest);
  assert.is(stored.length, digests.length, 'each ack once');
  assert.equal(new Set(stored), new Set(digests), 'every acknowledged ack is in some segment');
});

test('a restart reads the snapshot written at the roll and the segments after it only, and gets the full-replay state', async () => {
  const svc = await service();
  const chains = newChains();
  const digests = await postConcurrently(svc, chains, 25);
  const state = heads(svc);
  await svc.close();
  const { snapshot } = readAckSnapshot(logDir);
  const segments = listAckLogSegments(logDir);
  assert.ok(snapshot, 'a roll wrote a snapshot');
  assert.ok(snapshot!.at.segment > 0, 'the snapshot names a later segment');

  const again = await service();
  assert.is(again.startup.fullReplayBecause, undefined);
  assert.is(again.startup.segmentsRead, segments.length - snapshot!.at.segment);
  assert.ok(again.startup.segmentsRead < segments.length, 'older segments were not read');
  const after = readAckLogRecords(logDir).length - countBefore(snapshot!.at);
  assert.is(again.startup.replayed, after, 'exactly the records after the snapshot were replayed');
  assert.ok(again.startup.replayed < digests.length);
  assert.equal(heads(again), state);
  // The state goes on: the next ack of each host chains on.
  await postConcurrently(again, chains, 1);
  await again.close();

  rmSync(join(logDir, ACK_SNAPSHOT_FILE));
  const full = await service();
  assert.is(full.startup.segmentsRead, listAckLogSegments(logDir).length);
  assert.is(full.startup.replayed, digests.length + hosts.length);
  await full.close();
});

test('an endpoint closed while its last flush rolls the log still writes the snapshot of that roll', async () => {
  const svc = await service();
  const chains = newChains();
  const current = () => listAckLogSegments(logDir).at(-1)!;
  // One ack at a time, until the one whose flush fills the segment: its answer comes before the roll
  // that flush then makes, and close() is called at once, while the roll is under way.
  for (let i = 0; ; i++) {
    assert.ok(i < 100, 'the segment fills within 100 acks');
    const chain = chains.get(hosts[i % hosts.length]!.name)!;
    const a: SignedAck = chain.next();
    assert.is((await svc.submit(body(a), agent(a.signed.host))).status, 201);
    if (statSync(current().file).size >= SEGMENT_BYTES) break;
  }
  const state = heads(svc);
  await svc.close();
  const last = current().index;
  assert.ok(last > 0, 'the log rolled');
  const { snapshot } = readAckSnapshot(logDir);
  assert.is(snapshot?.at.segment, last, 'the snapshot covers the roll close overtook');
  // What the snapshot says is what a full replay gives.
  const again = await service();
  assert.is(again.startup.fullReplayBecause, undefined);
  assert.is(again.startup.segmentsRead, 1, 'only the new, empty segment was read');
  assert.equal(heads(again), state);
  await again.close();
});

/** Records of the log before a position (the segments before it, and its segment up to its offset). */
function countBefore(at: { segment: number; bytes: number }): number {
  let n = 0;
  for (const s of listAckLogSegments(logDir)) {
    if (s.index > at.segment) break;
    const bytes = readFileSync(s.file);
    n += parseAckLog(s.index === at.segment ? bytes.subarray(0, at.bytes) : bytes).records.length;
  }
  return n;
}

test('a snapshot written before segments (no segment field) is still used for acks.log', async () => {
  const svc = await service({ snapshotEvery: 4 });
  const chains = new Map([['a', new AckChain(hosts[0]!)]]);
  await postConcurrently(svc, chains, 2); // two acks, well under one segment
  await postConcurrently(svc, chains, 2);
  await svc.close();
  const { snapshot } = readAckSnapshot(logDir);
  assert.is(snapshot!.at.segment, 0);
  const { segment: _segment, ...legacyAt } = snapshot!.at;
  const legacy = JSON.stringify({ ...snapshot, at: legacyAt });
  writeFileSync(
    join(logDir, ACK_SNAPSHOT_FILE),
    formatRecord({ digest: sha256Digest(legacy), canonical: legacy }),
  );
  const again = await service();
  assert.is(again.startup.fullReplayBecause, undefined);
  assert.is(again.startup.replayed, 0);
  assert.is(again.head('a')!.seq, 4);
  await again.close();
});

test('a crash after the next segment was created (empty) leaves it current; nothing is lost', async () => {
  const svc = await service();
  const chains = newChains();
  const first = await postConcurrently(svc, chains, 2);
  await svc.close();
  const before = listAckLogSegments(logDir);
  const next = join(logDir, ackSegmentName(before[before.length - 1]!.index + 1));
  writeFileSync(next, ''); // the state right after the roll's create + fsync
  const again = await service();
  const more = await postConcurrently(again, chains, 1);
  await again.close();
  assert.ok(statSync(next).size > 0, 'appends went to the new segment');
  assert.equal(
    new Set(readAckLogRecords(logDir).map((r) => r.digest)),
    new Set([...first, ...more]),
  );
});

test('a failed roll keeps appending to the current segment and rolls once it can', async () => {
  const events: Record<string, unknown>[] = [];
  const svc = await service({ events });
  const chains = newChains();
  // The next segment's name is taken by a directory: creating the segment fails.
  const blocker = join(logDir, ackSegmentName(1));
  mkdirSync(blocker);
  const digests = await postConcurrently(svc, chains, 6);
  assert.ok(events.some((e) => e.event === 'ack-log-roll-failed'));
  assert.is(svc.logStats.rolls, 0);
  assert.ok(statSync(join(logDir, 'acks.log')).size > SEGMENT_BYTES);
  rmSync(blocker, { recursive: true });
  digests.push(...(await postConcurrently(svc, chains, 1)));
  assert.is(svc.logStats.rolls, 1, 'rolled at the next flush');
  digests.push(...(await postConcurrently(svc, chains, 1)));
  await svc.close();
  assert.equal(new Set(readAckLogRecords(logDir).map((r) => r.digest)), new Set(digests));
  assert.ok(statSync(join(logDir, ackSegmentName(1))).size > 0);
});

test('a torn tail before an empty newer segment (failed roll, then a crash mid-write) is cut; before a written one it is corruption', async () => {
  const rec = (n: number) => formatRecord(logRecordOf({ n }));
  mkdirSync(logDir);
  const torn = Buffer.concat([rec(1), rec(2), rec(3).subarray(0, 20)]);
  writeFileSync(join(logDir, 'acks.log'), torn);
  writeFileSync(join(logDir, ackSegmentName(1)), '');
  const opened = await AckLog.open(logDir);
  assert.is(opened.records.length, 2);
  assert.is(opened.cutBytes, 20);
  await opened.log.close();
  assert.is(statSync(join(logDir, 'acks.log')).size, torn.length - 20);

  const refuses = async (why: string) => {
    try {
      await AckLog.open(logDir);
      assert.unreachable(why);
    } catch (e) {
      assert.instance(e, AckLogCorrupt, why);
      assert.match((e as Error).message, 'acks.log: corrupt record at byte');
      assert.match((e as Error).message, 'a sealed segment ends in a partial record');
    }
  };
  writeFileSync(join(logDir, 'acks.log'), torn);
  writeFileSync(join(logDir, ackSegmentName(1)), rec(4));
  await refuses('a torn record followed by a written segment must refuse to open');
  // Any written segment after it is enough, even when the current one is still empty.
  writeFileSync(join(logDir, ackSegmentName(2)), '');
  await refuses('a written segment between the torn one and the empty current one');

  // Only the segments after the torn one count: written ones before it do not make it corrupt.
  rmSync(logDir, { recursive: true });
  mkdirSync(logDir);
  writeFileSync(join(logDir, 'acks.log'), Buffer.concat([rec(1), rec(2)]));
  writeFileSync(join(logDir, ackSegmentName(1)), Buffer.concat([rec(3), rec(4).subarray(0, 9)]));
  writeFileSync(join(logDir, ackSegmentName(2)), '');
  const cut = await AckLog.open(logDir);
  assert.equal([cut.records.length, cut.cutBytes], [3, 9]);
  await cut.log.close();
});

test('opened from a snapshot position: only the records after it, every later segment whole, the position moved on', async () => {
  const rec = (n: number) => logRecordOf({ n });
  const line = (n: number) => formatRecord(rec(n));
  mkdirSync(logDir);
  writeFileSync(join(logDir, ackSegmentName(1)), Buffer.concat([line(1), line(2), line(3)]));
  writeFileSync(join(logDir, ackSegmentName(2)), Buffer.concat([line(4), line(5)]));
  writeFileSync(join(logDir, ackSegmentName(3)), line(6));
  const at = { segment: 1, bytes: line(1).length, lastDigest: rec(1).digest };
  const opened = await AckLog.open(logDir, { from: at });
  assert.ok(opened.fromUsed);
  assert.is(opened.fromRejected, undefined);
  assert.is(opened.segmentsRead, 3);
  assert.equal(
    opened.records.map((r) => r.canonical),
    [2, 3, 4, 5, 6].map((n) => rec(n).canonical),
  );
  // What a snapshot taken now would name: the end of the last record read, not the position given.
  assert.equal(opened.log.position, {
    segment: 3,
    bytes: line(6).length,
    lastDigest: rec(6).digest,
  });
  await opened.log.close();

  // A corrupt record after the position is reported where it is: the segment, after that byte.
  const bad = Buffer.concat([line(1), line(2)]);
  bad[line(1).length + 74] = bad[line(1).length + 74]! ^ 1; // inside record 2's body
  writeFileSync(join(logDir, ackSegmentName(1)), Buffer.concat([bad, line(3)]));
  try {
    await AckLog.open(logDir, { from: at });
    assert.unreachable('a corrupt record after the snapshot position must refuse to open');
  } catch (e) {
    assert.instance(e, AckLogCorrupt);
    assert.match((e as Error).message, `${ackSegmentName(1)} (after byte ${line(1).length})`);
  }

  // A position that does not fit: the whole log is read, and the reason is kept.
  writeFileSync(join(logDir, ackSegmentName(1)), Buffer.concat([line(1), line(2), line(3)]));
  const whole = await AckLog.open(logDir, { from: { ...at, lastDigest: rec(2).digest } });
  assert.not.ok(whole.fromUsed);
  assert.match(whole.fromRejected ?? '', /the snapshot names/);
  assert.is(whole.records.length, 6);
  assert.equal(whole.log.position.lastDigest, rec(6).digest);
  // A closed log takes no more appends, and says so.
  await whole.log.close();
  try {
    await whole.log.append(rec(7));
    assert.unreachable('an append after close must be refused');
  } catch (e) {
    assert.match((e as Error).message, `${ackSegmentName(3)}: log is closed`);
  }
});

test('SIGKILL while appending and rolling: every acknowledged record survives, one current segment', async () => {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(import.meta.dirname, 'ack-segments-child.ts'), logDir, '2048'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const acknowledged = await new Promise<string[]>((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      // Enough for several rolls (about 9 records per segment); then kill mid-stream.
      if (out.split('\n').length > 400 && child.kill('SIGKILL')) {
        /* wait for exit */
      }
    });
    child.on('exit', () => resolve(out.split('\n').filter((l) => l.length === 71)));
    child.on('error', reject);
  });
  assert.ok(acknowledged.length >= 400, `child acknowledged ${acknowledged.length}: ${err}`);
  const { log, records } = await AckLog.open(logDir, { segmentBytes: 2048 });
  await log.close();
  const stored = new Set(records.map((r) => r.digest));
  for (const d of acknowledged) assert.ok(stored.has(d), `acknowledged ${d} is in the log`);
  const segments = listAckLogSegments(logDir);
  assert.ok(segments.length > 10, `${segments.length} segments`);
  for (const s of segments.slice(0, -1))
    assert.is(parseAckLog(readFileSync(s.file)).tornBytes, 0, `${s.file}: sealed at a record`);
});

test('archived segments: archive + live verify from seq 1, live alone from the floor, start-up unaffected', async () => {
  const svc = await service();
  const chains = newChains();
  // One ack per host per round, each round answered before the next: about a segment per round, and
  // the snapshot of the last roll is written once the log is idle.
  const digests: string[] = [];
  for (let round = 0; round < 25; round++)
    digests.push(...(await postConcurrently(svc, chains, 1)));
  await svc.close();
  const trust = ackTrustOfView(loadReleaseView(dir));
  const { snapshot } = readAckSnapshot(logDir);
  // Archive all but the last few segments: the live ones still hold acks of every host.
  const before = snapshot!.at.segment - 2;
  assert.ok(before >= 2, `${snapshot!.at.segment} segments`);
  const archive = join(dir, 'archive');

  assert.throws(
    () => archiveAckSegments(logDir, snapshot!.at.segment + 1, archive),
    /needs a snapshot|current segment/,
    'history the snapshot does not cover stays',
  );
  // In two steps: the second starts at the floor the first left, and moves that floor along.
  const first = archiveAckSegments(logDir, before - 1, archive);
  assert.is(first.moved.length, before - 1);
  const r = archiveAckSegments(logDir, before, archive);
  assert.equal(r.moved.map((f) => basename(f)).sort(), [
    ackFloorName(before - 1),
    ackSegmentName(before - 1),
  ]);
  assert.is(listAckLogSegments(logDir)[0]!.index, before);
  assert.equal(
    listAckFloors(logDir).map((f) => f.index),
    [before],
  );
  assert.equal(readAckFloor(r.floor).heads.length, hosts.length);
  // Run again (as after a crash once the files moved): nothing moves, the floor stays as it was.
  const floorBytes = readFileSync(r.floor);
  assert.equal(archiveAckSegments(logDir, before, archive).moved, []);
  assert.equal(readFileSync(r.floor), floorBytes);

  const whole = auditAckLogs([archive, logDir], trust);
  assert.ok(whole.ok, JSON.stringify(whole.hosts));
  assert.is(
    whole.hosts.reduce((n, h) => n + h.acks, 0),
    digests.length,
  );
  for (const h of whole.hosts) assert.is(h.startsAt, undefined, `${h.host} complete from seq 1`);

  const live = auditAckLogs([logDir], trust);
  assert.ok(live.ok, JSON.stringify(live.hosts));
  assert.is(live.hosts.length, hosts.length);
  assert.equal(live.floors, [r.floor]);
  for (const h of live.hosts) {
    assert.ok(h.startsAt && h.startsAt.seq > 1, `${h.host} starts at the floor`);
    assert.equal(h.gaps, []);
  }

  // Without the floor, the live segments alone are history with gaps: reported, not hidden.
  rmSync(r.floor);
  const bare = auditAckLogs([logDir], trust);
  assert.not.ok(bare.ok);
  assert.ok(bare.hosts.every((h) => h.gaps.length === 1 && h.gaps[0]!.from === 1));

  // The endpoint starts from its snapshot, which covers what is left, and its chains go on.
  const again = await service();
  assert.is(again.startup.fullReplayBecause, undefined);
  assert.is(again.head('a')!.seq, 25);
  await postConcurrently(again, chains, 1);
  await again.close();
});

test('each floor carries the heads of hosts silent since the floor before it', () => {
  // Records as archiving reads them (host and seq of the signed ack; signatures are not its concern).
  const line = (host: string, seq: number, copy = 0) =>
    logRecordOf({ signed: { host, seq, copy } });
  mkdirSync(logDir);
  const seg = (index: number, ...recs: ReturnType<typeof line>[]) =>
    writeFileSync(join(logDir, ackSegmentName(index)), Buffer.concat(recs.map(formatRecord)));
  seg(1, line('a', 1), line('b', 1));
  // Two records of one seq (a log merged from two endpoints): the later one is the head, as replay.
  seg(2, line('a', 2), line('a', 2, 1));
  seg(3, line('a', 3));
  writeAckSnapshot(logDir, {
    type: 'ack-log-snapshot',
    version: 1,
    at: { segment: 3, bytes: 0, lastDigest: null },
    heads: [],
  });
  const archive = join(dir, 'archive');
  const heads = (file: string) =>
    readAckFloor(file).heads.map(
      // host:seq:which copy of that seq the digest is
      (h) => `${h.host}:${h.seq}:${[0, 1].find((c) => h.digest === line(h.host, h.seq, c).digest)}`,
    );
  assert.equal(heads(archiveAckSegments(logDir, 2, archive).floor), ['a:1:0', 'b:1:0']);
  // Host b posts nothing in segment 2: its head comes from floor 2, which moves with segment 2.
  const second = archiveAckSegments(logDir, 3, archive);
  assert.equal(heads(second.floor).sort(), ['a:2:1', 'b:1:0']);
  assert.equal(
    listAckFloors(archive).map((f) => f.index),
    [2],
  );
});

test('readers read every segment: a segment file or the directory, a window across segments, cp merge', async () => {
  const svc = await service();
  const digests = await postConcurrently(svc, newChains(), 10);
  await svc.close();
  const trust = ackTrustOfView(loadReleaseView(dir));
  const segments = listAckLogSegments(logDir).length;
  for (const path of [logDir, join(logDir, 'acks.log'), join(logDir, ackSegmentName(2))]) {
    const c = new AckCollector(trust);
    const read = collectAckLog(path, c);
    assert.is(read.records, digests.length, path);
    assert.is(read.segments, segments, path);
    assert.is(c.result().acks.length, digests.length, path);
  }
  // The window covers the newest bytes across segments: about two segments' worth.
  const c = new AckCollector(trust);
  const windowed = collectAckLog(logDir, c, { windowBytes: 2 * SEGMENT_BYTES });
  assert.ok(windowed.records > 0 && windowed.records < digests.length);
  assert.ok(windowed.skippedBytes > 0);
  const newest = readAckLogRecords(logDir)
    .slice(-windowed.records)
    .map((r) => r.digest);
  assert.equal(c.result().acks.length, newest.length, 'the window is the newest records, in order');

  const merged = mergeAckLogFiles([join(logDir, 'acks.log')], join(dir, 'merged'));
  assert.is(merged.records.length, digests.length);
  assert.ok(merged.chains.every((h) => h.complete));
  assert.throws(() => mergeAckLogFiles([logDir], logDir), /segmented ack log/);
});

test('segment and floor names: numbered past 999,999 in order; a name the log would not write is not a segment', () => {
  const d = tempDir('ack-segment-names');
  const names = [
    'acks.log',
    ackSegmentName(2),
    ackSegmentName(999_999),
    ackSegmentName(1_000_000),
    ackSegmentName(12_345_678),
  ];
  assert.equal(names.slice(1), [
    'acks-000002.log',
    'acks-999999.log',
    'acks-1000000.log',
    'acks-12345678.log',
  ]);
  // Not written by the log: segment 0 by number, a padded seventh digit, too many digits, a sign.
  const strays = [
    'acks-000000.log',
    'acks-0000002.log',
    `acks-${'9'.repeat(16)}.log`,
    'acks-+00002.log',
  ];
  for (const n of [...names, ...strays]) writeFileSync(join(d, n), '');
  for (const n of ['acks-000003.floor', 'acks-1000000.floor', 'acks-0000003.floor'])
    writeFileSync(join(d, n), '{}');
  assert.equal(
    listAckLogSegments(d).map((s) => s.index),
    [0, 2, 999_999, 1_000_000, 12_345_678],
  );
  assert.equal(
    listAckFloors(d).map((s) => s.index),
    [3, 1_000_000],
  );
});

test.run();
