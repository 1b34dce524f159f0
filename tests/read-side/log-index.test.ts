// A warm `trace` takes the ack log's verified prefix from its index (read-side/log-index.ts): the signed
// acks a full read of those bytes verified, sealed in the operator cache and keyed by the prefix's
// digest (LogPrefixMemo). Checked here: the index holds exactly the parsed acks; the history and the
// trace read through it equal a full read's; records after it are still verified; a tampered or
// truncated log, or an index edited by hand, falls back to the full read (or refuses the record); the
// digest lookups (DigestTable, over one index or several); the newest segment's index saved in
// a file of its own, the others' not rewritten when only it changes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash, createHmac } from 'node:crypto';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { canonicalString } from '../../protocol/canonical.ts';
import { ackSegmentName, parseAckLog } from '../../protocol/ack-log.ts';
import { AckCache, LogPrefixMemo, claimedHost, type AckHistory } from '../../read-side/acks.ts';
import {
  beginsWithRecords,
  decodeLogPrefixIndex,
  DigestTable,
  encodeLogPrefixIndex,
  IndexedRecords,
  indexedRecordCount,
  isIndexOfStart,
  parseLogPrefixIndexLine,
  recordDigestsFrom,
  VarintReader,
  VarintWriter,
} from '../../read-side/log-index.ts';
import { loadAckHistory, traceScope } from '../../read-side/trace.ts';
import { loadVerifiedRelease } from '../../read-side/release.ts';
import type { AckRecord } from '../../reconciler/index.ts';
import {
  MIN,
  NOW,
  ROOT,
  chainedRollout,
  cleanupTempDirs,
  cutLogInto,
  logRecordCount,
  postAcks,
  tamperLogRecord,
  run,
  traceHost,
  type Fixture,
} from './fixture.ts';

test.after.each(cleanupTempDirs);

function rollout(): Fixture {
  const fx = chainedRollout('log-index', { first: 20, ch0: 12, ch1: 5, polling: 5 });
  // One ack with runtime evidence: another key list, and a composite value.
  const [e] = fx.wave('ch-1', 0);
  postAcks(fx, e!, [
    {
      kind: 'heartbeat',
      at: NOW - 3 * MIN,
      healthySince: NOW - 16 * MIN,
      evidence: [
        {
          framework: 'cis',
          control: 'aide',
          ok: true,
          exitCode: 0,
          outputDigest: `sha256:${'0'.repeat(64)}`,
          excerpt: 'ok',
        },
      ],
    },
  ]);
  return fx;
}

/** The log's records of `hosts`, parsed: what a full read takes in, in log order. */
function parsedRecords(fx: Fixture, hosts: ReadonlySet<string>) {
  return parseAckLog(readFileSync(fx.logFile), fx.logFile)
    .records.filter((r) => hosts.has(claimedHost(Buffer.from(r.canonical))!))
    .map((r) => ({
      digest: r.digest,
      signed: (JSON.parse(r.canonical) as { signed: AckRecord }).signed,
    }));
}

/** The frame of a test index (what encodeLogPrefixIndex is given besides the records). */
const frameOf = (file: string) => ({ file, fingerprint: 'f', bytes: 1, digest: 'd', lines: 1 });

/** The log's records a trace of one ch-1 wave-0 host reads, parsed, and the frame of their index. */
async function scopeRecords() {
  const fx = rollout();
  const release = await loadVerifiedRelease(fx.tree, ROOT, { now: NOW });
  const acks = parsedRecords(fx, traceScope(release, { host: fx.wave('ch-1', 0)[0]! }).hosts);
  return { fx, acks, of: frameOf(fx.logFile) };
}

