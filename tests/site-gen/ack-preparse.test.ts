// The helper thread's strict intake of the ack log (site-gen/ack-preparse.ts): it vouches only for
// records whose acks pass readAck, since the build then only decodes those (AckCache.primeTakenIn).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { formatRecord, parseAckLog } from '../../protocol/ack-log.ts';
import { sha256Digest } from '../../protocol/canonical.ts';
import { startAckPreparse, takeInLogRecords } from '../../site-gen/ack-preparse.ts';
import { AckCache } from '../../read-side/acks.ts';
import { createSiteFixture, type SiteFixture } from './fixture.ts';

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
    const running = startAckPreparse(file, 1 << 30, {
      always: true,
      ...(module ? { module } : {}),
    });
    assert.ok(running !== null);
    assert.equal(await running.digests(), good);
    // Too small a log to pay for a thread: none is started.
    assert.is(startAckPreparse(file, 1 << 30), null);
  });
}

test('a helper that cannot start is reported on stderr and vouches for nothing', async () => {
  const { file } = logWithRefusedRecords();
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on('warning', onWarning);
  try {
    const missing = pathToFileURL('/nonexistent/ack-preparse-worker.js');
    const running = startAckPreparse(file, 1 << 30, { always: true, module: missing });
    assert.equal(await running!.digests(), []);
    await new Promise((r) => setImmediate(r));
    assert.is(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, `ack intake helper thread (${missing.href}) failed`);
  } finally {
    process.off('warning', onWarning);
  }
});

test('a stopped helper vouches for nothing and ends', async () => {
  const { file } = logWithRefusedRecords();
  const running = startAckPreparse(file, 1 << 30, { always: true })!;
  running.stop();
  assert.equal(await running.digests(), []);
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

test.run();
