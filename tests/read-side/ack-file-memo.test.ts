// The latest-ack file memo of `nixfleet status` (read-side/ack-file-memo.ts): a warm view recalls an
// unchanged file by its identity (device, inode, size, mtime, ctime) instead of reading it; a file
// rewritten in place with its size and mtime kept is read again (its ctime moved), a tampered ack is
// still refused with a warm memo, a memo edited by hand is ignored whole, and a file changed within
// RACY_MS of the run's start is never remembered. Real published tree, real signed acks, the real store.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHmac } from 'node:crypto';
import {
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { canonicalString, sha256Digest } from '../../protocol/canonical.ts';
import { isoTime } from '../../protocol/schemas/common.ts';
import { bundleJson } from '../../control-plane/ack-publisher.ts';
import { loadFleetState, readPinnedRoot, type FleetState } from '../../read-side/load.ts';
import { openVerifiedAckStore } from '../../read-side/verified-cache.ts';
import { RACY_MS } from '../../read-side/ack-file-memo.ts';
import {
  MIN,
  NOW,
  cleanupTempDirs,
  lifecycle,
  postAcks,
  publishedFixture,
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
    ackFiles: () => store.ackFiles,
    memo: store.documents,
  });
  store.save();
  return { state, hits: store.ackFiles.hits };
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
const memoFile = (fx: Fixture) => join(fx.dir, 'cache', 'status.ack-files');

test('a warm view recalls every unchanged latest-ack file and shows what a view without any cache shows', async () => {
  const { fx } = rolledOut();
  const first = await view(fx);
  assert.is(first.hits, 0);
  const warm = await view(fx);
  assert.is(warm.hits, filesOf(fx).length);
  assert.equal(shown(warm.state), await cold(fx));
  assert.equal(shown(warm.state), shown(first.state));
});

test('the memo stands in for the file: an entry sealed with the directory key is what the view takes in (and it is still verified)', async () => {
  const { fx, hosts } = rolledOut();
  const h = hosts[0]!;
  await view(fx);
  // The premise of every other test: a warm view reads the memo, not the file. An older genuine ack
  // of h, sealed in h's entry (for the file's identity now) with the directory's key, is what the
  // view then shows for h.
  const file = join(fx.tree, 'acks', 'hosts', `${h}.json`);
  const newest = readFileSync(file);
  const olderText = canonicalString(
    postAcks(fx, h, lifecycle(NOW - 20 * MIN, NOW - 10 * MIN)).at(-1)!,
  );
  writeFileSync(file, newest);
  const st = statSync(file);
  const identity = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
  const key = Buffer.from(readFileSync(join(fx.dir, 'cache', 'cache-key'), 'latin1').trim(), 'hex');
  const sealed = (entries: string[]) => {
    const text = `${entries.join('\n')}\n`;
    return `${text}mac ${createHmac('sha256', key).update(text).digest('hex')}\n`;
  };
  const lines = readFileSync(memoFile(fx), 'utf8')
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('mac ') && l.split('\t')[2] !== file);
  const entry = (text: string) =>
    `${identity}\t${sha256Digest(Buffer.from(text))}\t${file}\t${text}`;
  writeFileSync(memoFile(fx), sealed([...lines, entry(olderText)]));
  const warm = await view(fx);
  assert.is(warm.hits, filesOf(fx).length);
  assert.is(
    warm.state.view.hosts.find((x) => x.host === h)!.lastAck,
    Date.parse((JSON.parse(olderText) as { signed: { time: string } }).signed.time),
    'the sealed entry was taken in instead of the file',
  );
  // A sealed entry is still only bytes: one that does not verify is refused as a read file would be.
  const forged = olderText.replace(
    /"sig":"(.)/,
    (_m, c: string) => `"sig":"${c === 'A' ? 'B' : 'A'}`,
  );
  writeFileSync(memoFile(fx), sealed([...lines, entry(forged)]));
  const refused = await view(fx);
  assert.equal(
    refused.state.acks.rejected.map((r) => [r.source, r.code]),
    [[`acks/hosts/${h}.json`, 'BadSignature']],
  );
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
  const tampered = bytes.replace(
    /"sig":"(.)/,
    (_m, c: string) => `"sig":"${c === 'A' ? 'B' : 'A'}`,
  );
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
  const h = hosts[2]!;
  await view(fx);
  const text = readFileSync(memoFile(fx), 'utf8');
  // h's entry made to hold another host's ack (its digest updated to match), the MAC kept.
  const other = readFileSync(join(fx.tree, 'acks', 'hosts', `${hosts[3]}.json`), 'utf8');
  const file = join(fx.tree, 'acks', 'hosts', `${h}.json`);
  const edited = text
    .split('\n')
    .map((l) => {
      const parts = l.split('\t');
      return parts[2] === file
        ? [parts[0], sha256Digest(Buffer.from(other)), file, other].join('\t')
        : l;
    })
    .join('\n');
  assert.is.not(edited, text);
  for (const [label, content] of [
    ['an entry edited, the MAC kept', edited],
    ['an entry edited, no MAC', edited.replace(/mac [0-9a-f]{64}\n$/, '')],
  ] as const) {
    writeFileSync(memoFile(fx), content, { mode: 0o600 });
    const warm = await view(fx);
    assert.is(warm.hits, 0, label);
    assert.equal(shown(warm.state), await cold(fx), label);
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
  const before = statSync(bundle);
  const text = readFileSync(bundle, 'utf8');
  writeFileSync(
    bundle,
    text.replace(/"sig":"(.)/, (_m, c: string) => `"sig":"${c === 'A' ? 'B' : 'A'}`),
  );
  utimesSync(bundle, before.atime, before.mtime);
  assert.is(statSync(bundle).mtimeMs, before.mtimeMs);
  const forged = await view(fx);
  assert.is(forged.hits, files + 1);
  assert.equal(
    forged.state.acks.rejected.map((r) => [r.source.replace(/#.*/, ''), r.code]),
    [['acks/channels/ch-0/wave-1.json', 'BadSignature']],
  );
  assert.equal(shown(forged.state), await cold(fx));
});

test("git's racy rule: a file changed within RACY_MS of the run's start is not remembered, so the next run reads it", async () => {
  const { fx } = rolledOut();
  // The real clock: every file was written just now, none is clearly older than the run.
  await view(fx, Date.now());
  const next = await view(fx, Date.now());
  assert.is(next.hits, 0);
  // The same files seen by a run that starts well after them are remembered.
  await view(fx);
  assert.is((await view(fx)).hits, filesOf(fx).length);
});

test.run();