test('an index decodes to exactly the signed acks it was built from (every field, in order)', async () => {
  const { acks, of } = await scopeRecords();
  assert.ok(
    acks.some((a) => a.signed.evidence !== undefined),
    'the fixture has an ack with evidence',
  );
  const index = encodeLogPrefixIndex(of, acks)!;
  const back = decodeLogPrefixIndex(JSON.parse(JSON.stringify(index)))!;
  assert.is(JSON.stringify(back), JSON.stringify(acks));
  // Composite values are shared by the acks that carry them, so frozen all the way down: a reader that
  // changed one ack's evidence would change every other's.
  const evidence = back.find((a) => a.signed.evidence !== undefined)!.signed.evidence!;
  const frozen = (v: unknown): boolean =>
    v === null ||
    typeof v !== 'object' ||
    (Object.isFrozen(v) && Object.values(v as object).every(frozen));
  assert.ok(
    frozen(evidence) && typeof evidence[0] === 'object',
    'evidence frozen, and its entries',
  );
  // Key lists of the same length that differ in one name are two shapes, not one.
  const { reason: _, ...rest } = acks[0]!.signed;
  const renamed = {
    digest: acks[1]!.digest,
    signed: { ...rest, zone: 'b' } as unknown as AckRecord,
  };
  const shapes = [acks[0]!, renamed];
  const twoShapes = encodeLogPrefixIndex(of, shapes)!;
  assert.is(twoShapes.shapes.length, 2);
  assert.is(JSON.stringify(decodeLogPrefixIndex(twoShapes)), JSON.stringify(shapes));
  assert.ok(
    acks.some((a) => acks.some((b) => b.digest === a.signed.prev)),
    'the fixture chains acks',
  );
  assert.not.ok(
    acks.some((a) => index.values.includes(a.digest)),
    'a chained prev points at the earlier record instead of repeating its digest',
  );
  // Not well formed: not decoded (the prefix is then read in full).
  const bytes = Buffer.from(index.records, 'base64');
  const withRecords = (b: number[] | Buffer) => ({
    ...index,
    records: Buffer.from(b).toString('base64'),
  });
  assert.is(decodeLogPrefixIndex(withRecords([...bytes, 0])), null, 'a byte after the last record');
  assert.is(decodeLogPrefixIndex(withRecords(bytes.subarray(1))), null, 'a record cut short');
  assert.is(
    decodeLogPrefixIndex(withRecords(bytes.subarray(0, -1))),
    null,
    'the last record cut short',
  );
  assert.is(decodeLogPrefixIndex({ ...index, values: [] }), null, 'a value position out of range');
  assert.is(decodeLogPrefixIndex({ ...index, shapes: [] }), null, 'a shape position out of range');
  const times = index.values.map((v) => (v === acks[0]!.signed.time ? 'at noon' : v));
  assert.is.not(
    JSON.stringify(times),
    JSON.stringify(index.values),
    'the first ack time is a value',
  );
  assert.is(decodeLogPrefixIndex({ ...index, values: times }), null, 'a time that is none');
  for (const field of ['host', 'fleet'] as const) {
    const at = index.values.indexOf(acks[0]!.signed[field]);
    const values = index.values.map((v, i) => (i === at ? 7 : v));
    assert.is(decodeLogPrefixIndex({ ...index, values }), null, `a ${field} that is no string`);
  }
  // A record whose only new value is its reason, that value dropped: a position one past the end.
  const again = { digest: acks[1]!.digest, signed: { ...acks[0]!.signed, reason: 'once' } };
  const last = encodeLogPrefixIndex(of, [acks[0]!, again])!;
  assert.is(last.values.at(-1), 'once');
  const fewer = { ...last, values: last.values.slice(0, -1) };
  assert.is(decodeLogPrefixIndex(fewer), null, 'a value position one past the end');
  const keys = index.shapes[0]!.length;
  const digestBytes = Buffer.from(index.digests, 'base64');
  const withDigests = (b: Buffer) => ({ ...index, digests: b.toString('base64') });
  const first = withDigests(digestBytes.subarray(0, 32));
  assert.is(
    decodeLogPrefixIndex({
      ...first,
      records: Buffer.from([0, ...Array(keys).fill(1)]).toString('base64'),
    }),
    null,
    'a prev pointing before the first record',
  );
  // The same with every other field as it was (only the prev names a record before the first).
  const r0 = new VarintReader(bytes);
  const shape = r0.next();
  const fields = index.shapes[shape]!.map(() => r0.next());
  fields[index.shapes[shape]!.indexOf('prev')] = 1;
  const w = new VarintWriter();
  for (const u of [shape, ...fields]) w.write(u);
  assert.is(
    decodeLogPrefixIndex({ ...first, records: w.bytes().toString('base64') }),
    null,
    'only the prev pointing before the first record',
  );
  assert.is(
    decodeLogPrefixIndex(withDigests(digestBytes.subarray(0, digestBytes.length - 1))),
    null,
    'a torn digest',
  );
  assert.is(
    decodeLogPrefixIndex({ ...index, digests: `${index.digests}!` }),
    null,
    'digests that are not exactly base64',
  );
  assert.is(
    decodeLogPrefixIndex(withDigests(digestBytes.subarray(32))),
    null,
    'one digest fewer than records',
  );
  // The digests are kept as their bytes (32 each), not as text: and each comes back as it went in.
  assert.is(digestBytes.length, 32 * acks.length);
  const records = IndexedRecords.open(index)!;
  const { table } = tableOf(records);
  acks.forEach((a, n) => {
    assert.is(records.digest(n), a.digest);
    assert.is(records.digest(table.find(a.digest)!.n), a.digest);
    assert.is(table.find(a.digest.toUpperCase()), null, 'only the canonical form');
  });
  // A digest that is not `sha256:` and 64 lowercase hex digits has no index (read in full).
  const odd = [{ ...acks[0]!, digest: acks[0]!.digest.toUpperCase() }];
  assert.is(encodeLogPrefixIndex(of, odd), null);
});

/** A DigestTable of `blocks`, and what add() said of each block's records. */
function tableOf(...blocks: IndexedRecords[]): { table: DigestTable; repeats: number[][] } {
  const table = new DigestTable();
  return { table, repeats: blocks.map((b) => [...table.add(b.digests)]) };
}

test('indexed records compare digests as bytes: a repeat of an earlier record, and a lookup', async () => {
  const { acks, of } = await scopeRecords();
  const a = acks[0]!;
  // Another ack of the same host signed at the same time (another digest), then `a` again.
  // Its digest differs from a's in the last hex digit only: compared in full, not by a prefix.
  const flip = (d: string, at: number) =>
    `${d.slice(0, at)}${d[at] === '0' ? '1' : '0'}${d.slice(at + 1)}`;
  const other = flip(a.digest, a.digest.length - 1);
  const twin = { digest: other, signed: { ...a.signed, seq: a.signed.seq + 1 } };
  const index = encodeLogPrefixIndex(of, [a, twin, a])!;
  const copy = JSON.parse(JSON.stringify(index)) as typeof index;
  const records = IndexedRecords.open(copy)!;
  assert.is(records.count, 3);
  // Opened once per index object (a view server keeps its indexes); another object is opened anew.
  assert.is(IndexedRecords.open(copy), records);
  assert.is.not(IndexedRecords.open(index), records);
  const { table, repeats } = tableOf(records);
  // Same host and time, another digest: not a repeat; the same digest again: a repeat.
  assert.equal(repeats, [[0, 0, 1]]);
  assert.is(table.find(a.digest)?.n, 0);
  assert.is(table.find(other)?.n, 1);
  assert.is(table.find(other)?.block, 0);
  // Every hex digit counts (high and low nibbles alike); the last one flipped is `other`'s (above).
  for (const at of [7, 8, 40, 41, 69])
    assert.is(table.find(flip(a.digest, at)), null, `digit ${at} differs`);
});

