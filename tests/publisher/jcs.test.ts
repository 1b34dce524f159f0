import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { canonicalJsonData, canonicalTemplate, fastCanonical } from '../../publisher/jcs.ts';
import { signedEnvelopeBytes } from '../../publisher/documents.ts';
import { canonicalString } from '../../protocol/canonical.ts';
import { envelopeBytes, signDocument } from '../../protocol/envelope.ts';
import { keyFromLabel } from './helpers.ts';

// Integers only, as strict JSON intake allows; full Unicode strings (valid surrogate pairs).
const json = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
    fc.string({ unit: 'grapheme' }),
    fc.string({ unit: 'binary' }),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.string({ unit: 'grapheme', maxLength: 6 }), tie('value'), { maxKeys: 6 }),
  ),
})).value;

test('fastCanonical is byte-identical to the canonicalize package on random JSON', () => {
  fc.assert(
    fc.property(json, (v) => fastCanonical(v) === canonicalString(v)),
    { numRuns: 500 },
  );
});

test('canonicalJsonData is byte-identical to the canonicalize package on random JSON', () => {
  // Keys often out of order, and integer-like keys (which V8 lists first, in numeric order).
  const keyed = fc.letrec((tie) => ({
    value: fc.oneof(
      { depthSize: 'small' },
      json,
      fc.dictionary(
        fc.oneof(fc.string({ unit: 'grapheme', maxLength: 3 }), fc.nat(120).map(String)),
        tie('value'),
        { maxKeys: 8 },
      ),
    ),
  })).value;
  fc.assert(
    fc.property(keyed, (v) => canonicalJsonData(v) === canonicalString(v)),
    { numRuns: 1000 },
  );
  const sample = { b: { 10: 1, 9: 2, a: [3, { z: 1, y: '\u{1F600}' }] }, a: null, '': 'é' };
  assert.is(canonicalJsonData(sample), canonicalString(sample));
});

test('canonicalJsonData refuses what fastCanonical refuses', () => {
  assert.throws(() => canonicalJsonData({ s: '\uD800x' }), /Lone surrogate/);
  assert.throws(() => canonicalJsonData({ ['\uDC00']: 1 }), /Lone surrogate/);
  assert.throws(() => canonicalJsonData({ n: NaN }), /non-finite/);
  assert.throws(() => canonicalJsonData([{ d: new Date(0) }]), /toJSON/);
  assert.throws(() => canonicalJsonData({ f: () => 1 }), /not JSON data/);
});

test('memoised shared sub-objects give the same text', () => {
  const shared = {
    path: 'releases/1/channels/a.json',
    digest: 'sha256:' + '0'.repeat(64),
    length: 10,
    é: ['\u{1F600}', -0 + 1],
  };
  const memo = new WeakMap<object, string>();
  for (let i = 0; i < 3; i++) {
    const doc = { host: `h${i}`, plan: shared, list: [shared, { shared }] };
    assert.is(fastCanonical(doc, memo), canonicalString(doc));
  }
});

test('canonicalTemplate gives fastCanonical of the merged object, own members absent when undefined', () => {
  const keys = fc.uniqueArray(fc.string({ unit: 'grapheme', maxLength: 4 }), { maxLength: 8 });
  fc.assert(
    fc.property(keys, keys, fc.array(json, { maxLength: 8 }), (a, b, values) => {
      const sharedKeys = a.filter((k) => !b.includes(k) && k !== '__proto__');
      const ownKeys = b.filter((k) => k !== '__proto__');
      const shared = Object.fromEntries(sharedKeys.map((k, i) => [k, values[i] ?? null]));
      const text = canonicalTemplate<Record<string, unknown>>(shared, ownKeys);
      // Every other own member undefined: left out, as fastCanonical leaves it out.
      const own = Object.fromEntries(
        ownKeys.map((k, i) => [k, i % 2 ? undefined : (values[values.length - 1 - i] ?? 1)]),
      );
      return text(own) === canonicalString({ ...shared, ...own });
    }),
    { numRuns: 500 },
  );
  assert.throws(() => canonicalTemplate({ a: 1 }, ['a']), /both shared and own/);
});

test('refuses what JCS refuses', () => {
  assert.throws(() => fastCanonical({ s: '\uD800x' }), /Lone surrogate/);
  assert.throws(() => fastCanonical(['\uDC00']), /Lone surrogate/);
  assert.throws(() => fastCanonical({ n: Infinity }), /non-finite/);
  assert.throws(() => fastCanonical({ d: new Date(0) }), /toJSON/);
});

test('signedEnvelopeBytes equals envelopeBytes(signDocument(...)) for one and several keys', () => {
  const doc = { type: 'x', n: 1, nested: { b: [1, 'two'], a: null }, text: 'ünïcödé \u{1F680}' };
  const k1 = keyFromLabel('a');
  const k2 = keyFromLabel('b');
  for (const keys of [[k1], [k1, k2]])
    assert.ok(signedEnvelopeBytes(doc, keys).equals(envelopeBytes(signDocument(doc, keys))));
});

test.run();
