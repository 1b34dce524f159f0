// The one-host view's memo of verified latest acks (read-side/ack-file-memo.ts:
// `status --host` with a cache). A warm view takes each unchanged file's ack as a full read verified
// it, and its output (text and --json) is byte for byte a cold run's: at instants crossing the soak,
// the offline window and the timestamp's expiry, after a file tampered in place (read again,
// refused), with a memo edited by hand (ignored whole), after a new release that re-keys a host (its
// file read and verified again under the new key), and for files younger than the racy margin (never
// remembered); a file replaced by the same bytes (new inode) is taken in from the memo, by other bytes
// read and refused. Real published tree, real signed acks, the real store.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  existsSync,
  readFileSync,
  readdirSync,
  renameSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { loadFleetState, readPinnedRoot, type FleetState } from '../../read-side/load.ts';
import { renderStatus, statusReport } from '../../read-side/status.ts';
import { openVerifiedAckStore } from '../../read-side/verified-cache.ts';
import { RACY_MS, type AckFileMemoEntries } from '../../read-side/ack-file-memo.ts';
import { readMemo, rewriteMemo } from './sealed-memo.ts';
import {
  MIN,
  NOW,
  chainedRollout,
  cleanupTempDirs,
  rekeyingRelease,
  rewriteSignatureInPlace,
  run,
  withFlippedSignature,
  type Fixture,
} from './fixture.ts';
import { isoTime } from '../../protocol/index.ts';

test.after.each(cleanupTempDirs);

/** ch-0 complete (a stopped acking 20 min ago), ch-1 wave 0 soaking, ch-1 wave 1 polling. */
const rollout = (label: string) => chainedRollout(label, { first: 20, ch0: 2, ch1: 1, polling: 1 });

/** A host of ch-1 wave 1: its scope is its channel and the gating ch-0, every host of the fixture. */
const subject = (fx: Fixture) => fx.wave('ch-1', 1)[0]!;

interface Shown {
  text: string;
  json: string;
  state: FleetState;
}

function shown(state: FleetState, host: string): Shown {
  const report = statusReport(state, { host });
  return { text: renderStatus(report), json: JSON.stringify(report), state };
}

/**
 * `status --host` as the CLI runs it with a cache: the status-host store opened at `startedAt` (by
 * default well after the files were written), the view at `now`, the store saved.
 */
async function warm(
  fx: Fixture,
  host: string,
  now: number = NOW,
  startedAt: number = Date.now() + 10 * RACY_MS,
  ackLogs: string[] = [],
): Promise<Shown & { hits: number }> {
  const store = openVerifiedAckStore(join(fx.dir, 'cache'), 'status-host', startedAt);
  const state = await loadFleetState(fx.tree, readPinnedRoot(fx.rootFile), {
    now,
    manifests: [host],
    host,
    ackCacheFor: (channel) => store.scopeAcks(channel),
    ackFiles: () => store.verifiedAckFiles,
    memo: store.documents,
    ackLogs,
  });
  store.save();
  return { ...shown(state, host), hits: store.verifiedAckFiles.hits };
}

/** The same view with no cache at all (`--no-cache`). */
async function cold(
  fx: Fixture,
  host: string,
  now: number = NOW,
  ackLogs: string[] = [],
): Promise<Shown> {
  const state = await loadFleetState(fx.tree, readPinnedRoot(fx.rootFile), {
    now,
    manifests: [host],
    host,
    ackLogs,
  });
  return shown(state, host);
}

function assertSame(a: Shown, b: Shown, label: string): void {
  assert.is(a.text, b.text, label);
  assert.is(a.json, b.json, label);
}

const filesOf = (fx: Fixture) => readdirSync(join(fx.tree, 'acks', 'hosts')).length;
const memoFile = (fx: Fixture) => join(fx.dir, 'cache', 'status-host.ch-1.latest-acks');
const hostFile = (fx: Fixture, h: string) => join(fx.tree, 'acks', 'hosts', `${h}.json`);

/** A signature character of the file's ack changed in place (same size, same mtime): its ctime moves. */
function tamperInPlace(file: string): void {
  const second = Math.floor((Date.now() - MIN) / 1000);
  utimesSync(file, second, second);
  rewriteSignatureInPlace(file);
}