test('an index extended by later records equals the index of all of them (prev found in the base by its digest bytes)', async () => {
  const { acks, of } = await scopeRecords();
  const whole = JSON.stringify(encodeLogPrefixIndex(of, acks));
  for (const k of [1, Math.floor(acks.length / 2), acks.length - 1]) {
    const base = JSON.parse(JSON.stringify(encodeLogPrefixIndex(of, acks.slice(0, k))));
    assert.is(JSON.stringify(encodeLogPrefixIndex(of, acks.slice(k), base)), whole, `at ${k}`);
  }
  // A record repeating one of the base: its digest is found there (the first record with it).
  const a = acks[0]!;
  const again = encodeLogPrefixIndex(
    of,
    [{ ...acks[1]!, signed: { ...acks[1]!.signed, prev: a.digest } }],
    JSON.parse(whole),
  )!;
  const records = IndexedRecords.open(again)!;
  assert.is(records.ack(acks.length).prev, a.digest);
  assert.is(tableOf(records).table.find(a.digest)?.n, 0);
});

test('isIndexOfStart: an earlier index is the start of a prefix read through an index and records after it, by every digest', async () => {
  const { acks, of } = await scopeRecords();
  const digests = acks.map((a) => a.digest);
  const k = Math.floor(acks.length / 3);
  const m = 2 * k;
  const earlier = encodeLogPrefixIndex(of, acks.slice(0, k))!;
  const read = encodeLogPrefixIndex(of, acks.slice(0, m))!;
  assert.ok(isIndexOfStart(earlier, 'f', undefined, digests), 'no index read: all digests listed');
  assert.ok(isIndexOfStart(earlier, 'f', read, digests.slice(m)), 'read through a longer index');
  assert.ok(isIndexOfStart(read, 'f', earlier, digests.slice(k)), 'read through a shorter index');
  assert.ok(isIndexOfStart(read, 'f', earlier, digests.slice(k, m)), 'exactly the records read');
  assert.not.ok(isIndexOfStart(earlier, 'other', undefined, digests), 'another fingerprint');
  assert.not.ok(isIndexOfStart(read, 'f', undefined, digests.slice(0, m - 1)), 'fewer records');
  // One record of the earlier index differs (its last), in the listed digests or in the read index.
  const changed = [...digests];
  changed[k - 1] = acks.find((a, i) => i !== k - 1 && a.digest !== digests[k - 1])!.digest;
  assert.not.ok(isIndexOfStart(earlier, 'f', undefined, changed), 'a listed digest differs');
  const otherRead = encodeLogPrefixIndex(
    of,
    changed.slice(0, m).map((digest, i) => ({ digest, signed: acks[i]!.signed })),
  )!;
  assert.not.ok(
    isIndexOfStart(earlier, 'f', otherRead, digests.slice(m)),
    'an indexed digest differs',
  );
  // A listed digest with one character more, or under another algorithm's name of the same length.
  for (const [label, odd] of [
    ['longer', `${digests[k - 1]!}0`],
    ['another prefix', digests[k - 1]!.replace('sha256:', 'sha384:')],
  ] as const) {
    const listed = [...digests];
    listed[k - 1] = odd;
    assert.not.ok(isIndexOfStart(earlier, 'f', undefined, listed), `a listed digest ${label}`);
  }
  const later = [...digests];
  later[m - 1] = digests[k - 1]!;
  assert.not.ok(
    isIndexOfStart(read, 'f', earlier, later.slice(k)),
    'a digest after the read index differs',
  );
  // The digests from a record on, whether indexed or listed.
  assert.equal(recordDigestsFrom(read, digests.slice(m), k), digests.slice(k));
  assert.equal(recordDigestsFrom(earlier, digests.slice(k), m), digests.slice(m));
  assert.equal(recordDigestsFrom(undefined, digests, k), digests.slice(k));
});

test('DigestTable: a record found by its digest among several indexes, the first with it, also among digests that begin alike; repeats in its own index and earlier ones', async () => {
  const { fx, acks, of } = await scopeRecords();
  // Digests sharing their first 12 hex digits (the lookup's key) and differing after them.
  const head = 'sha256:0123456789ab';
  const tail = (c: string) => c.repeat(64 - 12);
  const d1 = `${head}${tail('1')}`;
  const d2 = `${head}${tail('2')}`;
  const d3 = `${head}${tail('3')}`;
  const index = encodeLogPrefixIndex(
    of,
    [d1, d2, d1, d3].map((digest, i) => ({ digest, signed: acks[i]!.signed })),
  )!;
  const records = IndexedRecords.open(index)!;
  // A second index (a later segment): d2 again, and d4, also beginning alike.
  const d4 = `${head}${tail('4')}`;
  const later = IndexedRecords.open(
    encodeLogPrefixIndex(
      { ...of, file: `${fx.logFile}.1` },
      [d4, d2].map((digest, i) => ({ digest, signed: acks[i]!.signed })),
    )!,
  )!;
  const { table, repeats } = tableOf(records, later);
  assert.equal(repeats, [
    [0, 0, 1, 0],
    [0, 1],
  ]);
  const at = (d: string) => {
    const f = table.find(d);
    return f === null ? null : [f.block, f.n];
  };
  assert.equal([d1, d2, d3, d4].map(at), [
    [0, 0],
    [0, 1],
    [0, 3],
    [1, 0],
  ]);
  assert.is(at(`${head}${tail('5')}`), null);
  assert.is(at(acks[0]!.digest), null);
  for (const d of ['sha256:', `sha256:${'z'.repeat(64)}`, d1.toUpperCase(), ''])
    assert.is(at(d), null, d);
});

