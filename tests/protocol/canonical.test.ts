import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { canonicalString, canonicalBytes, sha256Digest } from '../../protocol/canonical.ts';

// RFC 8785 section 3.2.3: property sorting by UTF-16 code units, not by code points or UTF-8 bytes.
test('RFC 8785 3.2.3: keys sort by UTF-16 code units', () => {
  const input = JSON.parse(
    '{"\\u20ac":"Euro Sign","\\r":"Carriage Return","\\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One",' +
      '"\\ud83d\\ude00":"Emoji: Grinning Face","\\u0080":"Control","\\u00f6":"Latin Small Letter O With Diaeresis"}',
  );
  const values = Object.values(JSON.parse(canonicalString(input)) as Record<string, string>);
  const order = [...canonicalString(input).matchAll(/"([^"]+)":"([^"]+)"/g)].map((m) => m[2]);
  assert.equal(order, [
    'Carriage Return',
    'One',
    'Control',
    'Latin Small Letter O With Diaeresis',
    'Euro Sign',
    'Emoji: Grinning Face', // U+1F600 is D83D DE00 in UTF-16: sorts before U+FB33
    'Hebrew Letter Dalet With Dagesh',
  ]);
  assert.is(values.length, 7);
});

// RFC 8785 section 3.2.2 / appendix: the example's exact output (whitespace removed, string escaping,
// number serialisation).
test('RFC 8785 3.2.2: the sample object canonicalises to the published bytes', () => {
  const input = JSON.parse(`{
    "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
    "string": "\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\"\\/",
    "literals": [null, true, false]
  }`);
  const expected =
    '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}';
  assert.is(canonicalString(input), expected);
  // The euro sign stays raw UTF-8 (e2 82 ac), U+000F becomes \u000f (lowercase hex), as in the RFC's hex dump.
  assert.ok(canonicalBytes(input).toString('hex').includes('e282ac245c75303030665c6e'));
});

test('string escaping: control characters, quotes, backslash, non-ASCII kept as UTF-8', () => {
  assert.is(
    canonicalString({ s: '\u0000\u001f\b\f\n\r\t"\\/é😀' }),
    '{"s":"\\u0000\\u001f\\b\\f\\n\\r\\t\\"\\\\/é😀"}',
  );
  assert.is(canonicalBytes('é').toString('hex'), '22c3a922');
});

test('integers serialise without exponent or fraction up to the safe range', () => {
  assert.is(
    canonicalString([0, -1, 1, 1000000, 9007199254740991, -9007199254740991]),
    '[0,-1,1,1000000,9007199254740991,-9007199254740991]',
  );
  assert.is(canonicalString({ b: 1, a: { d: [], c: {} } }), '{"a":{"c":{},"d":[]},"b":1}');
});

test('digest format is sha256:<hex> over the exact bytes', () => {
  assert.is(
    sha256Digest(''),
    'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  );
  assert.is(sha256Digest(canonicalBytes({ b: 2, a: 1 })), sha256Digest('{"a":1,"b":2}'));
});

test('undefined at top level is refused', () => {
  assert.throws(() => canonicalString(undefined), /cannot be canonicalised/);
});

test.run();