test('a warm one-host view recalls every file of its scope and shows what a cold view shows, at instants crossing its thresholds', async () => {
  const fx = rollout('verified-files');
  // A polling host (pending, then offline past the offline window) and a soaked one (its heartbeat
  // then stale): both of ch-1, whose scope is every host of the fixture.
  const soaked = fx.wave('ch-1', 0)[0]!;
  for (const host of [subject(fx), soaked]) {
    const first = await warm(fx, host);
    assertSame(first, await cold(fx, host), `${host}: the run that fills the memo`);
    // Soak ends, hosts go offline (no ack for minutes), heartbeats go stale, the timestamp expires
    // (a stale view): each instant's view over recalled acks is the cold view's.
    for (const at of [0, 3, 6, 12, 30, 90].map((m) => NOW + m * MIN)) {
      const w = await warm(fx, host, at);
      assert.is(w.hits, filesOf(fx), `every file recalled at +${(at - NOW) / MIN} min`);
      assertSame(w, await cold(fx, host, at), `${host} at +${(at - NOW) / MIN} min`);
    }
  }
  // The premises: those instants do cross the thresholds.
  const row = async (host: string, at: number) => (await cold(fx, host, at)).state.view.hosts[0]!;
  assert.is((await row(subject(fx), NOW)).phase, 'pending');
  assert.is((await row(subject(fx), NOW + 90 * MIN)).phase, 'offline');
  assert.not.match((await row(soaked, NOW)).detail, 'stale');
  assert.match((await row(soaked, NOW + 90 * MIN)).detail, 'heartbeat is stale');
  assert.is((await cold(fx, soaked, NOW + 90 * MIN)).state.stale?.failure.code, 'Stale');
});

test('a file tampered in place is read again and refused; a memo edited by hand is ignored whole', async () => {
  const fx = rollout('verified-files-tamper');
  const host = subject(fx);
  const peer = fx.wave('ch-0', 1)[0]!;
  await warm(fx, host);
  tamperInPlace(hostFile(fx, peer));
  const w = await warm(fx, host);
  assert.is(w.hits, filesOf(fx) - 1);
  assert.equal(
    w.state.acks.rejected.map((r) => [r.source, r.code]),
    [[`acks/hosts/${peer}.json`, 'BadSignature']],
  );
  assertSame(w, await cold(fx, host), 'a tampered gating peer');
  // Refused files are not remembered: the next run reads and refuses it again.
  const again = await warm(fx, host);
  assert.is(again.hits, filesOf(fx) - 1);
  assertSame(again, await cold(fx, host), 'the tampered file again');

  // The host's entry made to claim an older time (its MAC kept, or dropped): not believed at all.
  const older = (m: AckFileMemoEntries) => {
    const e = m.files.find((f) => f.host === host)!;
    e.signed = { ...e.signed!, time: '2030-03-01T11:40:00Z' };
  };
  for (const seal of ['old-mac', 'no-mac'] as const) {
    rewriteMemo(memoFile(fx), older, seal);
    const w2 = await warm(fx, host);
    assert.is(w2.hits, 0, seal);
    assertSame(w2, await cold(fx, host), seal);
  }
});

test('the memo stands in for the file: an entry sealed with the directory key is what the view shows', async () => {
  const fx = rollout('verified-files-sealed');
  const host = subject(fx);
  await warm(fx, host);
  // The premise of the other tests: an entry re-sealed with the directory's key is believed (the
  // view shows its ack's time, not the file's). Only the cache directory's owner can do this.
  rewriteMemo(memoFile(fx), (m) => {
    m.files.find((e) => e.host === host)!.signed!.time = '2030-03-01T11:00:00Z';
  });
  const w = await warm(fx, host);
  assert.is(w.hits, filesOf(fx));
  assert.is(
    w.state.input.acks[host]!.time,
    '2030-03-01T11:00:00Z',
    'the sealed entry was taken in instead of the file',
  );
});

/** The file replaced by a copy of `bytes` through a rename (a new inode), as the endpoint writes one. */
function replaceByRename(file: string, bytes: Buffer): void {
  writeFileSync(`${file}.tmp`, bytes);
  renameSync(`${file}.tmp`, file);
}