test('DigestTable: thousands of records over several indexes (the table grows), each digest found at its first record', async () => {
  const { fx, acks, of } = await scopeRecords();
  // 3,000 digests, a fifth of them repeats of earlier ones, some sharing their first 4 bytes, in
  // indexes of 500 records (the table starts with 1,024 slots).
  const digests: string[] = [];
  for (let i = 0; i < 3000; i++) {
    const hex =
      i % 5 === 4
        ? digests[(i * 7919) % i]!.slice('sha256:'.length)
        : i % 50 === 0
          ? `abcdef01${createHash('sha256').update(`x${i}`).digest('hex').slice(8)}`
          : createHash('sha256').update(`d${i}`).digest('hex');
    digests.push(`sha256:${hex}`);
  }
  const blocks = Array.from({ length: 6 }, (_, b) =>
    IndexedRecords.open(
      encodeLogPrefixIndex(
        { ...of, file: `${fx.logFile}.${b}` },
        digests.slice(b * 500, (b + 1) * 500).map((digest, i) => ({
          digest,
          signed: acks[i % acks.length]!.signed,
        })),
      )!,
    )!,
  );
  const { table, repeats } = tableOf(...blocks);
  const first = new Map<string, number>();
  digests.forEach((d, i) => first.has(d) || first.set(d, i));
  assert.equal(
    repeats.flat(),
    digests.map((d, i) => (first.get(d) === i ? 0 : 1)),
  );
  for (const [d, i] of first) {
    const f = table.find(d)!;
    assert.equal([f.block, f.n], [Math.floor(i / 500), i % 500], d);
  }
});

test('DigestTable of one block: every digest of a large index found at its first record, absent and malformed ones not; an index of damaged digests holds no record', () => {
  // 5,000 digests, a fifth of them repeats of earlier ones, 100 sharing their first 4 bytes (the slot
  // they are placed by): each found at its first record, as a map from digest to first record says.
  const digests: string[] = [];
  for (let i = 0; i < 5000; i++) {
    const hex =
      i % 5 === 4 && i > 0
        ? digests[(i * 7919) % i]!.slice('sha256:'.length)
        : i % 50 === 0
          ? `abcdef01${createHash('sha256').update(`x${i}`).digest('hex').slice(8)}`
          : createHash('sha256').update(`d${i}`).digest('hex');
    digests.push(`sha256:${hex}`);
  }
  const first = new Map<string, number>();
  digests.forEach((d, i) => first.has(d) || first.set(d, i));
  const lookup = new DigestTable();
  lookup.add(Buffer.concat(digests.map((d) => Buffer.from(d.slice(7), 'hex'))));
  for (const [d, n] of first) assert.equal(lookup.find(d), { block: 0, n }, d);
  const absent = `sha256:abcdef01${'0'.repeat(56)}`;
  const otherName = digests[0]!.replace('sha256:', 'sha384:');
  const upper = digests[0]!.toUpperCase();
  for (const d of [absent, 'sha256:', `sha256:${'z'.repeat(64)}`, upper, otherName, ''])
    assert.is(lookup.find(d), null, d);
  // Digests that are not whole SHA-256s (33 bytes, valid base64 of the right length): a damaged index.
  const of = frameOf('f');
  const damaged = encodeLogPrefixIndex(of, [])!;
  assert.is(indexedRecordCount({ ...damaged, digests: Buffer.alloc(33).toString('base64') }), 0);
  assert.is(indexedRecordCount({ ...damaged, digests: Buffer.alloc(64).toString('base64') }), 2);
  const empty = new DigestTable();
  empty.add(Buffer.alloc(0));
  assert.is(empty.find(digests[0]!), null);
});

test('beginsWithRecords: replay checkpoints go only with an index that begins with the records they covered', async () => {
  const { acks, of } = await scopeRecords();
  const k = Math.floor(acks.length / 3);
  const m = 2 * k;
  const earlier = encodeLogPrefixIndex(of, acks.slice(0, k))!;
  const read = encodeLogPrefixIndex(of, acks.slice(0, m))!;
  assert.ok(beginsWithRecords(read, earlier, k), 'an extended index');
  assert.ok(beginsWithRecords(read, read, m), 'the same index');
  assert.ok(beginsWithRecords(read, read, 0), 'no record covered');
  assert.not.ok(beginsWithRecords(read, earlier, k + 1), 'more records than the read index held');
  assert.not.ok(beginsWithRecords(earlier, read, k + 1), 'an index shorter than what is covered');
  const refingered = encodeLogPrefixIndex({ ...of, fingerprint: 'g' }, acks.slice(0, m))!;
  assert.not.ok(beginsWithRecords(refingered, earlier, k), 'acks read under another trust');
  // The log rewritten at record k - 1 (another ack there): covered up to it, not past it.
  const swapped = acks.find((a, i) => i !== k - 1 && a.digest !== acks[k - 1]!.digest)!;
  const rewritten = encodeLogPrefixIndex(of, [
    ...acks.slice(0, k - 1),
    { ...acks[k - 1]!, digest: swapped.digest },
    ...acks.slice(k, m),
  ])!;
  assert.ok(beginsWithRecords(rewritten, earlier, k - 1), 'the records before the change');
  assert.not.ok(beginsWithRecords(rewritten, earlier, k), 'the changed record covered');
  // An index whose digests are not whole SHA-256s, on either side, begins with nothing.
  const damaged = { ...read, digests: Buffer.alloc(33).toString('base64') };
  assert.not.ok(beginsWithRecords(damaged, earlier, 0), 'a damaged index');
  assert.not.ok(beginsWithRecords(read, damaged, 0), 'a damaged read index');
});

