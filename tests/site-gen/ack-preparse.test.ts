// The helper thread's strict intake of the ack log (site-gen/ack-preparse.ts): it vouches only for
// records whose acks pass readAck, since the build then only decodes those (AckCache.primeTakenIn).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatRecord, parseAckLog } from '../../protocol/ack-log.ts';
import { sha256Digest } from '../../protocol/canonical.ts';
import { startAckPreparse, takeInLogRecords } from '../../site-gen/ack-preparse.ts';
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

test('the helper thread vouches for the same records as the intake run here', async () => {
  const { file, good } = logWithRefusedRecords();
  const running = startAckPreparse(file, 1 << 30, { always: true });
  assert.ok(running !== null);
  assert.equal(await running, good);
  // Too small a log to pay for a thread: none is started.
  assert.is(startAckPreparse(file, 1 << 30), null);
});

test.run();
