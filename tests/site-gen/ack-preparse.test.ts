// The helper thread's strict intake of the ack log (site-gen/ack-preparse.ts): it vouches only for
// records whose acks pass readAck, since the build then only decodes those (AckCache.primeTakenIn).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  appendFileSync,
  copyFileSync,
  existsSync,
  readFileSync,
  readdirSync,
  writeFileSync,
} from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { formatRecord, parseAckLog } from '../../protocol/ack-log.ts';
import { sha256Digest } from '../../protocol/canonical.ts';
import { ackDigest, type SignedAck } from '../../protocol/acks.ts';
import {
  hashedFilesOf,
  preparse,
  startAckPreparse,
  takeInLogRecords,
} from '../../site-gen/ack-preparse.ts';
import { AckCache, hostKeysOfPlans, readAckHistory } from '../../read-side/acks.ts';
import { AckWriter, NOW, createSiteFixture, type SiteFixture } from './fixture.ts';

const fixtures: SiteFixture[] = [];
test.after.each(() => {
  for (const f of fixtures.splice(0)) f.cleanup();
});

/** A fixture's log with records appended that frame correctly but hold acks readAck refuses. */
function logWithRefusedRecords(): { file: string; good: string[]; bad: string[] } {
  const f = createSiteFixture();
  fixtures.push(f);
  const file = join(f.treeDir, '.ack-log', 'acks.log');
  const good = parseAckLog(readFileSync(file), file).records.map((r) => r.digest);
  const sample = parseAckLog(readFileSync(file), file).records[0]!.canonical;
  const refused = [
    sample.replace('"kind":', '"extra":1,"kind":'), // a field the schema does not know
    sample.replace('"seq":', '"seq":1,"seq":'), // a duplicate key (strict JSON)
    sample.replace(/"host":"[^"]*"/, '"host":"\\ud800"'), // a lone surrogate
    sample.replace(/"seq":\d+/, '"seq":0'), // out of range
  ];
  for (const canonical of refused) {
    assert.is.not(canonical, sample);
    appendFileSync(file, formatRecord({ digest: sha256Digest(canonical), canonical }));
  }
  return { file, good, bad: refused.map((c) => sha256Digest(c)) };
}

test('only records whose acks pass the strict intake are vouched for', () => {
  const { file, good, bad } = logWithRefusedRecords();
  assert.ok(good.length > 12);
  const taken = takeInLogRecords({ segments: [file], windowBytes: 1 << 30 });
  assert.equal(taken, good);
  for (const d of bad) assert.not.ok(taken.includes(d));
});

test('a record whose bytes begin with a BOM is not vouched for: the build takes its bytes in itself', () => {
  const { file, good } = logWithRefusedRecords();
  const sample = parseAckLog(readFileSync(file), file).records[0]!.canonical;
  const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(sample, 'utf8')]);
  appendFileSync(
    file,
    Buffer.concat([Buffer.from(`${sha256Digest(bom)}\t`), bom, Buffer.from('\n')]),
  );
  const records = parseAckLog(readFileSync(file), file).records;
  assert.is(records.at(-1)!.digest, sha256Digest(bom));
  assert.equal(takeInLogRecords({ segments: [file], windowBytes: 1 << 30 }), good);
});

test('a segment larger than the window is left to the build (it reads only its tail)', () => {
  const { file } = logWithRefusedRecords();
  const size = readFileSync(file).length;
  assert.equal(takeInLogRecords({ segments: [file], windowBytes: size - 1 }), []);
  assert.is(takeInLogRecords({ segments: [file], windowBytes: size }).length > 0, true);
});

// From the TypeScript source and from the compiled file the shipped command loads (dist/, built by
// npm test before the tests run).
const DIST_WORKER = pathToFileURL(
  fileURLToPath(new URL('../../dist/ack-preparse-worker.js', import.meta.url)),
);
for (const [label, module] of [
  ['source', undefined],
  ['dist', DIST_WORKER],
] as const) {
  test(`the helper thread (${label}) vouches for the same records as the intake run here`, async () => {
    if (module && !existsSync(module))
      assert.unreachable('dist/ack-preparse-worker.js is missing: run npm run build');
    const { file, good } = logWithRefusedRecords();
    const running = startAckPreparse(file, 1 << 30, null, {
      always: true,
      ...(module ? { module } : {}),
    });
    assert.ok(running !== null);
    assert.equal((await running.result()).takenIn, good);
    // Too small a log to pay for a thread: none is started.
    assert.is(startAckPreparse(file, 1 << 30, null), null);
  });
}