test('varints: what the writer packs past its first 64 KiB reads back whole; the reader refuses a longer or cut varint', () => {
  // Every width from one byte to four (the largest and smallest of each), ~200 KiB in all: the
  // writer's buffer grows twice.
  const widths = [0, 0x7f, 0x80, 0x3fff, 0x4000, 0x1fffff, 0x200000, 0xfffffff];
  const values = Array.from({ length: 80_000 }, (_, i) => widths[i % widths.length]!);
  const w = new VarintWriter();
  for (const v of values) w.write(v);
  const bytes = w.bytes();
  assert.ok(bytes.length > 2 * 65_536, `${bytes.length} bytes`);
  const r = new VarintReader(bytes);
  const back: number[] = [];
  while (!r.done) back.push(r.next());
  assert.equal(back, values);
  assert.is(r.next(), -1, 'past the end');
  // Five bytes (more than 28 bits), and one cut before its last byte.
  assert.is(new VarintReader(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0x01])).next(), -1);
  assert.is(new VarintReader(Uint8Array.from([0x80, 0x80])).next(), -1);
});

test('a sealed index line of another shape is not believed; replays of another shape are dropped, the index kept', async () => {
  const { acks, of } = await scopeRecords();
  const replay = {
    key: 'k',
    records: 2,
    acks: [0, 1],
    checkpoint: { at: NOW, state: [], hosts: [], entries: [] },
  };
  const index = {
    ...encodeLogPrefixIndex(of, acks)!,
    identity: '2049:131:4096:1700000000000.5:1.7e+12',
    replays: [replay],
  };
  const line = (x: unknown) => parseLogPrefixIndexLine(JSON.stringify(x));
  assert.equal(line(index), index, 'as written');
  const { identity: _, ...noIdentity } = index;
  assert.equal(line(noIdentity), noIdentity, 'an index without the identity of its file');
  assert.is(parseLogPrefixIndexLine(`${JSON.stringify(index)}x`), null, 'not JSON');
  for (const [label, edit] of [
    ['null', null],
    ['an array', [index]],
    ['file', { ...index, file: 1 }],
    ['fingerprint', { ...index, fingerprint: null }],
    ['digest', { ...index, digest: 1 }],
    ['bytes', { ...index, bytes: 1.5 }],
    ['lines', { ...index, lines: '1' }],
    ['identity', { ...index, identity: 'a:b' }],
    ['identity no string', { ...index, identity: 7 }],
    ['values', { ...index, values: {} }],
    ['shapes', { ...index, shapes: {} }],
    ['a shape no list', { ...index, shapes: [...index.shapes, 'host'] }],
    ['a key no string', { ...index, shapes: [...index.shapes, ['host', 1]] }],
    ['digests', { ...index, digests: [] }],
    ['records', { ...index, records: null }],
  ] as const)
    assert.is(line(edit), null, label);
  // Replays of another shape: the index is still of use without them.
  const { replays: __, ...bare } = index;
  for (const [label, replays] of [
    ['no list', { 0: replay }],
    ['key', [{ ...replay, key: 1 }]],
    ['records', [{ ...replay, records: 2.5 }]],
    ['before no list', [{ ...replay, before: 'b' }]],
    ['a before no string', [{ ...replay, before: ['b', 2] }]],
    ['acks no list', [{ ...replay, acks: 0 }]],
    ['an ack below 0', [{ ...replay, acks: [0, -1] }]],
    ['an ack no integer', [{ ...replay, acks: [0.5] }]],
    ['an ack past the records, none before', [{ ...replay, acks: [0, 2] }]],
    ['no checkpoint', [{ ...replay, checkpoint: null }]],
    ['at', [{ ...replay, checkpoint: { ...replay.checkpoint, at: '1' } }]],
    ['state', [{ ...replay, checkpoint: { ...replay.checkpoint, state: {} } }]],
    ['hosts', [{ ...replay, checkpoint: { ...replay.checkpoint, hosts: {} } }]],
    ['entries', [{ ...replay, checkpoint: { ...replay.checkpoint, entries: 1 } }]],
    ['one of two', [replay, null]],
  ] as const)
    assert.equal(line({ ...index, replays }), bare, label);
  // With segments before it, a replay's record numbers count from theirs.
  const later = { ...replay, before: ['f d'], acks: [0, 5] };
  assert.equal(line({ ...index, replays: [later] }), { ...index, replays: [later] });
});

// Key order differs between strict intake and JSON.parse (the same ack): compare canonical forms.
const sortedJson = (xs: unknown[]) => xs.map((x) => canonicalString(x)).sort();
const sameHistory = (a: AckHistory, b: AckHistory, label: string) => {
  assert.equal(sortedJson(a.acks), sortedJson(b.acks), label);
  assert.equal([...a.digests].sort(), [...b.digests].sort(), `${label}: digests`);
  assert.equal(a.rejected, b.rejected, `${label}: rejected`);
  assert.is(a.sources.logRecords, b.sources.logRecords, `${label}: records`);
};

