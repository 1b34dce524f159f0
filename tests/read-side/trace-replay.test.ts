// A warm `trace` reads the log's indexed prefix without building its acks and resumes its replay from
// the checkpoint kept with the index (read-side/trace-replay.ts). Checked here: the resumed trace is
// the full replay's, for held, started and soaked hosts and a channel; a record appended after the
// checkpoint is replayed from it, one signed before it makes the whole history replayed; another
// release, subject, step or period is not served from it, nor a trace up to an earlier instant from a
// checkpoint after it, nor a history with a late ack signed at a checkpoint's very instant from that
// one; a tampered prefix is read in full, the tampered ack refused; a checkpoint is not used once the
// segments before its own are not the ones it names; an ack found twice (a record appended again in a
// later segment, a replica's index holding the main log's newer records) is taken once; a latest-ack
// file holding another host's indexed ack is still WrongHost.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  appendFileSync,
  copyFileSync,
  mkdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ackSegmentName, listAckLogSegments } from '../../protocol/ack-log.ts';
import { AckCache, LogPrefixMemo } from '../../read-side/acks.ts';
import {
  loadAckHistory,
  traceReport,
  traceScope,
  type TraceSubject,
} from '../../read-side/trace.ts';
import { CHECKPOINT_MARGIN_MS } from '../../read-side/trace-replay.ts';
import { loadVerifiedRelease } from '../../read-side/release.ts';
import type { VerifiedRelease } from '../../read-side/load.ts';
import {
  MIN,
  NOW,
  ROOT,
  chainedRollout,
  cleanupTempDirs,
  cutLogInto,
  logRecordCount,
  postAcks,
  restartChain,
  tamperLogRecord,
  waiting,
  type Fixture,
} from './fixture.ts';

test.after.each(cleanupTempDirs);

const rollout = (): Fixture =>
  chainedRollout('trace-replay', { first: 20, ch0: 12, ch1: 5, polling: 5 });

/** The memo of the next run: what `earlier` kept, read through its indexes. */
function next(earlier?: LogPrefixMemo): LogPrefixMemo {
  const memo = new LogPrefixMemo(earlier?.used() ?? []);
  memo.useIndexes(earlier?.usedIndexes() ?? []);
  return memo;
}

interface Run {
  subject: TraceSubject;
  stepSeconds?: number;
  from?: number;
  /** The instant traced up to (default NOW). */
  now?: number;
  /** The log to read (default the fixture's; a segment stands for its directory). */
  log?: string;
}

/** A trace as `nixfleet trace` makes it with a cache: deferred indexed acks, checkpoints kept in `memo`. */
function cachedTrace(fx: Fixture, release: VerifiedRelease, memo: LogPrefixMemo, run: Run) {
  const { log, ...r } = run;
  const scope = traceScope(release, r.subject);
  const history = loadAckHistory(
    ...[fx.tree, release, log ?? fx.logFile, new AckCache(), [], scope.hosts, memo],
    ...[undefined, true],
  );
  return traceReport(release, history, r.subject, { now: NOW, scope, replays: memo, ...r });
}

/** The memo after a cold run (which builds the index) and one from the index (which keeps a checkpoint). */
function warmedUp(fx: Fixture, release: VerifiedRelease, r: Run): LogPrefixMemo {
  const cold = next();
  cachedTrace(fx, release, cold, r);
  const first = next(cold);
  cachedTrace(fx, release, first, r);
  assert.ok(
    first.usedIndexes().some((i) => i.replays?.length),
    'a checkpoint kept',
  );
  return first;
}

/** A host of ch-1's wave 0: started 17 minutes ago, soaked 11 minutes ago, its last ack 5 minutes ago. */
const startedHost = (fx: Fixture): string => fx.wave('ch-1', 0)[0]!;

/**
 * A rollout (cut into `segments` when more than one), its verified release, and the memo of a warmed-up
 * trace of `pick`'s host (default: a host of ch-1's wave 1, held by the channel edge).
 */
async function warmRollout(opts: { segments?: number; pick?: (fx: Fixture) => string } = {}) {
  const fx = rollout();
  if ((opts.segments ?? 1) > 1) segment(fx, opts.segments!);
  const release = await loadVerifiedRelease(fx.tree, ROOT, { now: NOW });
  const host = opts.pick?.(fx) ?? fx.wave('ch-1', 1)[0]!;
  const subject = { host };
  return { fx, release, host, subject, first: warmedUp(fx, release, { subject }) };
}