test('a helper that cannot start is reported on stderr and vouches for nothing', async () => {
  const { file } = logWithRefusedRecords();
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on('warning', onWarning);
  try {
    const missing = pathToFileURL('/nonexistent/ack-preparse-worker.js');
    const running = startAckPreparse(file, 1 << 30, null, { always: true, module: missing });
    assert.equal((await running!.result()).takenIn, []);
    await new Promise((r) => setImmediate(r));
    assert.is(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, `ack intake helper thread (${missing.href}) failed`);
  } finally {
    process.off('warning', onWarning);
  }
});

test('a stopped helper vouches for nothing and ends', async () => {
  const { file } = logWithRefusedRecords();
  const running = startAckPreparse(file, 1 << 30, null, { always: true })!;
  running.stop();
  assert.equal((await running.result()).takenIn, []);
});

test('the ack cache decodes primed digests without the intake, for the build they were primed for', () => {
  const { file, bad } = logWithRefusedRecords();
  const records = parseAckLog(readFileSync(file), file).records;
  const byDigest = new Map(records.map((r) => [r.digest, r.canonical]));
  const parse = (cache: AckCache, digest: string) =>
    cache.parse(digest, () => Buffer.from(byDigest.get(digest)!, 'utf8'), 'acks.log');
  const refused = (r: unknown) => typeof r === 'object' && r !== null && 'code' in r;
  const cache = new AckCache();
  assert.ok(cache.cold);
  // Primed: taken as passed (so the helper must vouch only for what passed), decoded as is.
  cache.primeTakenIn([bad[0]!, bad[1]!]);
  const primed = parse(cache, bad[0]!);
  assert.not.ok(refused(primed));
  assert.is((primed as { signed: { extra?: number } }).signed.extra, 1);
  // Not primed: the strict intake refuses it.
  assert.ok(refused(parse(cache, bad[2]!)));
  // The next build starts without the primes it did not use.
  cache.commit();
  assert.ok(refused(parse(cache, bad[1]!)));
  assert.not.ok(cache.cold);
});

/**
 * A fixture whose latest-ack files are not all the log's: one host's file holds an ack the log does not
 * (written without logging it), another's an ack the schema refuses, a third's another host's logged
 * ack. Returns the fixture, its log, its hosts directory, the refused file and the other two hosts.
 */
function filesBesideTheLog() {
  const f = createSiteFixture();
  fixtures.push(f);
  const log = join(f.treeDir, '.ack-log', 'acks.log');
  const hostsDir = join(f.treeDir, 'acks', 'hosts');
  const { soaked: unlogged, soaking: refused, activating: misplaced, failed: owner } = f.roles;
  const tip = JSON.parse(readFileSync(join(hostsDir, `${unlogged}.json`), 'utf8')) as SignedAck;
  new AckWriter(f.treeDir, unlogged, f.hostKeys[unlogged]!, 'generated').write(
    { at: NOW - 1_000, kind: 'heartbeat', seq: tip.signed.seq + 1, prev: ackDigest(tip) },
    { log: false },
  );
  const refusedFile = join(hostsDir, `${refused}.json`);
  const text = readFileSync(refusedFile, 'utf8').replace('"kind":', '"extra":1,"kind":');
  assert.ok(text.includes('"extra":1'));
  writeFileSync(refusedFile, text);
  copyFileSync(join(hostsDir, `${owner}.json`), join(hostsDir, `${misplaced}.json`));
  return { f, log, hostsDir, refusedFile, unlogged, misplaced };
}

