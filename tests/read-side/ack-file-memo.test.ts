// The latest-ack file memo of `nixfleet status` (read-side/ack-file-memo.ts): a warm view recalls an
// unchanged file by its identity (device, inode, size, mtime, ctime) instead of reading it; a file
// rewritten in place with its size and mtime kept is read again (its ctime moved), a tampered ack is
// still refused with a warm memo, a file whose ack does not verify as its host's is never remembered,
// a memo edited by hand or a memo line that does not unpack whole is ignored whole, and a file or
// bundle changed within RACY_MS of the run's start is never remembered (the identity and the racy
// rule's cutoff are also checked field by field). Real published tree, real signed acks, the real
// store.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHmac } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { canonicalString, sha256Digest } from '../../protocol/canonical.ts';
import { isoTime } from '../../protocol/schemas/common.ts';
import { bundleJson } from '../../control-plane/ack-publisher.ts';
import {
  ackTrustOf,
  loadFleetState,
  readPinnedRoot,
  type FleetState,
} from '../../read-side/load.ts';
import { loadVerifiedRelease } from '../../read-side/release.ts';
import { readTreeAcks } from '../../read-side/acks.ts';
import { openVerifiedAckStore } from '../../read-side/verified-cache.ts';
import {
  IDENTITY,
  RACY_MS,
  clearlyOlder,
  formatAckFileMemo,
  formatAckFileMemoChanges,
  identityOfStats,
  parseAckFileMemo,
  parseAckFileMemoChanges,
  sameStat,
  type AckFileMemoEntries,
  type VerifiedAckFile,
} from '../../read-side/ack-file-memo.ts';
import { journalOf, macOf, readJournal, readMemo, rewriteMemo, sealOf } from './sealed-memo.ts';
import {
  MIN,
  NOW,
  cleanupTempDirs,
  lifecycle,
  postAcks,
  publishedFixture,
  rewriteSignatureInPlace,
  tempDir,
  withFlippedSignature,
  type Fixture,
} from './fixture.ts';

test.after.each(cleanupTempDirs);

/** Every host of the fixture with a lifecycle; returns the fixture and its hosts. */
function rolledOut(): { fx: Fixture; hosts: string[] } {
  const fx = publishedFixture('ack-file-memo');
  const hosts = [...fx.wave('ch-0', 0), ...fx.wave('ch-0', 1)];
  hosts.forEach((h, i) => postAcks(fx, h, lifecycle(NOW - 20 * MIN + i * 1000, NOW - MIN)));
  return { fx, hosts };
}

/**
 * One `status` run as the CLI makes it: the store opened at `startedAt` (a run that starts well after
 * the files were written, unless given the real clock), the fleet state, the store saved.
 */
async function view(
  fx: Fixture,
  startedAt: number = Date.now() + 10 * RACY_MS,
): Promise<{ state: FleetState; hits: number }> {
  const store = openVerifiedAckStore(join(fx.dir, 'cache'), 'status', startedAt);
  const state = await loadFleetState(fx.tree, readPinnedRoot(fx.rootFile), {
    now: NOW,
    manifests: [],
    ackCache: store.cache,
    ackFiles: () => store.verifiedAckFiles,
    memo: store.documents,
  });
  store.save();
  return { state, hits: store.verifiedAckFiles.hits };
}

/** The facts a view shows of its acks: every host's phase and last ack, and every rejection. */
const shown = (s: FleetState) => ({
  hosts: s.view.hosts.map((h) => [h.host, h.phase, h.lastAck]),
  rejected: s.acks.rejected.map((r) => [r.source, r.code]),
});

async function cold(fx: Fixture): Promise<ReturnType<typeof shown>> {
  return shown(
    await loadFleetState(fx.tree, readPinnedRoot(fx.rootFile), { now: NOW, manifests: [] }),
  );
}

const filesOf = (fx: Fixture) => readdirSync(join(fx.tree, 'acks', 'hosts'));
const memoFile = (fx: Fixture) => join(fx.dir, 'cache', 'status.latest-acks');