/** What a trace's replay made of the history: the report without the history's counts (which any new record changes). */
const timeline = (t: ReturnType<typeof fullTrace>): string =>
  JSON.stringify({ ...t, history: null });

/** The same trace replaying every ack of a full read (no cache of any kind). */
function fullTrace(fx: Fixture, release: VerifiedRelease, run: Run) {
  const { log, ...r } = run;
  const scope = traceScope(release, r.subject);
  const history = loadAckHistory(fx.tree, release, log ?? fx.logFile, undefined, [], scope.hosts);
  return traceReport(release, history, r.subject, { now: NOW, scope, ...r });
}

test("a warm trace resumes from the checkpoint kept with the index: the full replay's trace, for held, started and soaked hosts and a channel", async () => {
  const fx = rollout();
  const release = await loadVerifiedRelease(fx.tree, ROOT, { now: NOW });
  const subjects: TraceSubject[] = [
    { host: fx.wave('ch-1', 1)[0]! },
    { host: fx.wave('ch-1', 0)[0]! },
    { host: fx.wave('ch-0', 0)[0]! },
    { channel: 'ch-1' },
  ];
  for (const subject of subjects) {
    const label = JSON.stringify(subject);
    const full = fullTrace(fx, release, { subject });
    const cold = next();
    assert.equal(cachedTrace(fx, release, cold, { subject }), full, `${label} cold`);
    const first = next(cold);
    assert.equal(cachedTrace(fx, release, first, { subject }), full, `${label} from the index`);
    assert.is(first.indexHits, 1);
    // Checkpoints at the last step at or before the scope's newest ack (NOW - 5 min in ch-1, NOW - 12
    // min in ch-0) and a margin before it.
    const kept = (first.usedIndexes()[0]!.replays ?? []).map((r) => r.checkpoint.at);
    assert.equal(kept, [kept[0], kept[0]! - CHECKPOINT_MARGIN_MS], label);
    assert.ok([NOW - 5 * MIN, NOW - 12 * MIN].includes(kept[0]!), label);
    const warm = next(first);
    assert.equal(cachedTrace(fx, release, warm, { subject }), full, `${label} resumed`);
    assert.is(warm.resumedReplays, 1, `${label}: resumed`);
    assert.not.ok(warm.indexesChanged, `${label}: nothing new to write`);
  }
});

test('a record appended after the checkpoint is replayed from it; one signed before it makes the whole history replayed', async () => {
  const { fx, release, host: held, subject, first } = await warmRollout();
  // The host's chain once more (the same bytes: repeated records) and a new ack: it starts.
  const polled = waiting(NOW - 34 * MIN, NOW - 5 * MIN);
  restartChain(fx, held);
  postAcks(fx, held, [...polled, { kind: 'started', at: NOW - 2 * MIN }]);
  const after = next(first);
  const started = cachedTrace(fx, release, after, { subject });
  assert.is(after.resumedReplays, 1, 'resumed: the new record is after the checkpoint');
  assert.equal(started, fullTrace(fx, release, { subject }));
  assert.ok(started.entries.some((e) => e.host === held && e.phase !== 'pending'));

  // The checkpoints cover the indexed records only (the new one is after the prefix read).
  assert.equal(
    (after.usedIndexes()[0]!.replays ?? []).map((r) => r.checkpoint.at),
    [NOW - 5 * MIN, NOW - 15 * MIN],
  );
  // An ack signed between the two checkpoints, arriving late: resumed from the earlier one.
  const [a, b] = fx.wave('ch-0', 1);
  postAcks(fx, b!, [{ kind: 'heartbeat', at: NOW - 6 * MIN, healthySince: NOW - 25 * MIN }]);
  const between = next(after);
  assert.equal(cachedTrace(fx, release, between, { subject }), fullTrace(fx, release, { subject }));
  assert.is(between.resumedReplays, 1, 'resumed from the checkpoint a margin before');

  // A late ack of a gating host, signed long before the checkpoints: the whole history is replayed.

  postAcks(fx, a!, [{ kind: 'failed', at: NOW - 30 * MIN, reason: 'late' }]);
  const late = next(between);
  const replayed = cachedTrace(fx, release, late, { subject });
  assert.is(late.resumedReplays, 0, 'not resumed: an ack before the checkpoint');
  assert.equal(replayed, fullTrace(fx, release, { subject }));
  const again = next(late);
  assert.equal(cachedTrace(fx, release, again, { subject }), replayed, 'its own checkpoint');
  assert.is(again.resumedReplays, 1);
});

