import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseStrictJson } from '../../protocol/strict-json.ts';
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
  }
});
test('rejects deep nesting', () =>
  refuses('['.repeat(100) + ']'.repeat(100), Malformed, /nesting deeper/));

test.run();