test('a warm read takes the verified prefix from its index; new records after it are verified and the index grows', async () => {
  const fx = rollout();
  const [e] = fx.wave('ch-1', 0);
  const release = await loadVerifiedRelease(fx.tree, ROOT, { now: NOW });
  const scope = traceScope(release, { host: e! });
  const read = (memo?: LogPrefixMemo) =>
    loadAckHistory(fx.tree, release, fx.logFile, new AckCache(), [], scope.hosts, memo);
  const indexed = (earlier: LogPrefixMemo) => {
    const memo = new LogPrefixMemo(earlier.used());
    memo.useIndexes(earlier.usedIndexes());
    return memo;
  };

  const full = read();
  const cold = new LogPrefixMemo();
  cold.useIndexes([]);
  sameHistory(read(cold), full, 'cold');
  assert.is(cold.indexHits, 0);
  assert.ok(cold.indexesChanged, 'the first full read builds the index');
  const [index] = cold.usedIndexes();
  assert.equal(
    [index!.bytes, index!.digest, indexedRecordCount(index!)],
    [cold.used()[0]!.bytes, cold.used()[0]!.digest, parsedRecords(fx, scope.hosts).length],
    "the index is the verified prefix's, with every record of the scope",
  );

  const warm = indexed(cold);
  const h = read(warm);
  assert.is(warm.indexHits, 1);
  sameHistory(h, full, 'warm, from the index');
  assert.equal(h.envelopes, [], 'no signatures kept: no envelopes');
  assert.not.ok(warm.indexesChanged, 'nothing new: the index is not rewritten');

  // A new record: the index gives the prefix, the record is verified, the index covers both.
  postAcks(fx, e!, [{ kind: 'heartbeat', at: NOW - 2 * MIN, healthySince: NOW - 16 * MIN }]);
  const grown = indexed(warm);
  const after = read(grown);
  assert.is(grown.indexHits, 1);
  sameHistory(after, read(), 'grown');
  assert.is(after.acks.length, full.acks.length + 1);
  assert.is(indexedRecordCount(grown.usedIndexes()[0]!), indexedRecordCount(index!) + 1);
  const rebuilt = new LogPrefixMemo();
  rebuilt.useIndexes([]);
  read(rebuilt);
  assert.equal(
    JSON.stringify(decodeLogPrefixIndex(grown.usedIndexes()[0]!)),
    JSON.stringify(decodeLogPrefixIndex(rebuilt.usedIndexes()[0]!)),
    'the index extended by the new record decodes as one built from the whole log',
  );
  const again = indexed(grown);
  sameHistory(read(again), after, 'from the grown index');
  assert.is(again.indexHits, 1);
});

test('a new record after the indexed prefix that does not verify is refused at its line, as without an index', async () => {
  const fx = rollout();
  const [e] = fx.wave('ch-1', 0);
  const release = await loadVerifiedRelease(fx.tree, ROOT, { now: NOW });
  const scope = traceScope(release, { host: e! });
  const memo = new LogPrefixMemo();
  memo.useIndexes([]);
  loadAckHistory(fx.tree, release, fx.logFile, new AckCache(), [], scope.hosts, memo);
  const lines = readFileSync(fx.logFile, 'utf8').split('\n').length - 1;
  // Signed by another host's key, in e's name: its frame is intact, its signature is not e's.
  postAcks(fx, e!, [{ kind: 'heartbeat', at: NOW - MIN }], fx.hostKeys[fx.wave('ch-0', 0)[0]!]);
  const warm = new LogPrefixMemo(memo.used());
  warm.useIndexes(memo.usedIndexes());
  const h = loadAckHistory(fx.tree, release, fx.logFile, new AckCache(), [], scope.hosts, warm);
  assert.is(warm.indexHits, 1);
  assert.equal(
    h.rejected.map((r) => `${r.source} ${r.code}`),
    [`${fx.logFile}:${lines + 1} UnknownKey`],
  );
  assert.not.ok(
    warm.usedIndexes().some((i) => i.bytes > memo.used()[0]!.bytes),
    'a prefix with a refused record is not kept, nor indexed',
  );
});

