import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { fastCanonical } from '../../publisher/jcs.ts';
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
