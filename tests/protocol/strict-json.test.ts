import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { parseStrictJson, parseStrictJsonReference } from '../../protocol/strict-json.ts';
import { Malformed, TooLarge } from '../../protocol/errors.ts';

const opts = { file: 'doc.json', maxBytes: 1024 };

function refuses(input: string, cls: Function, re: RegExp) {
  try {
    parseStrictJson(input, opts);
  } catch (e) {
    assert.instance(e, cls);
    assert.match((e as Error).message, re);
    return;
  }
  assert.unreachable(`accepted ${input}`);
}

test('parses ordinary JSON identically to JSON.parse', () => {
  const s = '{"a":[1,-2,{"b":"x\\u00e9\\ud83d\\ude00"}],"c":true,"d":null,"e":"\\n\\t\\"\\\\/"}';
  assert.equal(parseStrictJson(s, opts), JSON.parse(s));
});

test('rejects duplicate keys, naming the path', () =>
  refuses('{"a":{"b":1,"b":2}}', Malformed, /duplicate key "b" at \$\.a\.b/));
test('rejects non-integer numbers', () =>
  refuses('{"n":[1.5]}', Malformed, /non-integer number 1\.5 at \$\.n\[0\]/));
test('rejects exponents', () => refuses('{"n":1e3}', Malformed, /non-integer/));
test('rejects unsafe integers', () => refuses('{"n":9007199254740993}', Malformed, /safe range/));
test('rejects negative zero, which JSON.parse takes as -0', () =>
  refuses('{"n":[-0]}', Malformed, /negative zero is not allowed at \$\.n\[0\]/));
test('rejects lone surrogates', () =>
  refuses('{"s":"\\ud800x"}', Malformed, /lone surrogate in string at \$\.s/));
test('rejects a lone low surrogate', () => refuses('["\\udc00"]', Malformed, /lone surrogate/));
test('rejects oversized input before parsing', () =>
  refuses('"' + 'x'.repeat(2000) + '"', TooLarge, /exceeds the limit of 1024/));
test('rejects trailing data', () => refuses('{} {}', Malformed, /after the JSON value/));
test('rejects __proto__ keys', () => refuses('{"__proto__":{}}', Malformed, /__proto__/));
test('rejects invalid UTF-8', () => {
  try {
    parseStrictJson(new Uint8Array([0x22, 0xff, 0x22]), opts);
    assert.unreachable();
  } catch (e) {
    assert.instance(e, Malformed);
    assert.is((e as Error).message, 'Malformed: doc.json: input is not valid UTF-8');
  }
});
test('the size limit counts bytes: exactly the limit is taken in, one byte more is not', () => {
  // 'é' is two bytes in UTF-8: the limit is on what is read, not on the characters.
  const exactly = `"${'é'.repeat(511)}"`;
  assert.is(Buffer.byteLength(exactly), 1024);
  assert.is(parseStrictJson(exactly, opts), 'é'.repeat(511));
  assert.is(parseStrictJson(Buffer.from(exactly), opts), 'é'.repeat(511));
  refuses(`"${'é'.repeat(511)}x"`, TooLarge, /1025 bytes exceeds the limit of 1024/);
});
test('a leading byte order mark is dropped from bytes (RFC 8259 lets a parser ignore it)', () => {
  const bom = Buffer.from([0xef, 0xbb, 0xbf]);
  assert.equal(parseStrictJson(Buffer.concat([bom, Buffer.from('{"a":1}')]), opts), { a: 1 });
  // Only one, and only leading: what follows it is the document, and a second one is not JSON.
  assert.throws(
    () => parseStrictJson(Buffer.concat([bom, bom, Buffer.from('{}')]), opts),
    (e: Error) => e instanceof Malformed,
  );
});
test('rejects deep nesting', () =>
  refuses('['.repeat(100) + ']'.repeat(100), Malformed, /nesting deeper/));