test('an unchanged log is not hashed again; a rewritten byte, an append or a truncation is (or reads the log in full)', async () => {
  const fx = rollout();
  const [e] = fx.wave('ch-1', 0);
  const release = await loadVerifiedRelease(fx.tree, ROOT, { now: NOW });
  const scope = traceScope(release, { host: e! });
  const read = (memo?: LogPrefixMemo) =>
    loadAckHistory(fx.tree, release, fx.logFile, new AckCache(), [], scope.hosts, memo);
  // The log was just written: a run "starting" a minute from now sees it clearly older than itself
  // (the racy rule); the waits below let the kernel's clock move past the times it remembered.
  const later = Date.now() + 60_000;
  const warmFrom = (earlier: LogPrefixMemo) => {
    const memo = new LogPrefixMemo(earlier.used(), later);
    memo.useIndexes(earlier.usedIndexes());
    return memo;
  };
  const tick = () => new Promise((r) => setTimeout(r, 50));
  const cold = new LogPrefixMemo([], later);
  cold.useIndexes([]);
  read(cold);
  const first = warmFrom(cold);
  sameHistory(read(first), read(), 'hashed');
  assert.equal([first.indexHits, first.identityHits], [1, 0]);
  assert.ok(first.indexesChanged, "the file's identity is kept with the index");
  assert.ok(first.usedIndexes()[0]!.identity !== undefined);
  const unchanged = warmFrom(first);
  sameHistory(read(unchanged), read(), 'unchanged file, not hashed');
  assert.equal([unchanged.indexHits, unchanged.identityHits], [1, 1]);
  assert.not.ok(unchanged.indexesChanged, 'nothing to rewrite');

  // Appended: hashed, the new record verified, the identity kept again with the grown index.
  await tick();
  postAcks(fx, e!, [{ kind: 'heartbeat', at: NOW - 2 * MIN, healthySince: NOW - 16 * MIN }]);
  const grown = warmFrom(unchanged);
  sameHistory(read(grown), read(), 'appended');
  assert.equal([grown.indexHits, grown.identityHits], [1, 0]);
  const settled = warmFrom(grown);
  read(settled);
  assert.equal([settled.indexHits, settled.identityHits], [1, 1]);

  // A torn tail (a crash mid-append): longer than its prefix, so hashed however old it is.
  await tick();
  appendFileSync(fx.logFile, 'sha256:0123');
  const torn = warmFrom(settled);
  read(torn);
  const tornAgain = warmFrom(torn);
  sameHistory(read(tornAgain), read(), 'torn tail');
  assert.equal([tornAgain.indexHits, tornAgain.identityHits], [1, 0]);

  // One byte of the prefix rewritten in place (same length, its frame digest made to match): hashed,
  // not believed, read in full: the record is refused as without a cache.
  await tick();
  const text = readFileSync(fx.logFile, 'utf8').split('\n');
  const i = text.findIndex((l) => l.includes(`"host":"${e}"`) && l.includes('"heartbeat"'));
  const forged = text[i]!.slice(72).replace(/("time":"[0-9T:-]+:)00Z"/, '$101Z"');
  assert.is.not(forged, text[i]!.slice(72));
  text[i] = `sha256:${createHash256(forged)}\t${forged}`;
  writeFileSync(fx.logFile, text.join('\n'));
  const rewritten = warmFrom(tornAgain);
  const h = read(rewritten);
  sameHistory(h, read(), 'rewritten byte');
  assert.equal([rewritten.indexHits, rewritten.identityHits], [0, 0]);
  assert.equal(
    h.rejected.map((r) => r.code),
    ['BadSignature'],
  );

  // Cut to its first half: shorter than the prefix, read in full.
  const again = warmFrom(rewritten);
  read(again);
  const kept = warmFrom(again);
  read(kept);
  await tick();
  const bytes = readFileSync(fx.logFile);
  truncateSync(fx.logFile, bytes.indexOf(0x0a, bytes.length >> 1) + 1);
  const cut = warmFrom(kept);
  sameHistory(read(cut), read(), 'truncated');
  assert.equal([cut.indexHits, cut.identityHits], [0, 0]);
});

const createHash256 = (text: string) => createHash('sha256').update(text).digest('hex');

test('trace --host with the index: the same trace as a full replay; a tampered or truncated log falls back; an edited index is not believed', async () => {
  const fx = rollout();
  const [a] = fx.wave('ch-0', 0);
  const [e] = fx.wave('ch-1', 0);
  const cache = join(fx.dir, 'cache');
  const full = await traceHost(fx, e!, null);
  assert.equal(await traceHost(fx, e!, cache), full, 'cold: builds the index');
  // One segment: its index is the newest segment's, in a file of its own.
  const indexFile = join(cache, 'trace.ch-1.log-index.current');
  const sealed = readFileSync(indexFile, 'utf8');
  assert.equal(await traceHost(fx, e!, cache), full, 'warm, from the index: the same trace');
  // A channel's trace (every ack instant, every host of it) reads through its own index alike.
  const channel = (cacheArgs: string[]) =>
    run(
      'trace',
      ...['--tree', fx.tree, '--root', fx.rootFile, '--acks-log', fx.logFile],
      ...['--now', new Date(NOW).toISOString(), '--channel', 'ch-1', '--json', ...cacheArgs],
    ).then((r) => (assert.is(r.code, 0, r.err), JSON.parse(r.out) as unknown));
  const channelFull = await channel(['--no-cache']);
  const channelDir = join(fx.dir, 'channel-cache');
  assert.equal(await channel(['--cache-dir', channelDir]), channelFull, 'channel, cold');
  assert.equal(await channel(['--cache-dir', channelDir]), channelFull, 'channel, from the index');
  assert.ok(existsSync(join(channelDir, 'trace.ch-1.log-index.current')));

  // The index is what a warm trace reads: one sealed with the directory key but saying otherwise is
  // believed (the premise of the checks below: the key is what protects it).
  const key = Buffer.from(readFileSync(join(cache, 'cache-key'), 'latin1').trim(), 'hex');
  const body = sealed.slice(0, sealed.lastIndexOf('mac '));
  const edited = body.replace('"activated"', '"failed"');
  assert.is.not(edited, body);
  const seal = (text: string) =>
    `${text}mac ${createHmac('sha256', key).update(text).digest('hex')}\n`;
  writeFileSync(indexFile, seal(edited), { mode: 0o600 });
  assert.is.not(
    JSON.stringify(await traceHost(fx, e!, cache)),
    JSON.stringify(full),
    'a sealed index is taken as verified',
  );
  // The same edit sealed under another format's header (v2: digests as text): not read as this one.
  assert.ok(edited.startsWith('nixfleet log-prefix-index v3\n'));
  const v1 = edited.replace('log-prefix-index v3', 'log-prefix-index v2');
  writeFileSync(indexFile, seal(v1), { mode: 0o600 });
  assert.equal(await traceHost(fx, e!, cache), full, 'sealed under another format: not read');
  // Edited without the key (the old MAC kept, or none): not believed, the log is read in full.
  writeFileSync(indexFile, `${edited}${sealed.slice(sealed.lastIndexOf('mac '))}`, {
    mode: 0o600,
  });
  assert.equal(await traceHost(fx, e!, cache), full, 'edited, old MAC');
  writeFileSync(indexFile, edited, { mode: 0o600 });
  assert.equal(await traceHost(fx, e!, cache), full, 'edited, no MAC');
  assert.equal(await traceHost(fx, e!, cache), full, 'rebuilt');

  // A tampered record of a gating peer and of the host: refused at their lines, as without a cache.
  const la = tamperLogRecord(fx, a!);
  const le = tamperLogRecord(fx, e!);
  const tampered = await traceHost(fx, e!, cache);
  assert.equal(
    tampered.history.rejected.map((x) => `${x.source} ${x.code}`).sort(),
    [`${fx.logFile}:${la} BadSignature`, `${fx.logFile}:${le} BadSignature`].sort(),
  );
  assert.equal(tampered, await traceHost(fx, e!, null), 'as a run without any cache');

  // Cut to its first half: shorter than the indexed prefix, read in full.
  const bytes = readFileSync(fx.logFile);
  truncateSync(fx.logFile, bytes.indexOf(0x0a, bytes.length >> 1) + 1);
  assert.equal(await traceHost(fx, e!, cache), await traceHost(fx, e!, null), 'truncated');
});

test('trace --host, warm with every cache, prints byte for byte what --no-cache prints (text and --json), for hosts held, starting and soaked', async () => {
  const fx = rollout();
  const hosts = [
    fx.wave('ch-0', 0)[0]!,
    fx.wave('ch-0', 1)[0]!,
    fx.wave('ch-1', 0)[0]!,
    fx.wave('ch-1', 1)[0]!,
  ];
  const cache = join(fx.dir, 'cache');
  const trace = async (host: string, json: boolean, cacheArgs: string[]) => {
    const r = await run(
      'trace',
      ...['--tree', fx.tree, '--root', fx.rootFile, '--acks-log', fx.logFile],
      ...['--now', new Date(NOW).toISOString(), '--host', host, ...(json ? ['--json'] : [])],
      ...cacheArgs,
    );
    assert.is(r.code, 0, r.err);
    return r.out;
  };
  let held = 0;
  for (const host of hosts)
    for (const json of [false, true]) {
      const plain = await trace(host, json, ['--no-cache']);
      if (!json && plain.includes('held by')) held++;
      assert.is(await trace(host, json, ['--cache-dir', cache]), plain, `${host} cold`);
      assert.is(await trace(host, json, ['--cache-dir', cache]), plain, `${host} warm`);
    }
  assert.ok(held >= 2, 'hosts held by gates were traced');
  assert.ok(existsSync(join(cache, 'trace.ch-1.log-index.current')), 'the warm runs read an index');
});

test('a segmented log: one index per segment; a tampered middle segment is read in full', async () => {
  const fx = rollout();
  const [e] = fx.wave('ch-1', 0);
  // The fixture's log as three segments of the control plane directory's log, as the endpoint rolls them.
  const logDir = join(fx.tree, '.ack-log');
  mkdirSync(logDir);
  const third = Math.ceil(logRecordCount(fx) / 3);
  const segments = cutLogInto(fx, [third, 2 * third], logDir);
  const trace = (cacheArgs: string[]) =>
    run(
      'trace',
      ...['--tree', fx.tree, '--root', fx.rootFile, '--now', new Date(NOW).toISOString()],
      ...['--host', e!, '--json', ...cacheArgs],
    ).then((r) => (assert.is(r.code, 0, r.err), JSON.parse(r.out) as { history: unknown }));
  const full = await trace(['--no-cache']);
  const cache = join(fx.dir, 'cache');
  assert.equal(await trace(['--cache-dir', cache]), full, 'cold');
  // The sealed segments' indexes in one file, the newest segment's in its own.
  const sealedFile = join(cache, 'trace.ch-1.log-index');
  const currentFile = join(cache, 'trace.ch-1.log-index.current');
  const lines = (file: string) => readFileSync(file, 'utf8').split('\n');
  assert.is(lines(sealedFile).length, 1 + 2 + 2, 'header, an index per sealed segment, MAC, end');
  assert.is(lines(currentFile).length, 1 + 1 + 2, "header, the newest segment's index, MAC, end");
  assert.ok(lines(sealedFile)[1]!.includes(ackSegmentName(0)));
  assert.ok(lines(currentFile)[1]!.includes(ackSegmentName(2)));
  const written = (file: string) => statSync(file).ino;
  const [sealedAt, currentAt] = [written(sealedFile), written(currentFile)];
  assert.equal(await trace(['--cache-dir', cache]), full, 'warm, from the indexes');
  // That run kept its replay checkpoints with the newest segment's index: only its file was written.
  assert.ok(lines(currentFile)[1]!.includes('"replays"'), 'checkpoints kept');
  assert.is.not(written(currentFile), currentAt);
  assert.is(written(sealedFile), sealedAt, "the sealed segments' indexes not rewritten");
  // The newest segment grows by a record: its index is extended, the others' still not rewritten.
  postAcks({ ...fx, logFile: segments[0]! }, e!, [{ kind: 'heartbeat', at: NOW - MIN }]);
  assert.equal(await trace(['--cache-dir', cache]), await trace(['--no-cache']), 'after an append');
  assert.ok(lines(currentFile)[1]!.includes('"replays"'), 'checkpoints kept again');
  assert.is(written(sealedFile), sealedAt, 'still not rewritten');
  // The middle segment rewritten (a record's time changed, its frame digest matching): refused.
  const middle = segments[1]!;
  const text = readFileSync(middle, 'utf8').split('\n');
  const i = text.findIndex((l) => l.includes('"kind":"heartbeat"'));
  const forged = text[i]!.slice(72).replace(/("time":"[0-9T:-]+:)00Z"/, '$101Z"');
  text[i] = `sha256:${createHash256(forged)}\t${forged}`;
  writeFileSync(middle, text.join('\n'));
  const tampered = await trace(['--cache-dir', cache]);
  assert.equal(tampered, await trace(['--no-cache']), 'as without a cache');
  assert.ok(JSON.stringify(tampered.history).includes('BadSignature'));
});

test.run();