test('another release, subject, step or period start is not served from a checkpoint', async () => {
  const { fx, release, host: held, subject, first } = await warmRollout();
  const others: [string, Run][] = [
    ['another host', { subject: { host: fx.wave('ch-1', 0)[0]! } }],
    ['another step', { subject, stepSeconds: 30 }],
    ['another start', { subject, from: NOW - 40 * MIN }],
  ];
  for (const [label, r] of others) {
    const memo = next(first);
    assert.equal(cachedTrace(fx, release, memo, r), fullTrace(fx, release, r), label);
    assert.is(memo.resumedReplays, 0, label);
  }
  // A release whose gating channel soaks longer (its plan another document, of another digest): the
  // host is held longer, which a checkpoint of the first release would not say.
  const plans = structuredClone(release.plans);
  for (const w of plans['ch-0']!.waves) w.soakSeconds = 20 * 60;
  const channels = structuredClone(release.index.channels);
  channels['ch-0']!.plan.digest = `sha256:${'1'.repeat(64)}`;
  const other = { ...release, plans, index: { ...release.index, channels } };
  const memo = next(first);
  const longer = cachedTrace(fx, other, memo, { subject });
  assert.is(memo.resumedReplays, 0, 'another release');
  assert.equal(longer, fullTrace(fx, other, { subject }));
  assert.is.not(
    JSON.stringify(longer.hosts),
    JSON.stringify(fullTrace(fx, release, { subject }).hosts),
  );
});

test('a trace up to an earlier instant resumes only from a checkpoint before it, never from a later one', async () => {
  const { fx, release, host, subject, first } = await warmRollout({ pick: startedHost });
  assert.equal(
    (first.usedIndexes()[0]!.replays ?? []).map((r) => r.checkpoint.at),
    [NOW - 5 * MIN, NOW - 15 * MIN],
  );
  // Up to 12 minutes ago (`trace --now`, an operator looking back), before it soaked: the checkpoint 5
  // minutes ago holds what happened after that instant; the one 15 minutes ago is the one to resume from.
  const back = { subject, now: NOW - 12 * MIN };
  const memo = next(first);
  const earlier = cachedTrace(fx, release, memo, back);
  assert.equal(earlier, fullTrace(fx, release, back));
  assert.is(memo.resumedReplays, 1, 'resumed from the checkpoint before the instant');
  const traced = (t: typeof earlier) => t.hosts.find((h) => h.host === host);
  assert.is.not(
    JSON.stringify(traced(earlier)),
    JSON.stringify(traced(fullTrace(fx, release, { subject }))),
    'the host moved on between the two instants',
  );
});

test('a late ack signed at the very instant of a checkpoint is not in it: the replay does not resume from that one (one log file, or a segment of its own)', async () => {
  for (const segments of [1, 3]) {
    const { fx, release, subject, first } = await warmRollout({ segments });
    const full = () => fullTrace(fx, release, { subject });
    const kept = first.usedIndexes().find((i) => i.replays?.length)!;
    assert.equal(
      kept.replays!.map((r) => r.checkpoint.at),
      [NOW - 5 * MIN, NOW - 15 * MIN],
    );
    // A gating host's failure signed at NOW - 5 min arrives after the checkpoint at that instant was
    // kept (in a segment of its own when the log has several): the channel halts from that instant
    // on, which that checkpoint does not know.
    if (segments > 1) writeFileSync(join(dirname(fx.logFile), ackSegmentName(segments)), '');
    const before = full();
    const [, b] = fx.wave('ch-0', 1);
    postAcks(fx, b!, [{ kind: 'failed', at: NOW - 5 * MIN, reason: 'late, at the instant' }]);
    assert.is.not(timeline(full()), timeline(before), 'the failure changes the timeline');
    const late = next(first);
    assert.equal(cachedTrace(fx, release, late, { subject }), full(), `${segments}: read late`);
    assert.is(late.resumedReplays, 1, `${segments}: resumed from the checkpoint 15 minutes ago`);
    // After another subject's trace (which keeps checkpoints of its own), still the full replay's.
    const another = { subject: { host: startedHost(fx) } };
    const other = next(first);
    cachedTrace(fx, release, other, another);
    const indexed = next(other);
    assert.equal(cachedTrace(fx, release, indexed, { subject }), full(), `${segments}: indexed`);
    assert.is(indexed.resumedReplays, 1, `${segments}: resumed`);
  }
});

