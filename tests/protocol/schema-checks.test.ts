// The protocol schemas' cheaper checks refuse exactly what the checks they replaced refused:
// IsoTime's calendar check (was a round trip through Date), FileRef's ".." segment check (was
// split('/')), the envelope's `signed` object (was z.record(z.string(), z.unknown())).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { z } from 'zod';
import {
  FileRef,
  IsoTime,
  hasParentSegment,
  isCalendarTime,
} from '../../protocol/schemas/common.ts';
import { Envelope, SignatureEntry } from '../../protocol/schemas/envelope.ts';
import { parseWith } from '../../protocol/schemas/parse.ts';

/** The check IsoTime made before isCalendarTime. */
const dateRoundTrip = (s: string) =>
  !Number.isNaN(Date.parse(s)) && new Date(Date.parse(s)).toISOString().slice(0, 19) + 'Z' === s;

const pad = (n: number, width: number) => String(n).padStart(width, '0');

test('isCalendarTime accepts exactly what the Date round trip accepts', () => {
  // Leap-year rules (divisible by 4, not by 100 unless by 400), year 0, the ends of every month,
  // and each field just past its range.
  const years = [0, 1, 4, 100, 400, 1600, 1700, 1900, 1970, 2000, 2023, 2024, 2100, 2400, 9999];
  let accepted = 0;
  let checked = 0;
  for (const y of years)
    for (let mo = 0; mo <= 13; mo++)
      for (let d = 0; d <= 32; d++)
        for (const h of [0, 1, 23, 24, 99])
          for (const mi of [0, 59, 60])
            for (const s of [0, 30, 59, 60, 99]) {
              const t = `${pad(y, 4)}-${pad(mo, 2)}-${pad(d, 2)}T${pad(h, 2)}:${pad(mi, 2)}:${pad(s, 2)}Z`;
              const want = dateRoundTrip(t);
              if (isCalendarTime(t) !== want) assert.unreachable(`${t}: expected ${want}`);
              checked++;
              if (want) accepted++;
            }
  // Both sides of the line were exercised.
  assert.ok(accepted > 10_000 && checked - accepted > 10_000, `${accepted} of ${checked}`);
  // Strings of another shape (zod runs the refinement after the failed pattern too).
  for (const t of [
    '2026-01-01',
    '2026-01-01T00:00Z',
    '2026-01-01T00:00:00',
    '2026-01-01T00:00:00.000Z',
    '2026-01-01 00:00:00Z',
    ' 2026-01-01T00:00:00Z',
    '2026-01-01T00:00:00Z ',
    '+002026-01-01T00:00:00Z',
    '',
    'now',
  ])
    assert.is(isCalendarTime(t), dateRoundTrip(t), t);
});

test('IsoTime reports both issues for a string of another shape, as before', () => {
  assert.throws(
    () => parseWith(IsoTime, '2026-01-01', 'f.json'),
    (e: Error) =>
      /must be an RFC 3339/.test(e.message) && /not a valid calendar time/.test(e.message),
  );
});

test('IsoTime refuses an impossible day with the same words', () => {
  for (const t of ['2023-02-29T00:00:00Z', '2100-02-29T12:00:00Z', '2030-04-31T00:00:00Z']) {
    assert.throws(() => parseWith(IsoTime, t, 'f.json'), /is not a valid calendar time/);
  }
  assert.is(parseWith(IsoTime, '2024-02-29T23:59:59Z', 'f.json'), '2024-02-29T23:59:59Z');
});

test('hasParentSegment is the split check', () => {
  const paths = [
    '..',
    '../a.json',
    'a/..',
    'a/../b.json',
    'a/b/..',
    'a..b.json',
    '...',
    'a/.../b.json',
    '.',
    './a.json',
    'a/./b.json',
    'a//../b.json',
    'a/..b/c.json',
    'a/b../c.json',
    '',
    '/',
    '/..',
    '../',
  ];
  for (const p of paths) assert.is(hasParentSegment(p), p.split('/').includes('..'), p);
  const ref = { digest: `sha256:${'a'.repeat(64)}`, length: 1 };
  assert.throws(
    () => parseWith(FileRef, { ...ref, path: 'releases/../x.json' }, 'f.json'),
    /must not contain "\.\."/,
  );
  assert.is(parseWith(FileRef, { ...ref, path: 'releases/1/a..b.json' }, 'f.json').length, 1);
});

test("the envelope's signed object refuses what z.record refused, in the same words", () => {
  const before = z.strictObject({
    signed: z.record(z.string(), z.unknown()),
    signatures: z.array(SignatureEntry).min(1).max(16),
  });
  const signature = { keyid: 'a'.repeat(64), sig: `${'A'.repeat(85)}Q==` };
  const values: unknown[] = [
    undefined,
    null,
    [],
    [1],
    'x',
    0,
    true,
    {},
    { a: 1 },
    { a: { b: [] } },
  ];
  const outcome = (schema: z.ZodType, v: unknown) => {
    try {
      return { ok: parseWith(schema, v, 'f.json') };
    } catch (e) {
      return { error: (e as Error).message };
    }
  };
  for (const signed of values)
    for (const signatures of [[signature], [], undefined]) {
      const env = JSON.parse(JSON.stringify({ signed, signatures }) ?? '{}') as unknown;
      assert.equal(outcome(Envelope, env), outcome(before, env), JSON.stringify(env));
    }
  // A Map, a class instance: not JSON objects.
  for (const signed of [new Map(), new (class Doc {})()])
    assert.throws(() => parseWith(Envelope, { signed, signatures: [signature] }, 'f.json'));
});

test.run();
