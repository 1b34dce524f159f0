// The ack log's files by name and the segment floors (protocol/ack-log.ts): which names are segments
// (exactly as ackSegmentName writes them, so no two names stand for one segment), how a path lists a
// log, and a floor's round trip and refusals. The framing of records is tested with the endpoint
// (tests/control-plane/ack-segments.test.ts) and by every history reader.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ACK_LOG_FILE,
  AckLogCorrupt,
  ackFloorName,
  ackSegmentName,
  formatRecord,
  isAckSegmentName,
  listAckFloors,
  listAckLogSegments,
  readAckFloor,
  writeAckFloor,
  type AckFloor,
} from '../../protocol/ack-log.ts';
import { logRecordOf, removeDir, tempDir } from '../control-plane/tree-fixture.ts';

const test = suite('protocol ack log files');
let dir: string;
test.before.each(() => {
  dir = tempDir('ack-log-files-');
});
test.after.each(() => removeDir(dir));

// Numbering past 999,999 and the strays a log would not write (a padded seventh digit, a sign, segment 0
// by number): tests/control-plane/ack-segments.test.ts. Here: what the name's pattern alone decides.
test('segment names are whole names of six to fifteen digits; nothing around them, no other suffix', () => {
  assert.ok(isAckSegmentName(ACK_LOG_FILE));
  assert.ok(isAckSegmentName(`acks-${'9'.repeat(15)}.log`), 'fifteen digits still are');
  for (const name of [
    'acks-000001.log.bak', // anchored at the end
    'old-acks-000001.log', // and at the start
    `acks-1${'0'.repeat(15)}.log`, // sixteen digits, even where the double would be exact
    'acks-000001.floor',
  ])
    assert.not.ok(isAckSegmentName(name), name);
});

test('listAckLogSegments: a directory by number, a segment for its directory, another file alone', () => {
  for (const index of [10, 2, 1_000_000]) writeFileSync(join(dir, ackSegmentName(index)), '');
  writeFileSync(join(dir, 'acks-000003.log.tmp'), '');
  writeFileSync(join(dir, ackFloorName(2)), '');
  const indexes = (path: string) => listAckLogSegments(path).map((s) => s.index);
  // By number, not by name: segment 1,000,000 has seven digits and sorts last.
  assert.equal(indexes(dir), [2, 10, 1_000_000]);
  assert.equal(listAckLogSegments(dir)[0]!.file, join(dir, ackSegmentName(2)));
  // A segment's name stands for its whole directory, even when that segment was archived.
  assert.equal(indexes(join(dir, ackSegmentName(10))), [2, 10, 1_000_000]);
  assert.equal(indexes(join(dir, ackSegmentName(7))), [2, 10, 1_000_000]);
  // Any other file is a log of one segment (a merged or copied log); a missing one, of none.
  const merged = join(dir, 'merged.log');
  writeFileSync(merged, '');
  assert.equal(listAckLogSegments(merged), [{ index: 0, file: merged }]);
  assert.equal(listAckLogSegments(join(dir, 'absent.log')), []);
  assert.equal(listAckLogSegments(join(dir, 'absent')), []);
  assert.equal(listAckLogSegments(join(dir, 'absent', ackSegmentName(1))), []);
});

test('listAckLogSegments: a directory that cannot be read is an error, not an empty log', () => {
  // A segment name under a file: looking it up fails with ENOTDIR, which must not read as "no history".
  const file = join(dir, 'plain');
  writeFileSync(file, '');
  assert.throws(
    () => listAckLogSegments(join(file, ackSegmentName(1))),
    (e: NodeJS.ErrnoException) => e.code === 'ENOTDIR',
  );
});

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected an error');
}

const DIGEST = `sha256:${'ab'.repeat(32)}`;
const FLOOR: AckFloor = {
  segment: 3,
  heads: [
    { host: 'web1', seq: 7, digest: DIGEST },
    { host: 'web2', seq: 1, digest: `sha256:${'0'.repeat(64)}` },
  ],
};

test('a floor round-trips, is written 0640 and is listed by the segment it starts', () => {
  const file = join(dir, ackFloorName(3));
  writeAckFloor(file, FLOOR);
  assert.equal(readAckFloor(file), FLOOR);
  assert.is(statSync(file).mode & 0o777, 0o640);
  writeFileSync(join(dir, ackSegmentName(3)), '');
  writeFileSync(join(dir, 'acks-3.floor'), '');
  assert.equal(listAckFloors(dir), [{ index: 3, file }]);
  assert.equal(listAckFloors(join(dir, 'absent')), []);
});

/** A floor file holding `records` (bodies framed and checksummed as writeAckFloor frames them). */
function floorFile(...records: unknown[]): string {
  const file = join(dir, ackFloorName(3));
  writeFileSync(file, Buffer.concat(records.map((r) => formatRecord(logRecordOf(r)))));
  return file;
}

const floorBody = (over: Record<string, unknown>) => ({
  type: 'ack-log-floor',
  version: 1,
  ...FLOOR,
  ...over,
});

test('a floor is refused unless it is one intact version 1 floor, down to each head', () => {
  const refused = (file: string, why: RegExp | string) => {
    const e = thrown(() => readAckFloor(file));
    assert.ok(e instanceof AckLogCorrupt, String(e));
    assert.is(e.file, file);
    assert.match(e.message, why);
  };
  const whole = /not one checksummed version 1 ack log floor/;
  refused(floorFile(floorBody({}), floorBody({})), whole);
  const torn = floorFile(floorBody({}));
  writeFileSync(torn, `${formatRecord({ digest: DIGEST, canonical: '{}' }).slice(0, 30)}`, {
    flag: 'a',
  });
  refused(torn, whole);
  refused(floorFile(floorBody({ type: 'ack-log-snapshot' })), whole);
  refused(floorFile(floorBody({ version: 2 })), whole);
  refused(floorFile(floorBody({ segment: 0 })), whole);
  refused(floorFile(floorBody({ segment: 1.5 })), whole);
  refused(floorFile(floorBody({ heads: {} })), whole);
  const head = /heads\[1\] is not one host's seq and SHA-256 digest, or names a host again/;
  const first = FLOOR.heads[0]!;
  for (const bad of [
    null,
    'web2',
    { ...first, host: 7 },
    { ...first, host: 'web2', seq: 0 },
    { ...first, host: 'web2', seq: '8' },
    { ...first, host: 'web2', digest: DIGEST.toUpperCase() },
    { ...first, host: 'web2', digest: `sha384:${'ab'.repeat(32)}` },
    { ...first, host: 'web2', digest: `${DIGEST}0` },
    { ...first, seq: 8 },
  ])
    refused(floorFile(floorBody({ heads: [first, bad] })), head);
  // Nothing is refused that writeAckFloor writes.
  mkdirSync(join(dir, 'ok'));
  writeAckFloor(join(dir, 'ok', ackFloorName(1)), { segment: 1, heads: [] });
  assert.equal(readAckFloor(join(dir, 'ok', ackFloorName(1))), { segment: 1, heads: [] });
});

test.run();