test("the helper hashes every latest-ack file and takes in those whose bytes are no log record's", () => {
  const { log, hostsDir, refusedFile, unlogged } = filesBesideTheLog();
  const logged = new Set(takeInLogRecords({ segments: [log], windowBytes: 1 << 30 }));
  const p = preparse({ segments: [log], windowBytes: 1 << 30, hostsDir });
  const names = readdirSync(hostsDir).sort();
  assert.equal(
    [...p.files.paths].sort(),
    names.map((n) => `${hostsDir}/${n}`),
  );
  p.files.paths.forEach((path, i) => {
    const bytes = readFileSync(path);
    assert.is(p.files.digests[i], sha256Digest(bytes));
    assert.is(p.files.sizes[i], bytes.length);
  });
  // The log's acks, then exactly the one file that passed and no record gave.
  const extra = p.takenIn.filter((d) => !logged.has(d));
  assert.equal(extra, [sha256Digest(readFileSync(join(hostsDir, `${unlogged}.json`)))]);
  assert.not.ok(p.takenIn.includes(sha256Digest(readFileSync(refusedFile))));
});

test('with the files the helper hashed, only those that no taken-in ack gave are read, and the history is the same', () => {
  const { f, log, hostsDir, refusedFile, unlogged, misplaced } = filesBesideTheLog();
  const p = preparse({ segments: [log], windowBytes: 1 << 30, hostsDir });
  const trust = { fleet: 'generated', hostKeys: hostKeysOfPlans(f.plans) };
  const read: string[] = [];
  const history = (hashed: boolean) => {
    const cache = new AckCache();
    cache.primeTakenIn(p.takenIn);
    return readAckHistory({
      acksDir: join(f.treeDir, 'acks'),
      logFile: log,
      bundles: false,
      trust,
      cache,
      signatures: 'chain-tips',
      ...(hashed ? { hashedFiles: hashedFilesOf(p) } : {}),
      readFile: (path, max) => {
        read.push(path);
        return readFileSync(path).subarray(0, max + 1);
      },
    });
  };
  const plain = history(false);
  assert.is(read.length, readdirSync(hostsDir).length);
  read.length = 0;
  const hashed = history(true);
  assert.equal(hashed.acks, plain.acks);
  assert.equal(hashed.rejected, plain.rejected);
  assert.equal(hashed.sources, plain.sources);
  // Read here: the unlogged ack and the refused one; the misplaced ack (another host's logged ack)
  // is refused as WrongHost without being read.
  assert.equal(read.sort(), [refusedFile, join(hostsDir, `${unlogged}.json`)].sort());
  const codes = hashed.rejected.map((r) => `${r.source} ${r.code}`).sort();
  assert.equal(codes, [
    `acks/hosts/${misplaced}.json WrongHost`,
    `acks/hosts/${refusedFile.slice(hostsDir.length + 1)} Malformed`,
  ]);
});

test('bytes that begin with a BOM, vouched for by an earlier run or primed, are taken in again, not decoded', () => {
  // The intake of the bytes drops the BOM and accepts them; their text keeps it, and JSON.parse
  // refuses that: decoding it would fail the build (a one-shot build after the first, with a store).
  const { file } = logWithRefusedRecords();
  const sample = parseAckLog(readFileSync(file), file).records[0]!.canonical;
  const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(sample, 'utf8')]);
  const digest = sha256Digest(bom);
  const earlier = new AckCache([[digest, 'some-host-key']]);
  const primed = new AckCache();
  primed.primeTakenIn([digest]);
  for (const cache of [earlier, primed]) {
    const r = cache.parse(
      digest,
      () => bom,
      'acks.log:1',
      () => bom.toString('utf8'),
    );
    assert.equal(r, JSON.parse(sample));
  }
});

test('an ack cache that forgot what it parsed takes the bytes in again and still knows what it verified', () => {
  const { file } = logWithRefusedRecords();
  const record = parseAckLog(readFileSync(file), file).records[0]!;
  const bytes = Buffer.from(record.canonical, 'utf8');
  let reads = 0;
  const read = () => {
    reads++;
    return bytes;
  };
  const cache = new AckCache();
  const first = cache.parse(record.digest, read, 'acks.log:1');
  cache.recordVerified(record.digest, 'key', true);
  cache.commit();
  assert.is(cache.parse(record.digest, read, 'acks.log:1'), first);
  assert.is(reads, 1);
  cache.forgetParsed();
  assert.equal(cache.parse(record.digest, read, 'acks.log:1'), first);
  assert.is(reads, 2);
  assert.is(cache.verifiedResult(record.digest, 'key'), true);
});

test.run();
