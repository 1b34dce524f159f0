// The parts of the operator read side the dashboard (site-gen) relies on: the stale mode of the release
// loader, the windowed / corruption-tolerant log read, the AckCache of watch mode, per-host history.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { appendFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AckCache,
  ackHistoryByHost,
  ackTrustOf,
  acksDirOf,
  loadReleaseAllowingStale,
  loadVerifiedRelease,
  readAckHistory,
  readPinnedRoot,
  type AckHistoryOptions,
  type VerifiedRelease,
} from '../../read-side/load.ts';
import { Stale } from '../../protocol/errors.ts';
import { AckLogCorrupt, formatRecord } from '../../protocol/ack-log.ts';
import { ackDigest, signAck } from '../../protocol/acks.ts';
import { canonicalString, sha256Digest } from '../../protocol/canonical.ts';
import { latestAcks, type AckRecord } from '../../reconciler/index.ts';
import {
  NOW,
  MIN,
  cleanupTempDirs,
  lifecycle,
  postAcks,
  publishedFixture,
  tempDir,
  type Fixture,
} from './fixture.ts';

test.after.each(cleanupTempDirs);

const expiresOf = (fx: Fixture) =>
  Date.parse(
    (
      JSON.parse(readFileSync(join(fx.tree, 'timestamp.json'), 'utf8')) as {
        signed: { expires: string };
      }
    ).signed.expires,
  );

test('allowing stale: verified when fresh; an expired timestamp still yields the documents as of its last valid second', async () => {
  const fx = publishedFixture();
  const root = readPinnedRoot(fx.rootFile);
  const fresh = await loadReleaseAllowingStale(fx.tree, root, { now: NOW });
  assert.is(fresh.status, 'verified');
  if (fresh.status === 'verified') {
    assert.equal(
      fresh.release.chain.map((r) => r.signed.version),
      [1],
    );
    assert.is(fresh.release.root.version, 1);
  }
  const expires = expiresOf(fx);
  const later = expires + 10 * MIN;
  // The strict loader refuses...
  await loadVerifiedRelease(fx.tree, root, { now: later }).then(
    () => assert.unreachable('an expired timestamp was accepted'),
    (e: unknown) => assert.ok(e instanceof Stale && e.file === 'timestamp.json', String(e)),
  );
  // ...the dashboard's shows the frozen release, saying why and as of when.
  const stale = await loadReleaseAllowingStale(fx.tree, root, { now: later });
  assert.is(stale.status, 'stale');
  if (stale.status !== 'stale') return;
  assert.equal([stale.failure.code, stale.failure.file], ['Stale', 'timestamp.json']);
  assert.is(stale.verifiedAsOf, expires - 1000);
  assert.equal(Object.keys(stale.release.plans), ['ch-0', 'ch-1']);
  assert.is(stale.release.report.release.version, 1);
});

test('allowing stale: a tampered plan, a tampered-and-expired tree, no tree at all -> failed with the typed error', async () => {
  const fx = publishedFixture();
  const root = readPinnedRoot(fx.rootFile);
  const file = 'releases/1/channels/ch-1.json';
  writeFileSync(
    join(fx.tree, file),
    readFileSync(join(fx.tree, file), 'utf8').replace('"soakSeconds":300', '"soakSeconds":30'),
  );
  for (const now of [NOW, expiresOf(fx) + MIN]) {
    const r = await loadReleaseAllowingStale(fx.tree, root, { now });
    assert.is(r.status, 'failed');
    if (r.status === 'failed' && now === NOW)
      assert.equal([r.failure.code, r.failure.file], ['BadSignature', file]);
    // expired AND tampered: the stale retry must not hide the tampering
    if (r.status === 'failed' && now !== NOW) assert.is(r.failure.file, file);
  }
  const empty = await loadReleaseAllowingStale(join(tempDir('none'), 'missing'), root, {
    now: NOW,
  });
  assert.equal(empty.status === 'failed' ? empty.failure.code : empty.status, 'Stale');
});

test('the loaded documents are the ones the report verified: one walk, nothing re-read', async () => {
  const fx = publishedFixture();
  const release = await loadVerifiedRelease(fx.tree, readPinnedRoot(fx.rootFile), { now: NOW });
  assert.is(release.index.version, release.report.release.version);
  assert.is(release.timestamp.issuedAt, release.report.timestamp.issuedAt);
  assert.is(release.root.version, release.report.root.version);
  assert.equal(Object.keys(release.plans), release.report.release.channels);
});

async function historyFixture(): Promise<{
  fx: Fixture;
  release: VerifiedRelease;
  opts: AckHistoryOptions;
  host: string;
}> {
  const fx = publishedFixture();
  const [host] = fx.wave('ch-0', 0);
  postAcks(fx, host!, lifecycle(NOW - 40 * MIN, NOW - MIN));
  const release = await loadVerifiedRelease(fx.tree, readPinnedRoot(fx.rootFile), { now: NOW });
  return {
    fx,
    release,
    host: host!,
    opts: { acksDir: acksDirOf(fx.tree), logFile: fx.logFile, trust: ackTrustOf(release) },
  };
}

