// Plain words for schema violations (protocol/schemas/issues.ts), "did you mean" (protocol/suggest.ts),
// and the cross-checks that still run on the well-typed parts of a fleet that failed the schema,
// without echoing a schema error as a second one.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { validateFleet } from '../../publisher/validate.ts';
import { editDistance, nearestName, didYouMean } from '../../protocol/suggest.ts';
import { parseWith } from '../../protocol/schemas/parse.ts';
import { Malformed } from '../../protocol/errors.ts';

type Obj = Record<string, any>;
const golden = (name: string): Obj =>
  JSON.parse(
    readFileSync(
      fileURLToPath(new URL(`../fixtures/fleets/golden/${name}/fleet.json`, import.meta.url)),
      'utf8',
    ),
  );

function errorsOf(fleet: unknown): string[] {
  const r = validateFleet(fleet);
  assert.not.ok(r.ok, 'expected the fleet to be refused');
  return r.ok ? [] : r.errors;
}

test('edit distance: insertions, deletions, substitutions and adjacent swaps count one each', () => {
  assert.is(editDistance('stable', 'stable'), 0);
  assert.is(editDistance('stabel', 'stable'), 1);
  assert.is(editDistance('stagged', 'staged'), 1);
  assert.is(editDistance('chanel', 'channel'), 1);
  assert.is(editDistance('kitten', 'sitting'), 3);
  assert.is(editDistance('', 'ab'), 2);
  assert.is(editDistance('ca', 'abc'), 3); // optimal string alignment: a swapped pair is not edited again
  assert.is(nearestName('stabel', ['beta', 'stable']), 'stable');
  assert.is(nearestName('web-99', ['web-01', 'web-02']), undefined, 'a tie suggests nothing');
  assert.is(nearestName('nightly', ['stable', 'beta']), undefined, 'too far');
  assert.is(didYouMean('stagged', ['staged']), ' (did you mean "staged"?)');
});

test('schema words: required, must be a string / a number / an integer / one of, unknown field, sizes', () => {
  const f = golden('canary-then-staged');
  const [h0, h1] = Object.keys(f.hosts);
  delete f.hosts[h0!].target;
  f.hosts[h1!].system = 7;
  f.hosts[h1!].chanel = 'x';
  delete f.hosts[h1!].channel;
  const ch = Object.keys(f.channels)[0]!;
  f.channels[ch].heartbeatSeconds = 'often';
  f.channels[ch].freshnessSeconds = 1.5;
  const p = Object.keys(f.policies)[0]!;
  f.policies[p].onFailure = 'rollback';
  f.policies[p].probes = [];
  f.hosts[h0!].tags = ['ok', ...Array.from({ length: 64 }, (_, i) => `t${i}`)];
  const errors = errorsOf(f);
  for (const want of [
    `hosts.${h0}.target: required`,
    `hosts.${h1}.system: must be a string`,
    `hosts.${h1}: unknown field "chanel" (did you mean "channel"?)`,
    `hosts.${h1}.channel: required`,
    `channels.${ch}.heartbeatSeconds: must be a number`,
    `channels.${ch}.freshnessSeconds: must be an integer`,
    `policies.${p}.onFailure: must be one of "halt", "rollback-and-halt"`,
    `hosts.${h0}.tags: must have at most 64 items`,
  ])
    assert.ok(errors.includes(want), `missing "${want}" in:\n${errors.join('\n')}`);
  assert.not.ok(
    errors.some((e) => /Invalid input|expected .*, received|Unrecognized key/.test(e)),
    errors.join('\n'),
  );
});

test('cross-checks run on the well-typed parts; a broken definition still exists (no cascade)', () => {
  const f = golden('canary-then-staged');
  const [h0, h1] = Object.keys(f.hosts);
  const ch = Object.keys(f.channels)[0]!;
  f.channels[ch].heartbeatSeconds = -1; // the channel's body is broken, but it exists
  f.hosts[h0!].system = 'nope'; // a broken host keeps its (valid) channel reference
  f.hosts[h0!].channel = ch;
  f.hosts[h1!].channel = 'stabel';
  f.hostEdges = [
    { before: h0, after: h1 },
    { before: h1, after: h0 },
    { before: 5, after: h0 },
  ];
  const errors = errorsOf(f);
  assert.ok(
    errors.includes(`channels.${ch}.heartbeatSeconds: must be at least 1`),
    errors.join('\n'),
  );
  assert.ok(
    errors.some((e) => e.startsWith(`hosts.${h1}.channel: unknown channel "stabel"`)),
    errors.join('\n'),
  );
  assert.ok(
    errors.some((e) => /^hostEdges: cycle /.test(e)),
    `the cycle is found despite the schema errors:\n${errors.join('\n')}`,
  );
  assert.ok(errors.includes('hostEdges[2].before: must be a string'), errors.join('\n'));
  assert.not.ok(
    errors.some((e) => e.includes(`unknown channel "${ch}"`)),
    'a channel whose body failed is not unknown',
  );
  assert.not.ok(
    errors.some((e) => e.includes('host edges stay within a channel')),
    'no edge-across-channels echo of the unknown channel',
  );
  assert.not.ok(
    errors.some((e) => e.includes('hosts matched by no wave')),
    'wave coverage waits for a clean schema',
  );
});

test('a record that is not an object: references into it are not checked (nothing to check against)', () => {
  const f = golden('canary-then-staged');
  f.channels = 'stable';
  const errors = errorsOf(f);
  assert.equal(
    errors.filter((e) => e.includes('unknown channel')),
    [],
  );
  assert.ok(errors.includes('channels: must be an object'), errors.join('\n'));
});

test('signed documents read the same words (parseWith -> Malformed)', () => {
  const Doc = z.strictObject({
    name: z.string(),
    count: z.number().int().min(1),
    kind: z.enum(['a', 'b']),
  });
  try {
    parseWith(Doc, { count: 0, kind: 'c', nmae: 'x' }, 'doc.json');
    assert.unreachable();
  } catch (e) {
    assert.instance(e, Malformed);
    const m = (e as Error).message;
    assert.match(m, /doc\.json/);
    assert.match(m, /\$\.name: required/);
    assert.match(m, /\$\.count: must be at least 1/);
    assert.match(m, /\$\.kind: must be one of "a", "b"/);
    assert.match(m, /\$: unknown field "nmae" \(did you mean "name"\?\)/);
  }
});

test.run();

test('a cacheUrl that switches signature checking off is refused before signing, naming the field and the parameter', () => {
  for (const url of [
    'https://cache.example/?trusted=1',
    'https://cache.example/?priority=10&trusted=true',
    'file:///srv/cache?TRUSTED=1',
    'https://cache.example/?%74rusted=1',
  ]) {
    const f = golden('canary-then-staged');
    f.cacheUrl = url;
    const errors = errorsOf(f);
    assert.ok(
      errors.includes(
        "cacheUrl: the cache URL sets 'trusted', which would let Nix accept paths no key of the trust root signed",
      ),
      `${url}:\n${errors.join('\n')}`,
    );
  }
  // Other store URL parameters stay allowed; a path merely containing the word is not a parameter.
  for (const url of [
    'https://cache.example/?priority=30',
    'https://cache.example/trusted/?untrusted=1',
  ]) {
    const f = golden('canary-then-staged');
    f.cacheUrl = url;
    assert.ok(validateFleet(f).ok, url);
  }
});