// parseStrictJson takes text in through JSON.parse when it can tell every rule holds, and through the
// reference parser otherwise: on any text, both must accept the same value (same members, same order)
// or refuse with the same words.
const outcome = (f: () => unknown): string => {
  try {
    return `value ${JSON.stringify(f())}`;
  } catch (e) {
    return `${(e as Error).name}: ${(e as Error).message}`;
  }
};
const token = fc.constantFrom(
  ...[
    '0',
    '-1',
    '12',
    '-0',
    '1.0',
    '1.5',
    '1e3',
    '2E1',
    '01',
    '9007199254740991',
    '9007199254740993',
  ],
  ...['true', 'false', 'null', '"a"', '"b"', '"\\"', '"\\\""', '"x\\u00e9"', '"\\ud800"'],
  ...['"\\udc00x"', '"\\ud83d\\ude00"', '"\\u0022:"', '"e.E:"', '"\\\\"'],
  // Every escape, and escapes and strings JSON refuses: a control character raw, \x, a short or
  // non-hex \u, a lone backslash at the end.
  ...['"\\/\\b\\f\\n\\r\\t"', '"\\u0041\\u00E9"', '"\\u0000"', '"a\u0001b"', '"\\x"'],
  ...['"\\u12"', '"\\uZZZZ"', '"\\u12345"', '"a\\', 'tru', 'nul', '-', '+1', '0x1', '1e', '.5'],
);
const key = fc.constantFrom('"a"', '"b"', '"__proto__"', '"1"', '"\\ud800"', '"a\\"b"', '"é"');
const text: fc.Arbitrary<string> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    token,
    fc.array(tie('value'), { maxLength: 4 }).map((xs) => `[${xs.join(',')}]`),
    fc
      .array(fc.tuple(key, tie('value')), { maxLength: 4 })
      .map((ms) => `{${ms.map(([k, v]) => `${k}:${v}`).join(', ')}}`),
    // JSON's four whitespace characters (and a form feed, which is none) around values and members.
    fc
      .tuple(fc.constantFrom(' ', '\t', '\n', '\r', '\f', ''), tie('value'), key)
      .map(([w, v, k]) => `${w}{${w}${k}${w}:${w}[${w}${v}${w},${w}0${w}]${w}}${w}`),
  ),
})).value as fc.Arbitrary<string>;
const damaged = fc
  .tuple(text, fc.nat(), fc.constantFrom('', ':', ',', '"', '\\', '.', 'e', ' ', '}'))
  .map(
    ([t, at, s]) =>
      t.slice(0, at % (t.length + 1)) + s + t.slice((at % (t.length + 1)) + (s ? 0 : 1)),
  );

test('the fast way and the reference parser agree on every text: same value or same refusal', () => {
  const small = { file: 'doc.json', maxBytes: 1 << 20, maxDepth: 3 };
  fc.assert(
    fc.property(fc.oneof(text, damaged), (t) => {
      const fast = outcome(() => parseStrictJson(t, small));
      const reference = outcome(() => parseStrictJsonReference(t, small.file, small.maxDepth));
      return fast === reference;
    }),
    { numRuns: 3000 },
  );
  for (const t of ['{"a":1,"a":1}', '{"a":{"b":[1,{"c":2,"c":2}]}}', '[1.0]', '{"n":-0}', 'null'])
    assert.is(
      outcome(() => parseStrictJson(t, opts)),
      outcome(() => parseStrictJsonReference(t, opts.file)),
    );
});

// JSON.parse as the oracle: what it refuses is refused (Malformed), and what is taken in is the value it
// builds. The test above cannot see this: where JSON.parse refuses, both sides of it are the reference
// parser, so a reference parser that let a raw control character or a missing ':' through agreed with
// itself. Checked on the reference parser alone, which every text that is not plainly valid reaches.
test('the reference parser refuses whatever JSON.parse refuses, and otherwise builds its value or names a rule', () => {
  const small = { file: 'doc.json', maxBytes: 1 << 20, maxDepth: 3 };
  fc.assert(
    fc.property(fc.oneof(text, damaged), (t) => {
      let oracle: string | null;
      try {
        oracle = `value ${JSON.stringify(JSON.parse(t))}`;
      } catch {
        oracle = null;
      }
      for (const ours of [
        outcome(() => parseStrictJsonReference(t, small.file, small.maxDepth)),
        outcome(() => parseStrictJson(t, small)),
      ]) {
        if (
          oracle === null
            ? !ours.startsWith('Malformed: ')
            : ours !== oracle && !ours.startsWith('Malformed: ')
        )
          return false;
      }
      return true;
    }),
    { numRuns: 3000 },
  );
  // The escapes the fast way never hands over, read by the reference parser as JSON reads them.
  const escapes = '{"s":"\\/\\b\\f\\n\\r\\t\\u0041\\\\\\""}';
  assert.equal(parseStrictJsonReference(escapes, 'e'), JSON.parse(escapes));
  assert.equal(parseStrictJsonReference(' \t\n\r[ 1 ,\n2 ]\r\n', 'w'), [1, 2]);
});

test.run();