test('a file replaced by the same bytes (a copied tree) is taken in from the memo and remembered anew; other bytes are read and refused', async () => {
  const fx = rollout('verified-files-same-bytes');
  const host = subject(fx);
  const peer = fx.wave('ch-0', 1)[0]!;
  await warm(fx, host);
  // The peer's entry made to show another time and sealed with the directory's key: whatever the
  // view shows for the peer then tells whether the memo stood in for the file (as in the test above).
  rewriteMemo(memoFile(fx), (m) => {
    m.files.find((e) => e.host === peer)!.signed!.time = '2030-03-01T11:00:00Z';
  });

  const file = hostFile(fx, peer);
  const bytes = readFileSync(file);
  const inode = statSync(file).ino;
  replaceByRename(file, bytes);
  assert.is.not(statSync(file).ino, inode, 'a new identity');
  const same = await warm(fx, host);
  assert.is(same.hits, filesOf(fx) - 1, 'the replaced file is not recalled by identity');
  assert.is(same.state.input.acks[peer]!.time, '2030-03-01T11:00:00Z', "its bytes are the memo's");
  assert.equal(same.state.acks.rejected, []);
  // Remembered under its new identity: the next run recalls every file.
  assert.is((await warm(fx, host)).hits, filesOf(fx));
  // Replaced again within the racy margin of a run's start: taken in, not remembered (git's rule).
  replaceByRename(file, bytes);
  assert.is((await warm(fx, host, NOW, Date.now())).hits, filesOf(fx) - 1);
  assert.is((await warm(fx, host)).hits, filesOf(fx) - 1, 'not remembered by the racy run');
  assert.is((await warm(fx, host)).hits, filesOf(fx));

  // Other bytes under the same name (a signature character changed): read, verified, refused.
  replaceByRename(file, Buffer.from(withFlippedSignature(bytes.toString('utf8'))));
  const other = await warm(fx, host);
  assert.equal(
    other.state.acks.rejected.map((r) => [r.source, r.code]),
    [[`acks/hosts/${peer}.json`, 'BadSignature']],
  );
  assertSame(other, await cold(fx, host), 'a replaced file with other bytes');
});

test('a new release that re-keys a host: its file is read and verified under the new key, the rest recalled', async () => {
  const fx = rollout('verified-files-rekey');
  const host = subject(fx);
  const peer = fx.wave('ch-0', 1)[0]!;
  await warm(fx, host);
  await warm(fx, host);
  // Release 2: the same fleet (publishedFixture's), the peer's key replaced by a new one.
  rekeyingRelease(fx, peer);
  const w = await warm(fx, host);
  assert.is(w.state.release.index.version, 2);
  assert.is(w.hits, filesOf(fx) - 1, "every file but the re-keyed host's recalled");
  assert.equal(
    w.state.acks.rejected.map((r) => r.source),
    [`acks/hosts/${peer}.json`],
    "the peer's ack, signed with its old key, is refused under the new one",
  );
  assertSame(w, await cold(fx, host), 'after the new release');
});

test('with an ack log (--acks-log): files whose acks the log also holds are recalled, the view is a cold one', async () => {
  const fx = rollout('verified-files-log');
  const host = subject(fx);
  const logs = [fx.logFile];
  const first = await warm(fx, host, NOW, undefined, logs);
  assert.is(first.hits, 0);
  const w = await warm(fx, host, NOW, undefined, logs);
  assert.is(w.hits, filesOf(fx));
  assertSame(w, await cold(fx, host, NOW, logs), 'with the log');
  // A file tampered in place is still read and refused beside the log's genuine copy of its ack.
  const peer = fx.wave('ch-0', 1)[0]!;
  tamperInPlace(hostFile(fx, peer));
  const t = await warm(fx, host, NOW, undefined, logs);
  assert.is(t.hits, filesOf(fx) - 1);
  assert.equal(
    t.state.acks.rejected.map((r) => [r.source, r.code]),
    [[`acks/hosts/${peer}.json`, 'BadSignature']],
  );
  assertSame(t, await cold(fx, host, NOW, logs), 'a tampered file with the log');
});

/** The acks a memo file keeps (null: a file whose ack the log gave). */
const memoAcks = (file: string) => readMemo(file).files.map((e) => e.signed);