test('an identity: any one field that differs is another file or other bytes; the racy rule keeps only a file whose both times are before the cutoff; the identity text as written, and nothing around it', () => {
  const seen = { dev: 2049, ino: 131, size: 612, mtimeMs: 1_000_000.25, ctimeMs: 1_000_500.75 };
  assert.ok(sameStat(seen, { ...seen }));
  for (const field of ['dev', 'ino', 'size', 'mtimeMs', 'ctimeMs'] as const)
    assert.not.ok(sameStat(seen, { ...seen, [field]: seen[field] + 1 }), field);
  // Both times count; the newest must be strictly before the cutoff.
  assert.ok(clearlyOlder(seen, seen.ctimeMs + 1));
  assert.not.ok(clearlyOlder(seen, seen.ctimeMs), 'a time at the cutoff');
  assert.not.ok(clearlyOlder({ ...seen, mtimeMs: seen.ctimeMs + 5 }, seen.ctimeMs + 1), 'mtime');
  const file = join(tempDir('identity'), 'f');
  writeFileSync(file, 'x');
  const st = statSync(file);
  const { identity, newestMs } = identityOfStats(st);
  assert.ok(IDENTITY.test(identity), identity);
  assert.is(newestMs, Math.max(st.mtimeMs, st.ctimeMs));
  for (const odd of [`x${identity}`, `${identity}x`, `${identity}:1`, identity.replace(/:/g, ';')])
    assert.not.ok(IDENTITY.test(odd), odd);
});

test('a warm view recalls every unchanged latest-ack file and shows what a view without any cache shows', async () => {
  const { fx } = rolledOut();
  const first = await view(fx);
  assert.is(first.hits, 0);
  const warm = await view(fx);
  assert.is(warm.hits, filesOf(fx).length);
  assert.equal(shown(warm.state), await cold(fx));
  assert.equal(shown(warm.state), shown(first.state));
});

test('the memo stands in for the file: an entry sealed with the directory key is what the view takes in, while the release names its host key', async () => {
  const { fx, hosts } = rolledOut();
  const h = hosts[0]!;
  await view(fx);
  // The premise of every other test: a warm view takes h's ack from its entry, not from its file. The
  // entry made to claim another time and sealed with the directory's key (only the cache directory's
  // owner can) is what the view then shows for h.
  const entryOf = (m: AckFileMemoEntries) => m.files.find((e) => e.host === h)!;
  const fileTime = entryOf(readMemo(memoFile(fx))).signed!.time;
  rewriteMemo(memoFile(fx), (m) => {
    entryOf(m).signed!.time = '2030-03-01T11:00:00Z';
  });
  const warm = await view(fx);
  assert.is(warm.hits, filesOf(fx).length);
  assert.is(warm.state.input.acks[h]!.time, '2030-03-01T11:00:00Z', 'the entry was taken in');
  // The entry stands in for a signature check under the key it was verified under only: under a key
  // the release does not name for h, the file is read and verified.
  rewriteMemo(memoFile(fx), (m) => {
    entryOf(m).hostKey = entryOf(m).hostKey.replace(/^./, (c) => (c === 'A' ? 'B' : 'A'));
  });
  const rekeyed = await view(fx);
  assert.is(rekeyed.hits, filesOf(fx).length - 1);
  assert.is(rekeyed.state.input.acks[h]!.time, fileTime, 'the file was read');
  assert.equal(shown(rekeyed.state), await cold(fx));
});