test('a tampered prefix is read in full and the tampered ack refused, not resumed (one log file, or its first of three segments)', async () => {
  for (const segments of [1, 3]) {
    const {
      fx,
      release,
      host: e,
      subject,
      first,
    } = await warmRollout({ segments, pick: startedHost });
    const line = tamperLogRecord(fx, fx.wave('ch-0', 0)[0]!);
    const memo = next(first);
    const t = cachedTrace(fx, release, memo, { subject });
    assert.equal(
      t.history.rejected.map((r) => r.code),
      ['BadSignature'],
    );
    // The segment file and line (a segmented log's sources also name the segment).
    assert.match(
      t.history.rejected[0]!.source,
      new RegExp(`^${fx.logFile}(\\[acks\\.log\\])?:${line}$`),
    );
    assert.equal([memo.indexHits, memo.resumedReplays], [segments - 1, 0]);
    assert.equal(t, fullTrace(fx, release, { subject }));
  }
});

/** Cuts the fixture's one-file log into `count` segments of about as many records each. */
function segment(fx: Fixture, count: number): void {
  const per = Math.ceil(logRecordCount(fx) / count);
  cutLogInto(
    fx,
    Array.from({ length: count - 1 }, (_, k) => (k + 1) * per),
  );
}

test('a log of several segments: the checkpoint is kept with the current segment and resumed, also after the log grows and rolls; a tampered sealed segment is not resumed', async () => {
  const fx = rollout();
  segment(fx, 4);
  assert.is(listAckLogSegments(fx.logFile).length, 4);
  const release = await loadVerifiedRelease(fx.tree, ROOT, { now: NOW });
  const [held] = fx.wave('ch-1', 1);
  const subject = { host: held! };
  const full = () => fullTrace(fx, release, { subject });
  const cold = next();
  assert.equal(cachedTrace(fx, release, cold, { subject }), full(), 'cold');
  const first = next(cold);
  assert.equal(cachedTrace(fx, release, first, { subject }), full(), 'from the indexes');
  assert.is(first.indexHits, 4);
  const kept = first.usedIndexes().find((i) => i.replays?.length)!;
  assert.ok(kept.file.endsWith(ackSegmentName(3)), 'kept with the current segment');
  assert.is(kept.replays![0]!.before!.length, 3, 'naming the three segments before it');
  const warm = next(first);
  assert.equal(cachedTrace(fx, release, warm, { subject }), full(), 'resumed');
  assert.is(warm.resumedReplays, 1);

  // The current segment grows: resumed (the new record is after the checkpoint).
  postAcks(fx, held!, [{ kind: 'started', at: NOW - 2 * MIN }]);
  const grown = next(warm);
  assert.equal(cachedTrace(fx, release, grown, { subject }), full(), 'after an append');
  assert.is(grown.resumedReplays, 1);
  // The log rolls: a new, fifth segment; resumed from the checkpoint kept with the fourth.
  writeFileSync(join(dirname(fx.logFile), ackSegmentName(4)), '');
  const [c] = fx.wave('ch-0', 1);
  postAcks(fx, c!, [{ kind: 'heartbeat', at: NOW - MIN, healthySince: NOW - 25 * MIN }]);
  const rolled = next(grown);
  assert.equal(cachedTrace(fx, release, rolled, { subject }), full(), 'after a roll');
  assert.is(rolled.resumedReplays, 1);
  const again = next(rolled);
  assert.equal(cachedTrace(fx, release, again, { subject }), full(), 'kept with the fifth');
  assert.is(again.resumedReplays, 1);
  assert.ok(
    again.usedIndexes().find((i) => i.file.endsWith(ackSegmentName(4)))?.replays?.length,
    'the checkpoint moved to the current segment',
  );

  // Another roll, and in the new segment a late ack of a host of the wave before, signed long before the checkpoints:
  // replayed whole while it is read after the indexes, and once it is indexed too resumed only from
  // a checkpoint made before it (kept with the sixth segment), not from those that replayed without
  // it (kept with the fourth).
  writeFileSync(join(dirname(fx.logFile), ackSegmentName(5)), '');
  const [gating] = fx.wave('ch-1', 0);
  const withoutIt = full();
  postAcks(fx, gating!, [{ kind: 'failed', at: NOW - 30 * MIN, reason: 'late' }]);
  assert.is.not(timeline(full()), timeline(withoutIt), 'the late ack changes the timeline');
  const late = next(again);
  assert.equal(cachedTrace(fx, release, late, { subject }), full(), 'a late ack');
  assert.is(late.resumedReplays, 0, 'not resumed: an ack before the checkpoint');
  const indexed = next(late);
  assert.equal(cachedTrace(fx, release, indexed, { subject }), full(), 'the late ack indexed');
  assert.is(indexed.resumedReplays, 1, 'resumed from the checkpoint made before the late ack');
  // Kept with the current segment: this replay's two (the newest step, a margin before it), not those
  // kept with the fourth segment, which replayed without the late ack.
  const current = indexed.usedIndexes().find((i) => i.file.endsWith(ackSegmentName(5)))!;
  const kept5 = (current.replays ?? []).map((r) => r.checkpoint.at);
  assert.equal(kept5, [kept5[0], kept5[0]! - CHECKPOINT_MARGIN_MS]);
  const settled = next(indexed);
  assert.equal(cachedTrace(fx, release, settled, { subject }), full());
  assert.is(settled.resumedReplays, 1);

  // The oldest segment gone (archived): the checkpoint's numbers count from it, so it is not used.
  traceWithoutFirstSegment(fx, release, settled, subject);
});