test('history: log + tree counted once; a window reads only the newest records from a record boundary', async () => {
  const { fx, opts, host } = await historyFixture();
  const whole = readAckHistory(opts);
  const n = readFileSync(fx.logFile, 'utf8').split('\n').filter(Boolean).length;
  assert.is(whole.acks.length, n, 'the latest file repeats the last log record');
  assert.equal(whole.sources, {
    log: fx.logFile,
    logRecords: n,
    logTornBytes: 0,
    logSkippedBytes: 0,
    treeAcks: true,
    latestFiles: 1,
  });

  const size = statSync(fx.logFile).size;
  const windowed = readAckHistory({
    ...opts,
    log: { windowBytes: Math.floor(size / 3), label: 'acks.log' },
  });
  assert.is(windowed.rejected.length, 0, 'the cut record is dropped, not reported');
  assert.ok(
    windowed.sources.logRecords > 0 && windowed.sources.logRecords < n,
    `${windowed.sources.logRecords} of ${n}`,
  );
  assert.ok(windowed.sources.logSkippedBytes > size - Math.floor(size / 3) - 1);
  const seqs = ackHistoryByHost(windowed.acks)
    .get(host)!
    .map((a) => a.seq);
  assert.equal(
    seqs,
    Array.from({ length: seqs.length }, (_, i) => n - seqs.length + 1 + i),
    'the newest records, contiguous',
  );
});

test('history: a corrupt log throws by default; with onCorrupt "reject" it is reported and the tree acks still count', async () => {
  const { fx, opts } = await historyFixture();
  const lines = readFileSync(fx.logFile, 'utf8').split('\n');
  lines[2] = lines[2]!.replace('sha256:', 'sha256:0');
  writeFileSync(fx.logFile, lines.join('\n'));
  assert.throws(
    () => readAckHistory(opts),
    (e: unknown) => e instanceof AckLogCorrupt,
  );
  const r = readAckHistory({ ...opts, log: { onCorrupt: 'reject', label: 'acks.log' } });
  assert.equal(
    r.rejected.map((x) => [x.source, x.code]),
    [['acks.log', 'AckLogCorrupt']],
  );
  assert.match(r.rejected[0]!.reason, 'corrupt record at byte');
  assert.is(r.sources.logRecords, 0);
  assert.is(r.acks.length, 1, "the host's latest ack from acks/hosts/");
});

test('AckCache: the same result from the cache, rejections included; commit keeps only what the last intake used', async () => {
  const { fx, opts, host } = await historyFixture();
  // One altered ack in the log: rejected on every intake, the second time from the cache.
  const last = JSON.parse(readFileSync(join(fx.tree, 'acks', 'hosts', `${host}.json`), 'utf8'));
  const altered = {
    ...last,
    signed: { ...last.signed, seq: last.signed.seq + 1, prev: ackDigest(last), reason: 'altered' },
  };
  const canonical = canonicalString(altered);
  appendFileSync(fx.logFile, formatRecord({ digest: sha256Digest(canonical), canonical }));
  const cache = new AckCache();
  const first = readAckHistory({ ...opts, cache });
  cache.commit();
  const second = readAckHistory({ ...opts, cache });
  cache.commit();
  assert.equal(second.acks, first.acks);
  assert.equal(second.rejected, first.rejected);
  assert.equal(
    second.rejected.map((r) => r.code),
    ['BadSignature'],
  );
  assert.is(cache.size, first.sources.logRecords);
  // An intake of the tree only: the log's entries are dropped at commit.
  readAckHistory({ ...opts, logFile: null, cache });
  cache.commit();
  assert.is(cache.size, 1);
});

test('bundles can be left out; an ack of another fleet in a bundle is then not read at all', async () => {
  const { fx, opts, host } = await historyFixture();
  const last = JSON.parse(readFileSync(join(fx.tree, 'acks', 'hosts', `${host}.json`), 'utf8'));
  const foreign = signAck(
    { ...last.signed, fleet: 'other-fleet', seq: last.signed.seq + 1, prev: ackDigest(last) },
    fx.hostKeys[host]!,
  );
  mkdirSync(join(fx.tree, 'acks', 'channels', 'ch-0'), { recursive: true });
  writeFileSync(
    join(fx.tree, 'acks', 'channels', 'ch-0', 'wave-0.json'),
    canonicalString({
      type: 'ack-bundle',
      schemaVersion: 1,
      fleet: 'generated',
      channel: 'ch-0',
      wave: 0,
      generatedAt: '2030-03-01T11:59:00Z',
      acks: [foreign],
    }),
  );
  assert.equal(
    readAckHistory(opts).rejected.map((r) => [r.source, r.code]),
    [['acks/channels/ch-0/wave-0.json#0', 'WrongFleet']],
  );
  assert.equal(readAckHistory({ ...opts, bundles: false }).rejected, []);
});

test('ackHistoryByHost: hosts sorted, each oldest first, one ack per seq (a fork resolves like latestAcks)', async () => {
  const a = (host: string, seq: number, reason: string | null = null) =>
    ({ host, seq, reason }) as unknown as AckRecord;
  const input = [a('b', 2), a('a', 3), a('b', 1), a('a', 1), a('a', 3, 'z'), a('a', 3, 'b')];
  const h = ackHistoryByHost(input);
  assert.equal([...h.keys()], ['a', 'b']);
  assert.equal(
    h.get('a')!.map((x) => [x.seq, x.reason]),
    [
      [1, null],
      [3, 'b'],
    ],
  );
  assert.is(latestAcks(input).a, h.get('a')![1], 'the same fork wins in both');
  assert.equal(
    h.get('b')!.map((x) => x.seq),
    [1, 2],
  );
});

test.run();