test('a file rewritten in place with its size and mtime kept is read again (its ctime moved): a tampered ack is refused with a warm memo', async () => {
  const { fx, hosts } = rolledOut();
  const h = hosts[1]!;
  const file = join(fx.tree, 'acks', 'hosts', `${h}.json`);
  // A whole-second mtime, so that utimes can restore it exactly (it takes no nanoseconds).
  const second = Math.floor((Date.now() - MIN) / 1000);
  utimesSync(file, second, second);
  await view(fx);
  const before = statSync(file);
  const bytes = readFileSync(file, 'utf8');
  // One signature character changed: same length, same inode (written in place), mtime restored.
  const tampered = withFlippedSignature(bytes);
  assert.is.not(tampered, bytes);
  writeFileSync(file, tampered);
  utimesSync(file, before.atime, before.mtime);
  const after = statSync(file);
  assert.is(after.ino, before.ino);
  assert.is(after.size, before.size);
  assert.is(after.mtimeMs, before.mtimeMs);
  assert.is.not(after.ctimeMs, before.ctimeMs, 'premise: the rewrite moved the ctime');
  const warm = await view(fx);
  assert.is(warm.hits, filesOf(fx).length - 1);
  assert.equal(
    warm.state.acks.rejected.map((r) => [r.source, r.code]),
    [[`acks/hosts/${h}.json`, 'BadSignature']],
  );
  assert.equal(shown(warm.state), await cold(fx));
  // Replaced by a rename (the endpoint's way: a new inode), the genuine bytes are read again too.
  writeFileSync(`${file}.tmp`, bytes);
  renameSync(`${file}.tmp`, file);
  const renamed = await view(fx);
  assert.equal(renamed.state.acks.rejected, []);
  assert.equal(shown(renamed.state), await cold(fx));
});

test('a memo edited by hand (its MAC not made with the directory key) is ignored whole: every file is read', async () => {
  const { fx, hosts } = rolledOut();
  const [h, other] = [hosts[2]!, hosts[3]!];
  await view(fx);
  // h's entry made to hold another host's ack (host, digest and ack), the MAC kept or dropped.
  const swap = (m: AckFileMemoEntries) => {
    const [e, o] = [h, other].map((x) => m.files.find((f) => f.host === x)!) as [
      VerifiedAckFile,
      VerifiedAckFile,
    ];
    Object.assign(e, { digest: o.digest, signed: { ...o.signed!, host: h } });
  };
  for (const seal of ['old-mac', 'no-mac'] as const) {
    rewriteMemo(memoFile(fx), swap, seal);
    const warm = await view(fx);
    assert.is(warm.hits, 0, seal);
    assert.equal(shown(warm.state), await cold(fx), seal);
  }
});

/** The wave's bundle as the endpoint writes it from the hosts' latest-ack files (whole-second mtime). */
function writeBundle(fx: Fixture, wave: number): string {
  const file = join(fx.tree, 'acks', 'channels', 'ch-0', `wave-${wave}.json`);
  mkdirSync(join(fx.tree, 'acks', 'channels', 'ch-0'), { recursive: true });
  const latest = (h: string) => readFileSync(join(fx.tree, 'acks', 'hosts', `${h}.json`), 'utf8');
  writeFileSync(
    file,
    bundleJson('generated', 'ch-0', wave, isoTime(NOW - MIN), fx.wave('ch-0', wave), latest),
  );
  // A whole-second mtime, so that utimes can restore it exactly (it takes no nanoseconds).
  const second = Math.floor((Date.now() - MIN) / 1000);
  utimesSync(file, second, second);
  return file;
}