/**
 * Archives the log's first segment (removes it) and traces from the second on: the full replay's trace,
 * not resumed from a checkpoint `earlier` kept (it names the first segment among those before it).
 */
function traceWithoutFirstSegment(
  fx: Fixture,
  release: VerifiedRelease,
  earlier: LogPrefixMemo,
  subject: TraceSubject,
): void {
  rmSync(fx.logFile);
  const log = join(dirname(fx.logFile), ackSegmentName(1));
  const archived = next(earlier);
  assert.equal(
    cachedTrace(fx, release, archived, { subject, log }),
    fullTrace(fx, release, { subject, log }),
    'without segment 0',
  );
  assert.is(archived.resumedReplays, 0, 'not resumed: the segments before it are not the same');
}

test('a checkpoint names the segments before its own: with the first one gone it is not used, though its record numbers all still fall inside the log', async () => {
  const fx = rollout();
  // Segment 0 holds the first record alone: without it every number shifts by one, and the
  // checkpoint's acks (its hosts' latest acks at a step's end) still fall inside the records it covers.
  cutLogInto(fx, [1, 2]);
  const release = await loadVerifiedRelease(fx.tree, ROOT, { now: NOW });
  const [held] = fx.wave('ch-1', 1);
  const subject = { host: held! };
  const warm = next(warmedUp(fx, release, { subject }));
  assert.equal(cachedTrace(fx, release, warm, { subject }), fullTrace(fx, release, { subject }));
  assert.is(warm.resumedReplays, 1);
  const kept = warm.usedIndexes().find((i) => i.replays?.length)!;
  assert.ok(kept.file.endsWith(ackSegmentName(2)), 'kept with the current segment');
  // Its acks are numbered from segment 0's first record: without it, the records it covers end one
  // earlier, and those of the checkpoint a margin before the newest still fall inside them.
  assert.ok(
    kept.replays!.some((r) => Math.max(...r.acks) < 1 + r.records),
    'a checkpoint whose numbers all fall inside the records covered without segment 0',
  );
  traceWithoutFirstSegment(fx, release, warm, subject);
});

