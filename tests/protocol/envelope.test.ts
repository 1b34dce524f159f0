import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  signDocument,
  verifyEnvelope,
  envelopeBytes,
  signedTextOf,
} from '../../protocol/envelope.ts';
import { newSigningKey, publicPart, type PublicKey } from '../../protocol/keys.ts';
import { BadSignature, ThresholdNotMet, UnknownKey } from '../../protocol/errors.ts';
import { canonicalString } from '../../protocol/canonical.ts';

const [a, b, c, outsider] = ['a', 'b', 'c', 'x'].map((n) => newSigningKey(n)) as [
  ReturnType<typeof newSigningKey>,
  ReturnType<typeof newSigningKey>,
  ReturnType<typeof newSigningKey>,
  ReturnType<typeof newSigningKey>,
];
const keys = new Map<string, PublicKey>([a, b, c].map((k) => [k.keyid, publicPart(k)]));
const doc = { type: 'demo', n: 1, text: 'héllo' };
const opts = (threshold: number) => ({ file: 'demo.json', keys, threshold, role: 'test' });

function refuses(fn: () => unknown, cls: Function, re: RegExp) {
  try {
    fn();
  } catch (e) {
    assert.instance(e, cls);
    assert.match((e as Error).message, re);
    assert.match((e as Error).message, /demo\.json/);
    return;
  }
  assert.unreachable('accepted');
}

test('2-of-3 threshold met by two distinct keys', () => {
  const env = signDocument(doc, [a, b]);
  assert.equal(verifyEnvelope(env, opts(2)).sort(), [a.keyid, b.keyid].sort());
});

test('the same key twice counts once', () => {
  const env = signDocument(doc, [a, a]);
  refuses(() => verifyEnvelope(env, opts(2)), ThresholdNotMet, /1 of the required 2/);
});

test('one signature for a 2-of-3 threshold: ThresholdNotMet', () => {
  refuses(
    () => verifyEnvelope(signDocument(doc, [c]), opts(2)),
    ThresholdNotMet,
    /1 of the required 2/,
  );
});

test('only unknown keys: UnknownKey', () => {
  refuses(
    () => verifyEnvelope(signDocument(doc, [outsider]), opts(1)),
    UnknownKey,
    /no signature by a valid test key/,
  );
});

test('an unknown extra signature does not count but does not fail a met threshold', () => {
  assert.equal(verifyEnvelope(signDocument(doc, [outsider, a]), opts(1)), [a.keyid]);
});

test('a changed document fails as BadSignature even when another signature would meet the threshold', () => {
  const env = signDocument(doc, [a, b, c]);
  const forged = { signed: { ...doc, n: 2 }, signatures: env.signatures };
  refuses(() => verifyEnvelope(forged, opts(1)), BadSignature, /does not verify/);
});

test('signatures cover JCS bytes: key order in memory does not matter', () => {
  const env = signDocument(doc, [a]);
  const reordered = { signed: { text: 'héllo', n: 1, type: 'demo' }, signatures: env.signatures };
  verifyEnvelope(reordered, opts(1));
  assert.is(envelopeBytes(env).toString(), canonicalString(env));
});

test("signedTextOf: the canonical file's signed text is the canonical bytes; other layouts give undefined", () => {
  const env = signDocument(doc, [a]);
  const file = envelopeBytes(env);
  assert.is(Buffer.from(signedTextOf(file, env.signatures)!).toString(), canonicalString(doc));
  const pretty = Buffer.from(JSON.stringify(env, null, 2));
  assert.is(signedTextOf(pretty, env.signatures), undefined);
  assert.is(signedTextOf(file, signDocument(doc, [b]).signatures), undefined);
});

test('a non-canonical signed text falls back to the canonical bytes of the parsed document', () => {
  const env = signDocument(doc, [a]);
  // Same document, keys reordered in the text: the raw text does not verify, the canonical bytes do.
  const reordered = Buffer.from(JSON.stringify({ text: 'héllo', n: 1, type: 'demo' }));
  assert.equal(verifyEnvelope(env, { ...opts(1), signedText: reordered }), [a.keyid]);
  // A text that verifies but is not this document cannot occur: the signer signs only canonical bytes,
  // so a different document's text is refused through the canonical check.
  const other = Buffer.from(canonicalString({ ...doc, n: 2 }));
  assert.equal(verifyEnvelope(env, { ...opts(1), signedText: other }), [a.keyid]);
  refuses(
    () =>
      verifyEnvelope(
        { signed: { ...doc, n: 2 }, signatures: env.signatures },
        { ...opts(1), signedText: other },
      ),
    BadSignature,
    /does not verify/,
  );
});

test.run();