test('a bundle found to repeat the files is not read while it and they are unchanged; a newer file or a forged entry rewritten in place reads it in full', async () => {
  const { fx } = rolledOut();
  writeBundle(fx, 0);
  const bundle = writeBundle(fx, 1);
  const files = filesOf(fx).length;
  await view(fx);
  const warm = await view(fx);
  assert.is(warm.hits, files + 2, 'every file and both bundles recalled');
  assert.equal(shown(warm.state), await cold(fx));
  assert.is(warm.state.acks.acks.length, files);

  // A newer ack of one host, in its file only: the bundle now lags by it, so it is read and its older
  // ack of that host counted (as without any cache).
  const [h] = fx.wave('ch-0', 1);
  postAcks(fx, h!, lifecycle(NOW - 20 * MIN, NOW - 30_000));
  const lagging = await view(fx);
  assert.is(lagging.hits, files + 2 - 2, "h's file and its wave's bundle read again");
  assert.is(lagging.state.acks.acks.length, files + 1);
  assert.equal(shown(lagging.state), await cold(fx));

  // One entry's signature changed in place, the bundle's size and mtime kept: its ctime moved, so it
  // is read, no longer repeats the files, and the forged entry is refused.
  writeBundle(fx, 1);
  await view(fx);
  assert.is((await view(fx)).hits, files + 2);
  rewriteSignatureInPlace(bundle);
  const forged = await view(fx);
  assert.is(forged.hits, files + 1);
  assert.equal(
    forged.state.acks.rejected.map((r) => [r.source.replace(/#.*/, ''), r.code]),
    [['acks/channels/ch-0/wave-1.json', 'BadSignature']],
  );
  assert.equal(shown(forged.state), await cold(fx));
});

test('files of the memo forms earlier versions kept are deleted when the store writes; the current ones stay', async () => {
  const { fx, hosts } = rolledOut();
  const cache = join(fx.dir, 'cache');
  mkdirSync(cache, { recursive: true, mode: 0o700 });
  const retired = [
    'status.ack-files',
    'status-host.ch-0.ack-files',
    'status-host.ch-1.verified-ack-files',
    'trace.ch-0.verified-ack-files',
  ];
  for (const f of retired)
    writeFileSync(join(cache, f), 'nixfleet ack-files v1\n', { mode: 0o600 });
  await view(fx);
  const left = readdirSync(cache).sort();
  assert.equal(
    left.filter((f) => retired.includes(f)),
    [],
    'every retired file deleted by the first save',
  );
  assert.ok(left.includes('status.latest-acks') && left.includes('cache-key'), left.join(' '));
  // Left by an older version after this one saved: deleted by the next save (a changed file).
  writeFileSync(join(cache, retired[0]!), 'nixfleet ack-files v1\n', { mode: 0o600 });
  postAcks(fx, hosts[0]!, lifecycle(NOW - 20 * MIN, NOW - 30_000));
  await view(fx);
  assert.not.ok(readdirSync(cache).includes(retired[0]!));
  assert.is((await view(fx)).hits, filesOf(fx).length, 'the current memo kept and read');
});

test('a changed bundle is compared with the recalled files by their sizes and digests, without reading them', async () => {
  const { fx } = rolledOut();
  writeBundle(fx, 1);
  await view(fx);
  assert.is((await view(fx)).hits, filesOf(fx).length + 1);
  const release = await loadVerifiedRelease(fx.tree, readPinnedRoot(fx.rootFile), { now: NOW });
  const bundle = join(fx.tree, 'acks', 'channels', 'ch-0', 'wave-1.json');
  /** The bundle rewritten through a rename (a new identity) with `latest`'s acks, then one read. */
  const readWith = (latest: (host: string) => string) => {
    const text = bundleJson('generated', 'ch-0', 1, isoTime(NOW - MIN), fx.wave('ch-0', 1), latest);
    writeFileSync(`${bundle}.tmp`, text);
    renameSync(`${bundle}.tmp`, bundle);
    const store = openVerifiedAckStore(join(fx.dir, 'cache'), 'status', Date.now() + 10 * RACY_MS);
    const memo = store.verifiedAckFiles;
    const read: string[] = [];
    const acks = readTreeAcks(join(fx.tree, 'acks'), ackTrustOf(release), store.cache, {
      files: memo,
      readFile: (path) => (read.push(path), readFileSync(path)),
    });
    store.save();
    return { acks, read, hits: memo.hits };
  };
  const fileText = (h: string) => readFileSync(join(fx.tree, 'acks', 'hosts', `${h}.json`), 'utf8');
  // The same acks in a new file: every latest-ack file recalled, none read, the bundle found to repeat
  // them (and remembered: the next view recalls it too).
  const same = readWith(fileText);
  assert.equal([same.hits, same.read, same.acks.rejected], [filesOf(fx).length, [], []]);
  assert.is((await view(fx)).hits, filesOf(fx).length + 1);
  // h's entry forged (same length, a signature character changed): not h's file by its digest, so the
  // bundle is read in full and the forged ack refused.
  const [h] = fx.wave('ch-0', 1);
  const forged = readWith((x) => (x === h ? withFlippedSignature(fileText(x)) : fileText(x)));
  assert.equal(forged.read, []);
  assert.equal(
    forged.acks.rejected.map((r) => [r.source.replace(/#.*/, ''), r.code]),
    [['acks/channels/ch-0/wave-1.json', 'BadSignature']],
  );
});

test("a file whose ack does not verify as its host's is never remembered: refused by every run, as without a memo", async () => {
  const { fx } = rolledOut();
  const [a, b] = fx.wave('ch-0', 1);
  const hosts = join(fx.tree, 'acks', 'hosts');
  // a's file with a signature that does not verify; b's file holding another host's (a valid) ack.
  const aFile = join(hosts, `${a}.json`);
  writeFileSync(aFile, withFlippedSignature(readFileSync(aFile, 'utf8')));
  writeFileSync(
    join(hosts, `${b}.json`),
    readFileSync(join(hosts, `${fx.wave('ch-0', 0)[0]!}.json`)),
  );
  const refused = [
    [`acks/hosts/${a}.json`, 'BadSignature'],
    [`acks/hosts/${b}.json`, 'WrongHost'],
  ];
  await view(fx);
  const warm = await view(fx);
  assert.is(warm.hits, filesOf(fx).length - 2, 'the two files read again');
  assert.equal(shown(warm.state), await cold(fx));
  assert.equal(warm.state.acks.rejected.map((r) => [r.source, r.code]).sort(), refused.sort());
});

test('a memo line that does not unpack whole is not believed at all (each field of the packed form, its varints, its indexes)', async () => {
  const { fx } = rolledOut();
  writeBundle(fx, 1);
  await view(fx);
  const memo = readMemo(memoFile(fx));
  assert.ok(memo.files.length > 0 && memo.bundles.length === 1);
  const line = formatAckFileMemo(memo);
  assert.equal(parseAckFileMemo(line), memo);
  const packed = JSON.parse(line) as Record<string, unknown>;
  const odd = (edit: Record<string, unknown>) => JSON.stringify({ ...packed, ...edit });
  const b64 = (f: string) => Buffer.from(packed[f] as string, 'base64');
  const variants: [string, string][] = [
    ['not JSON', line.slice(1)],
    ['null', 'null'],
    ['a string', JSON.stringify(line)],
    ['values not a list', odd({ values: {} })],
    ['shapes not lists', odd({ shapes: ['host'] })],
    ['a shape key not a string', odd({ shapes: [[1]] })],
    ['digests cut', odd({ digests: (packed.digests as string).slice(1) })],
    ['stats not text', odd({ stats: 1 })],
    ['files not text', odd({ files: null })],
    ['bundles not text', odd({ bundles: 7 })],
    [
      'files: one byte more',
      odd({ files: Buffer.concat([b64('files'), Buffer.from([0])]).toString('base64') }),
    ],
    ['files: cut', odd({ files: b64('files').subarray(0, -1).toString('base64') })],
    ['bundles: cut', odd({ bundles: b64('bundles').subarray(0, -1).toString('base64') })],
    [
      'stats: one entry more',
      odd({ stats: Buffer.concat([b64('stats'), Buffer.alloc(32)]).toString('base64') }),
    ],
    ['a value index out of range', odd({ values: [] })],
    ['a shape index out of range', odd({ shapes: [] })],
  ];
  for (const [label, text] of variants) assert.is(parseAckFileMemo(text), null, label);
  // The journal's form: its dropped paths must be lists of strings, its memo as above.
  const changes = { ...memo, droppedFiles: ['a'], droppedBundles: [] };
  const journal = formatAckFileMemoChanges(changes);
  assert.equal(parseAckFileMemoChanges(journal), changes);
  const j = JSON.parse(journal) as Record<string, unknown>;
  for (const [label, edit] of [
    ['dropped files not strings', { droppedFiles: [1] }],
    ['dropped bundles not a list', { droppedBundles: 'a' }],
    ['its memo not one', { memo: { ...packed, stats: 1 } }],
  ] as const)
    assert.is(parseAckFileMemoChanges(JSON.stringify({ ...j, ...edit })), null, label);
  assert.is(parseAckFileMemoChanges('null'), null);
});

test("git's racy rule: a file or bundle changed within RACY_MS of the run's start is not remembered, so the next run reads it", async () => {
  const { fx } = rolledOut();
  // Both bundles repeat the files (a bundle's change time is its last write, just now).
  writeBundle(fx, 0);
  writeBundle(fx, 1);
  // The real clock: every file was written just now, none is clearly older than the run.
  await view(fx, Date.now());
  const next = await view(fx, Date.now());
  assert.is(next.hits, 0);
  // The same files seen by a run that starts well after them are remembered.
  await view(fx);
  assert.is((await view(fx)).hits, filesOf(fx).length + 2);
});

// The memo's journal (read-side/verified-cache.ts): a look whose fleet changed a little writes what
// changed beside the base file, bound to the base by its MAC, instead of rewriting the base.

/** Every host of the fixture with a lifecycle (the base then holds 8 entries: a journal of one or two is small). */
function fleetRolledOut(): { fx: Fixture; hosts: string[] } {
  const fx = publishedFixture('memo-journal');
  const hosts = Object.keys(fx.hostKeys).sort();
  hosts.forEach((h, i) => postAcks(fx, h, lifecycle(NOW - 30 * MIN + i * 1000, NOW - 2 * MIN)));
  return { fx, hosts };
}

/** A newer heartbeat of `host` in its latest-ack file, signed at `at` (ms). */
const heartbeat = (fx: Fixture, host: string, at: number) =>
  postAcks(fx, host, lifecycle(at - 10 * MIN, at));

/** The journal's changes sealed with the directory's key after `edit`, naming the base MAC `base`. */
function rewriteJournal(
  fx: Fixture,
  edit: (files: VerifiedAckFile[]) => void,
  base: string = macOf(memoFile(fx)),
): void {
  const file = journalOf(memoFile(fx));
  const [header, , line] = readFileSync(file, 'utf8').split('\n');
  const changes = JSON.parse(line!) as { memo: unknown };
  const journal = readJournal(memoFile(fx))!;
  edit(journal.changes.files);
  changes.memo = JSON.parse(formatAckFileMemo(journal.changes)) as unknown;
  const text = `${header}\nbase ${base}\n${JSON.stringify(changes)}\n`;
  writeFileSync(file, text + sealOf(file, text), { mode: 0o600 });
}

test('a look after a few files changed writes a journal of them and leaves the base; the next look recalls every file through both', async () => {
  const { fx, hosts } = fleetRolledOut();
  await view(fx);
  const base = readFileSync(memoFile(fx));
  assert.not.ok(existsSync(journalOf(memoFile(fx))), 'a first look writes a base only');
  heartbeat(fx, hosts[0]!, NOW - MIN);
  const changed = await view(fx);
  assert.is(changed.hits, hosts.length - 1);
  assert.ok(readFileSync(memoFile(fx)).equals(base), 'the base is not rewritten');
  const journal = readJournal(memoFile(fx))!;
  assert.is(journal.base, macOf(memoFile(fx)), 'the journal names the base');
  // Each names its format on its first line: a later layout is never read as this one.
  assert.equal(
    [memoFile(fx), journalOf(memoFile(fx))].map((f) => readFileSync(f, 'utf8').split('\n')[0]),
    ['nixfleet latest-ack-memo v1', 'nixfleet latest-ack-journal v1'],
  );
  assert.equal(
    journal.changes.files.map((e) => [e.host, e.signed!.time]),
    [[hosts[0], isoTime(NOW - MIN)]],
  );
  const warm = await view(fx);
  assert.is(warm.hits, hosts.length, 'the changed file recalled from the journal');
  assert.equal(shown(warm.state), await cold(fx));
  // A second change: the journal holds both (the base is still the first look's).
  heartbeat(fx, hosts[1]!, NOW - MIN);
  await view(fx);
  assert.ok(readFileSync(memoFile(fx)).equals(base));
  assert.equal(
    readJournal(memoFile(fx))!
      .changes.files.map((e) => e.host)
      .sort(),
    hosts.slice(0, 2),
  );
  const again = await view(fx);
  assert.is(again.hits, hosts.length);
  assert.equal(shown(again.state), await cold(fx));
  // A file gone: the journal drops its entry; a look that changes nothing then writes nothing.
  rmSync(join(fx.tree, 'acks', 'hosts', `${hosts[5]}.json`));
  await view(fx);
  assert.ok(
    readJournal(memoFile(fx))!.changes.droppedFiles.some((p) => p.endsWith(`/${hosts[5]}.json`)),
  );
  const [baseId, journalId] = [memoFile(fx), journalOf(memoFile(fx))].map(
    (f) => statSync(f).ctimeMs,
  );
  const unchanged = await view(fx);
  assert.is(unchanged.hits, hosts.length - 1);
  assert.equal(
    [memoFile(fx), journalOf(memoFile(fx))].map((f) => statSync(f).ctimeMs),
    [baseId, journalId],
    'nothing rewritten',
  );
  assert.equal(shown(unchanged.state), await cold(fx));
});

test('a journal entry replacing a base entry is believed only with a valid MAC, and only over its base', async () => {
  const { fx, hosts } = fleetRolledOut();
  const h = hosts[2]!;
  await view(fx);
  heartbeat(fx, h, NOW - MIN);
  await view(fx);
  // The journal's entry stands in for h's file: made to claim another time and sealed with the
  // directory's key (what only the directory's owner can do), it is what the view shows.
  rewriteJournal(fx, (files) => {
    files.find((e) => e.host === h)!.signed!.time = '2030-03-01T11:00:00Z';
  });
  const sealed = await view(fx);
  assert.is(sealed.hits, hosts.length);
  assert.is(
    sealed.state.input.acks[h]!.time,
    '2030-03-01T11:00:00Z',
    'the journal entry was taken in',
  );
  // The same edit without the key (the MAC kept, or none): the journal is ignored whole, and h's file,
  // whose identity the base's entry no longer has, is read.
  for (const seal of ['old-mac', 'no-mac'] as const) {
    rewriteJournal(fx, (files) => {
      files.find((e) => e.host === h)!.signed!.time = '2030-03-01T11:00:00Z';
    });
    const file = journalOf(memoFile(fx));
    const text = readFileSync(file, 'utf8');
    const body = text.slice(0, text.lastIndexOf('mac '));
    const edited = body.replace('"2030-03-01T11:00:00Z"', `"${isoTime(NOW - 3 * MIN)}"`);
    assert.is.not(edited, body);
    writeFileSync(file, edited + (seal === 'old-mac' ? text.slice(body.length) : ''));
    const unsealed = await view(fx);
    assert.is(unsealed.hits, hosts.length - 1, seal);
    assert.is(unsealed.state.input.acks[h]!.time, isoTime(NOW - MIN), seal);
    assert.equal(shown(unsealed.state), await cold(fx), seal);
    // That look wrote a journal of what it read (h's file among it) for the next round.
    assert.ok(
      readJournal(memoFile(fx))!.changes.files.some((e) => e.host === h),
      seal,
    );
  }
  // A sealed journal is not believed without its base: the base edited without the key (one byte of
  // its memo, the MAC kept) and neither is, every file is read.
  const base = readFileSync(memoFile(fx), 'utf8');
  const at = base.indexOf('"sha256:') + 8;
  writeFileSync(
    memoFile(fx),
    base.slice(0, at) + (base[at] === 'a' ? 'b' : 'a') + base.slice(at + 1),
  );
  const alone = await view(fx);
  assert.is(alone.hits, 0);
  assert.equal(shown(alone.state), await cold(fx));
});

test('a journal is believed over the base it names only: one left beside a newer base (a look killed between writing the base and deleting the journal) is ignored', async () => {
  const { fx, hosts } = fleetRolledOut();
  const h = hosts[3]!;
  await view(fx);
  heartbeat(fx, h, NOW - MIN);
  await view(fx);
  // The journal as the owner could seal it, naming this base: believed (h's forged time shown).
  rewriteJournal(fx, (files) => {
    files.find((e) => e.host === h)!.signed!.time = '2030-03-01T11:00:00Z';
  });
  const journal = readFileSync(journalOf(memoFile(fx)));
  assert.is((await view(fx)).state.input.acks[h]!.time, '2030-03-01T11:00:00Z');
  // Most files change: the next look writes a new base (more than half changed) and deletes the
  // journal. What a kill -9 between the two leaves: the new base and the old journal.
  hosts.slice(0, 6).forEach((x) => heartbeat(fx, x, NOW - 30_000));
  const oldBase = macOf(memoFile(fx));
  const compacted = await view(fx);
  assert.is.not(macOf(memoFile(fx)), oldBase, 'a new base written');
  assert.not.ok(existsSync(journalOf(memoFile(fx))), 'the journal deleted');
  assert.equal(shown(compacted.state), await cold(fx));
  writeFileSync(journalOf(memoFile(fx)), journal, { mode: 0o600 });
  const killed = await view(fx);
  assert.is(killed.hits, hosts.length, "the new base's entries recalled");
  assert.is(killed.state.input.acks[h]!.time, isoTime(NOW - 30_000), 'the old journal not applied');
  assert.equal(shown(killed.state), await cold(fx));
  // A journal naming a base that is not the file's (sealed with the key) is ignored the same way.
  heartbeat(fx, h, NOW - 15_000);
  await view(fx);
  rewriteJournal(
    fx,
    (files) => {
      files.find((e) => e.host === h)!.signed!.time = '2030-03-01T11:00:00Z';
    },
    oldBase,
  );
  const other = await view(fx);
  assert.is(other.hits, hosts.length - 1, "h's file read: its journal entry not believed");
  assert.equal(shown(other.state), await cold(fx));
});

test('with a warm journal, a file tampered in place is refused and a file replaced is read', async () => {
  const { fx, hosts } = fleetRolledOut();
  const h = hosts[4]!;
  const file = join(fx.tree, 'acks', 'hosts', `${h}.json`);
  await view(fx);
  heartbeat(fx, h, NOW - MIN);
  // A whole-second mtime, so that utimes can restore it exactly (it takes no nanoseconds).
  const second = Math.floor((Date.now() - MIN) / 1000);
  utimesSync(file, second, second);
  await view(fx);
  assert.ok(
    readJournal(memoFile(fx))!.changes.files.some((e) => e.host === h),
    "premise: h's entry is in the journal",
  );
  assert.is((await view(fx)).hits, hosts.length);
  const bytes = readFileSync(file, 'utf8');
  rewriteSignatureInPlace(file);
  const tampered = await view(fx);
  assert.is(tampered.hits, hosts.length - 1);
  assert.equal(
    tampered.state.acks.rejected.map((r) => [r.source, r.code]),
    [[`acks/hosts/${h}.json`, 'BadSignature']],
  );
  assert.equal(shown(tampered.state), await cold(fx));
  // Replaced by a rename (a new inode) with the genuine bytes: read again, and taken in.
  writeFileSync(`${file}.tmp`, bytes);
  renameSync(`${file}.tmp`, file);
  const replaced = await view(fx);
  assert.equal(replaced.state.acks.rejected, []);
  assert.equal(shown(replaced.state), await cold(fx));
});

test("the ack cache keeps no ack the memo keeps (a minute's new acks are not written to it by one look and dropped by the next); a racy file's ack it keeps", async () => {
  const { fx, hosts } = fleetRolledOut();
  const cacheFile = join(fx.dir, 'cache', 'status.verified-acks');
  const cached = () =>
    existsSync(cacheFile)
      ? readFileSync(cacheFile, 'utf8')
          .split('\n')
          .filter((l) => l.startsWith('sha256:'))
      : [];
  // The real clock: every file was written just now, none is remembered: the cache keeps every ack.
  await view(fx, Date.now());
  assert.is(cached().length, hosts.length);
  const later = await view(fx);
  assert.is(later.hits, 0);
  assert.equal(cached(), [], 'every file remembered: no ack left in the cache');
  heartbeat(fx, hosts[0]!, NOW - MIN);
  const changed = await view(fx);
  assert.is(changed.hits, hosts.length - 1);
  assert.equal(cached(), []);
  assert.is((await view(fx)).hits, hosts.length);
  assert.equal(shown(changed.state), await cold(fx));
});

test.run();