test('a record appended again in a later segment is taken once through the indexes, as by a full read', async () => {
  const fx = rollout();
  const records = logRecordCount(fx);
  cutLogInto(fx, [Math.floor(records / 3), Math.floor((2 * records) / 3)]);
  const [first, , last] = listAckLogSegments(fx.logFile).map((s) => s.file);
  // The last segment begins with the first segment's last record again (its very bytes).
  const repeated = readFileSync(first!, 'utf8').split('\n').at(-2)!;
  writeFileSync(last!, `${repeated}\n${readFileSync(last!, 'utf8')}`);
  const release = await loadVerifiedRelease(fx.tree, ROOT, { now: NOW });
  const subject = { host: fx.wave('ch-1', 1)[0]! };
  const hosts = traceScope(release, subject).hosts;
  const read = (memo: LogPrefixMemo) =>
    loadAckHistory(fx.tree, release, fx.logFile, new AckCache(), [], hosts, memo, undefined, true);
  const full = loadAckHistory(fx.tree, release, fx.logFile, undefined, [], hosts);
  const cold = next();
  read(cold);
  const warm = next(cold);
  const h = read(warm);
  assert.is(warm.indexHits, 3, 'every segment through its index');
  const deferred = (h.deferred ?? []).reduce((n, d) => n + d.taken.length, 0);
  assert.is(h.acks.length + deferred, full.acks.length, 'the repeated record taken once');
  assert.equal(
    cachedTrace(fx, release, next(warm), { subject }),
    fullTrace(fx, release, { subject }),
  );
});

test('a replica log whose indexed records the main log holds after its own index: each ack taken once, as by a full read', async () => {
  // The main log's records after its index are taken in first; the replica's index then holds them
  // again: fewer of them than the replica indexes (looked up by digest), or more (its records looked up).
  for (const { mainLacks, replicaHolds } of [
    { mainLacks: 3, replicaHolds: Infinity },
    { mainLacks: 40, replicaHolds: 5 },
  ]) {
    const fx = rollout();
    const lines = readFileSync(fx.logFile, 'utf8').split('\n').slice(0, -1);
    const text = (ls: string[]) => ls.map((l) => `${l}\n`).join('');
    const replica = join(dirname(fx.logFile), 'replica', basename(fx.logFile));
    mkdirSync(dirname(replica));
    writeFileSync(replica, text(lines.slice(-Math.min(replicaHolds, lines.length))));
    writeFileSync(fx.logFile, text(lines.slice(0, -mainLacks)));
    const release = await loadVerifiedRelease(fx.tree, ROOT, { now: NOW });
    const hosts = traceScope(release, { host: fx.wave('ch-1', 1)[0]! }).hosts;
    const read = (memo?: LogPrefixMemo) =>
      memo === undefined
        ? loadAckHistory(fx.tree, release, fx.logFile, undefined, [replica], hosts)
        : loadAckHistory(
            ...[fx.tree, release, fx.logFile, new AckCache(), [replica], hosts, memo],
            ...[undefined, true],
          );
    const cold = next();
    read(cold);
    appendFileSync(fx.logFile, text(lines.slice(-mainLacks)));
    const warm = next(cold);
    const h = read(warm);
    assert.is(warm.indexHits, 2, 'both logs through their indexes');
    const deferred = (h.deferred ?? []).reduce((n, d) => n + d.taken.length, 0);
    assert.is(h.acks.length, mainLacks, "the main log's records after its index");
    assert.is(h.acks.length + deferred, read().acks.length, `${mainLacks}: each ack taken once`);
  }
});

test("a latest-ack file holding another host's indexed ack is refused WrongHost, as without a cache", async () => {
  const { fx, release, host: e, subject, first } = await warmRollout({ pick: startedHost });
  const [f] = fx.wave('ch-1', 1);
  // f's file now holds e's latest ack: a record of the index, found there by its digest as e's.
  const hosts = join(fx.tree, 'acks', 'hosts');
  copyFileSync(join(hosts, `${e}.json`), join(hosts, `${f}.json`));
  const memo = next(first);
  const t = cachedTrace(fx, release, memo, { subject });
  assert.equal(
    t.history.rejected.map((r) => `${r.source} ${r.host} ${r.code}`),
    [`acks/hosts/${f}.json ${e} WrongHost`],
  );
  assert.equal([memo.indexHits, memo.resumedReplays], [1, 1]);
  assert.equal(t, fullTrace(fx, release, { subject }));
});

test.run();