test('a file whose ack the log gave is remembered without it; without that log it is read again', async () => {
  const fx = rollout('verified-files-logged');
  const host = subject(fx);
  const logs = [fx.logFile];
  await warm(fx, host, NOW, undefined, logs);
  // Every latest ack of the fixture is also in the log: the memo keeps identities and digests only.
  const acks = memoAcks(memoFile(fx));
  assert.is(acks.length, filesOf(fx));
  assert.ok(
    acks.every((a) => a === null),
    'no ack kept for a file repeating the log',
  );
  const w = await warm(fx, host, NOW, undefined, logs);
  assert.is(w.hits, filesOf(fx));
  assertSame(w, await cold(fx, host, NOW, logs), 'recalled beside the log');
  // No log: an entry without its ack stands for nothing, every file is read (and verified) again.
  const alone = await warm(fx, host);
  assert.is(alone.hits, 0);
  assertSame(alone, await cold(fx, host), 'the same memo, no log');
  assert.ok(
    memoAcks(memoFile(fx)).every((a) => a !== null),
    'remembered with their acks',
  );
  // The log again: recalled, and the entries lose their acks once more.
  const again = await warm(fx, host, NOW, undefined, logs);
  assert.is(again.hits, filesOf(fx));
  assertSame(again, await cold(fx, host, NOW, logs), 'with the log again');
  assert.ok(memoAcks(memoFile(fx)).every((a) => a === null));
});

/** `nixfleet trace --host --json` over `log` (null: none), cacheDir null: --no-cache. */
async function traceJson(fx: Fixture, host: string, log: string | null, cacheDir: string | null) {
  const r = await run(
    'trace',
    ...['--tree', fx.tree, '--root', fx.rootFile, '--now', isoTime(NOW), '--host', host, '--json'],
    ...(log === null ? [] : ['--acks-log', log]),
    ...(cacheDir === null ? ['--no-cache'] : ['--cache-dir', cacheDir]),
  );
  assert.is(r.code, 0, r.err);
  return r.out;
}

test('trace --host: latest-ack files recalled beside the log; a shorter log reads the files it lacks', async () => {
  const fx = rollout('verified-files-trace');
  const host = subject(fx);
  const cache = join(fx.dir, 'trace-cache');
  // The CLI's run starts at its clock: files younger than RACY_MS then are not remembered (racy rule).
  await new Promise((resolve) => setTimeout(resolve, RACY_MS + 200));
  const full = await traceJson(fx, host, fx.logFile, null);
  assert.is(await traceJson(fx, host, fx.logFile, cache), full, 'the run that fills the memo');
  const memo = join(cache, 'trace.ch-1.latest-acks');
  assert.ok(
    memoAcks(memo).every((a) => a === null),
    'the files repeat the log',
  );
  assert.is(await traceJson(fx, host, fx.logFile, cache), full, 'warm');
  // A log holding the first half of the records only: the latest acks it lacks come from the files,
  // which the memo (identities and digests of acks this log does not give) cannot stand in for.
  const lines = readFileSync(fx.logFile, 'utf8').split('\n');
  const half = join(fx.dir, 'half.log');
  writeFileSync(half, lines.slice(0, Math.floor(lines.length / 2)).join('\n') + '\n');
  const shorter = await traceJson(fx, host, half, null);
  assert.is.not(shorter, full, 'the premise: the shorter log alone traces differently');
  assert.is(await traceJson(fx, host, half, cache), shorter, 'warm over the shorter log');
  assert.is(await traceJson(fx, host, half, cache), shorter, 'and again');
  // No log: the bundles are read, which a memo without bytes cannot compare with; none is kept.
  const noLog = join(fx.dir, 'no-log-cache');
  const latest = await traceJson(fx, host, null, null);
  assert.is(await traceJson(fx, host, null, noLog), latest, 'no log, warm');
  assert.not.ok(existsSync(join(noLog, 'trace.ch-1.latest-acks')));
});

test("git's racy rule: files changed within RACY_MS of the run's start are not remembered", async () => {
  const fx = rollout('verified-files-racy');
  const host = subject(fx);
  await warm(fx, host, NOW, Date.now());
  const next = await warm(fx, host, NOW, Date.now());
  assert.is(next.hits, 0);
  assertSame(next, await cold(fx, host), 'read again');
});

test.run();
