// `nixfleet status --problems` and the persisted verified-ack cache of `status` / `trace`, through the real
// command dispatcher over a real published tree and real signed acks.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHmac } from 'node:crypto';
import { chmodSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ackDigest, signAck } from '../../protocol/acks.ts';
import { canonicalString, sha256Digest } from '../../protocol/canonical.ts';
import { isoTime } from '../../protocol/schemas/common.ts';
import type { StatusReport } from '../../read-side/status.ts';
import {
  MIN,
  NOW,
  cleanupTempDirs,
  lifecycle,
  postAcks,
  publishedFixture,
  run,
  waiting,
  type Fixture,
} from './fixture.ts';

test.after.each(cleanupTempDirs);

const NOW_ISO = isoTime(NOW);

/** ch-0: wave 0 [a] soaked; wave 1 [b FAILED, c soaking, d polling on its old system]. ch-1 gated. */
function withFailure(): { fx: Fixture; a: string; b: string; c: string; d: string } {
  const fx = publishedFixture('views');
  const [a] = fx.wave('ch-0', 0);
  const [b, c, d] = fx.wave('ch-0', 1);
  postAcks(fx, a!, lifecycle(NOW - 12 * MIN, NOW - MIN));
  postAcks(fx, b!, [
    { kind: 'started', at: NOW - 4 * MIN },
    { kind: 'failed', at: NOW - 3 * MIN, reason: 'probe http failed' },
  ]);
  postAcks(fx, c!, [
    { kind: 'started', at: NOW - 4 * MIN },
    { kind: 'activated', at: NOW - 3 * MIN },
    { kind: 'healthy', at: NOW - 2 * MIN, healthySince: NOW - 2 * MIN },
  ]);
  postAcks(fx, d!, waiting(NOW - 10 * MIN, NOW - MIN));
  for (const h of fx.wave('ch-1', 0).concat(fx.wave('ch-1', 1)))
    postAcks(fx, h, waiting(NOW - 10 * MIN, NOW - MIN));
  return { fx, a: a!, b: b!, c: c!, d: d! };
}

const status = (fx: Fixture, ...extra: string[]) =>
  run(
    'status',
    '--tree',
    fx.tree,
    '--root',
    fx.rootFile,
    '--now',
    NOW_ISO,
    '--cache-dir',
    join(fx.dir, 'cache'),
    ...extra,
  );

test('--problems: only the failed host, its halted wave and channel (JSON and text); a healthy fleet says so', async () => {
  const { fx, a, b, c } = withFailure();
  const full = JSON.parse((await status(fx, '--json')).out) as StatusReport;
  assert.is(full.problemsOnly, false);
  assert.is(full.hosts.length, 8);
  const r = await status(fx, '--json', '--problems');
  assert.is(r.code, 0, r.err);
  const j = JSON.parse(r.out) as StatusReport;
  assert.is(j.problemsOnly, true);
  assert.equal(
    j.hosts.map((h) => [h.host, h.phase]),
    [[b, 'failed']],
  );
  assert.equal(
    j.channels.map((ch) => [ch.channel, ch.state]),
    [['ch-0', 'halted']],
  );
  assert.equal(
    j.channels[0]!.waves.map((w) => [w.index, w.state]),
    [[1, 'halted']],
  );
  assert.equal(j.budgets, []);
  const text = (await status(fx, '--problems')).out;
  assert.match(text, /channel ch-0: HALTED/);
  assert.match(text, new RegExp(`\\n${b} +ch-0 +2 +failed`));
  assert.not.match(text, `\n${a} `);
  assert.not.match(text, `\n${c} `);
  assert.not.match(text, 'channel ch-1');

  // Without the failure (b healthy too) nothing needs attention.
  const calm = publishedFixture('calm');
  for (const h of calm.wave('ch-0', 0)) postAcks(calm, h, lifecycle(NOW - 12 * MIN, NOW - MIN));
  for (const h of [...calm.wave('ch-0', 1), ...calm.wave('ch-1', 0), ...calm.wave('ch-1', 1)])
    postAcks(calm, h, waiting(NOW - 10 * MIN, NOW - MIN));
  const none = await status(calm, '--problems');
  assert.is(none.code, 0, none.err);
  assert.match(none.out, 'no problems:');
  assert.not.match(none.out, 'HOST');
});

test('the verified-ack cache: a warm run shows the same view; a changed ack is a miss and verified in full', async () => {
  const { fx, c } = withFailure();
  const cold = await status(fx, '--json');
  assert.is(cold.code, 0, cold.err);
  const files = readdirSync(join(fx.dir, 'cache')).sort();
  assert.equal(files, ['cache-key', 'status.verified-acks', 'status.verified-docs']);
  const lines = readFileSync(join(fx.dir, 'cache', 'status.verified-acks'), 'utf8')
    .trim()
    .split('\n');
  assert.match(lines.at(-1)!, /^mac [0-9a-f]{64}$/);
  assert.is(lines.slice(1, -1).length, 8, 'one entry per verified latest ack');
  const warm = await status(fx, '--json');
  assert.equal(JSON.parse(warm.out), JSON.parse(cold.out));
  assert.equal(JSON.parse((await status(fx, '--json', '--no-cache')).out), JSON.parse(cold.out));

  // c's latest ack altered after signing (its "healthy" becomes a claim of an older soak): new bytes,
  // no cache entry, the signature check refuses it.
  const p = join(fx.tree, 'acks', 'hosts', `${c}.json`);
  writeFileSync(
    p,
    readFileSync(p, 'utf8').replace(isoTime(NOW - 2 * MIN), isoTime(NOW - 20 * MIN)),
  );
  const after = JSON.parse((await status(fx, '--json')).out) as StatusReport;
  assert.equal(
    after.acks.rejected.map((x) => [x.source, x.code]),
    [[`acks/hosts/${c}.json`, 'BadSignature']],
  );
});

test('the verified-document memo: a warm run reuses the plans it verified; a changed plan is verified in full and refused', async () => {
  const { fx } = withFailure();
  const cold = await status(fx, '--json');
  assert.is(cold.code, 0, cold.err);
  const docs = readFileSync(join(fx.dir, 'cache', 'status.verified-docs'), 'utf8')
    .trim()
    .split('\n');
  // The index, the budgets and one entry per channel plan, each keyed by root digest and bytes digest.
  assert.is(docs.length - 1, 2 + Object.keys(fx.plans).length);
  assert.equal(JSON.parse((await status(fx, '--json')).out), JSON.parse(cold.out));
  // A plan's bytes changed after signing (a host's wave moved): new bytes, no memo entry; the walk refuses it.
  const file = join(fx.tree, 'releases/1/channels/ch-0.json');
  const plan = readFileSync(file, 'utf8');
  writeFileSync(file, plan.replace('"wave":1', '"wave":0'));
  assert.not.equal(readFileSync(file, 'utf8'), plan, 'the fixture plan has a host in wave 1');
  const tampered = await status(fx, '--json');
  assert.is(tampered.code, 1, tampered.out);
  assert.match(tampered.out + tampered.err, /BadSignature|MixAndMatch/);
});

test('a cache file edited by hand, or one others may write, is not read: a planted entry for a forged ack is not believed', async () => {
  const { fx, a, d } = withFailure();
  // A first run makes the cache and its directory's key.
  assert.is((await status(fx, '--json')).code, 0);
  // d's "healthy on target" signed with a's key, placed as d's latest ack.
  const head = JSON.parse(readFileSync(join(fx.tree, 'acks', 'hosts', `${d}.json`), 'utf8'));
  const forged = signAck(
    {
      ...head.signed,
      seq: head.signed.seq + 1,
      prev: ackDigest(head),
      kind: 'healthy',
      time: isoTime(NOW - 30_000),
      current: head.signed.target,
      healthySince: isoTime(NOW - 30_000),
    },
    fx.hostKeys[a]!,
  );
  const bytes = canonicalString(forged);
  writeFileSync(join(fx.tree, 'acks', 'hosts', `${d}.json`), bytes);
  const dKey = fx.plans['ch-0']!.hosts[d]!.hostKey;
  const cache = join(fx.dir, 'cache');
  const file = join(cache, 'status.verified-acks');
  const refused = async (label: string) => {
    const r = JSON.parse((await status(fx, '--json')).out) as StatusReport;
    assert.equal(
      r.acks.rejected.map((x) => [x.host, x.code]),
      [[d, 'UnknownKey']],
      label,
    );
    assert.is.not(r.hosts.find((h) => h.host === d)!.phase, 'healthy', label);
  };
  const entry = `${sha256Digest(bytes)} ${dKey}\n`;
  const body = readFileSync(file, 'utf8').replace(/mac [0-9a-f]{64}\n$/, '');
  const key = Buffer.from(readFileSync(join(cache, 'cache-key'), 'latin1').trim(), 'hex');
  const sealed = (text: string) =>
    `${text}mac ${createHmac('sha256', key).update(text).digest('hex')}\n`;

  // Edited by hand: the entry added (the old MAC kept, or none, or one made without the key).
  const edits: [string, string][] = [
    [
      'an entry added, the MAC kept',
      readFileSync(file, 'utf8').replace('\nmac ', `\n${entry}mac `),
    ],
    ['an entry added, no MAC', `${body}${entry}`],
    [
      'an entry added, a plain digest as MAC',
      `${body}${entry}mac ${sha256Digest(body + entry).slice(7)}\n`,
    ],
  ];
  for (const [label, text] of edits) {
    writeFileSync(file, text, { mode: 0o600 });
    await refused(label);
  }

  // The premise: the file as the program writes it (sealed with the directory's key) is believed.
  writeFileSync(file, sealed(`${body}${entry}`), { mode: 0o600 });
  const believed = JSON.parse((await status(fx, '--json')).out) as StatusReport;
  assert.is(believed.hosts.find((h) => h.host === d)!.phase, 'healthy');

  // The directory's key is as private as what it seals: one that others may write or replace could be
  // their own, sealing their entries.
  const keyFile = join(cache, 'cache-key');
  const keyText = readFileSync(keyFile, 'latin1');
  const restoreKey = () => {
    rmSync(keyFile, { force: true });
    writeFileSync(keyFile, keyText, { mode: 0o600 });
  };
  for (const [label, fix] of [
    ['group/world-writable directory', () => chmodSync(cache, 0o777)],
    [
      'group-writable file',
      () => {
        chmodSync(cache, 0o700);
        chmodSync(file, 0o660);
      },
    ],
    ['group-writable key', () => chmodSync(keyFile, 0o660)],
    [
      'the key a symlink (to the very key)',
      () => {
        rmSync(keyFile);
        writeFileSync(join(fx.dir, 'elsewhere-key'), keyText, { mode: 0o600 });
        symlinkSync(join(fx.dir, 'elsewhere-key'), keyFile);
      },
    ],
  ] as const) {
    chmodSync(cache, 0o700);
    restoreKey();
    writeFileSync(file, sealed(`${body}${entry}`), { mode: 0o600 });
    fix();
    await refused(label);
  }
  restoreKey();
  // A malformed line (sealed): nothing of the file is believed.
  chmodSync(cache, 0o700);
  writeFileSync(file, sealed(`${body}${entry}garbage\n`), { mode: 0o600 });
  await refused('a malformed line');
  // A torn seal (the MAC cut short, or its last hex digit gone with the newline): not believed, and
  // not an error either (a view never fails over its cache).
  const whole = sealed(`${body}${entry}`);
  for (const [label, text] of [
    ['the MAC cut short', `${whole.slice(0, -11)}\n`],
    ['the last line unterminated', whole.slice(0, -1)],
  ] as const) {
    writeFileSync(file, text, { mode: 0o600 });
    await refused(label);
  }
});

test('trace keeps its own cache, one per scope (channel); a warm trace equals a cold one', async () => {
  const { fx, b } = withFailure();
  const args = [
    'trace',
    '--tree',
    fx.tree,
    '--root',
    fx.rootFile,
    '--now',
    NOW_ISO,
    '--acks-log',
    fx.logFile,
    '--host',
    b,
    '--json',
  ];
  const cold = await run(...args, '--no-cache');
  assert.is(cold.code, 0, cold.err);
  const first = await run(...args, '--cache-dir', join(fx.dir, 'cache'));
  const warm = await run(...args, '--cache-dir', join(fx.dir, 'cache'));
  assert.equal(readdirSync(join(fx.dir, 'cache')).sort(), [
    'cache-key',
    'trace.ch-0.log-index.current',
    'trace.ch-0.log-prefixes',
    'trace.ch-0.verified-acks',
    'trace.verified-docs',
  ]);
  assert.equal(JSON.parse(first.out), JSON.parse(cold.out));
  assert.equal(JSON.parse(warm.out), JSON.parse(cold.out));
  // Each file names its format on its first line: a later layout is never read as this one.
  const formatOf = (f: string) => readFileSync(join(fx.dir, 'cache', f), 'utf8').split('\n')[0];
  assert.equal(
    [
      'trace.ch-0.log-index.current',
      'trace.ch-0.log-prefixes',
      'trace.ch-0.verified-acks',
      'trace.verified-docs',
    ].map(formatOf),
    [
      'nixfleet log-prefix-index v3',
      'nixfleet verified-log-prefixes v1',
      'nixfleet verified-acks v2',
      'nixfleet verified-docs v1',
    ],
  );
  // A trace of another channel's host keeps its acks beside, not instead of, ch-0's.
  const [e] = fx.wave('ch-1', 0);
  const other = await run(...args.slice(0, -3), '--host', e!, '--cache-dir', join(fx.dir, 'cache'));
  assert.is(other.code, 0, other.err);
  assert.equal(readdirSync(join(fx.dir, 'cache')).sort(), [
    'cache-key',
    'trace.ch-0.log-index.current',
    'trace.ch-0.log-prefixes',
    'trace.ch-0.verified-acks',
    'trace.ch-1.log-index.current',
    'trace.ch-1.log-prefixes',
    'trace.ch-1.verified-acks',
    'trace.verified-docs',
  ]);
});

test('trace --host replays a step ack by ack only where the host changes: the same trace as every ack, for every host', async () => {
  const { fx } = withFailure();
  const { readPinnedRoot, loadVerifiedRelease } = await import('../../read-side/load.ts');
  const { loadAckHistory, traceReport } = await import('../../read-side/trace.ts');
  const release = await loadVerifiedRelease(fx.tree, readPinnedRoot(fx.rootFile), { now: NOW });
  const history = loadAckHistory(fx.tree, release, fx.logFile);
  let changes = 0;
  for (const host of Object.values(fx.plans).flatMap((p) => Object.keys(p.hosts))) {
    for (const stepSeconds of [60, 300]) {
      const every = traceReport(
        release,
        history,
        { host },
        { now: NOW, stepSeconds, instants: 'every-ack' },
      );
      const onChange = traceReport(
        release,
        history,
        { host },
        { now: NOW, stepSeconds, instants: 'on-change' },
      );
      assert.equal(onChange, every, `${host} step ${stepSeconds}`);
      changes += every.entries.length;
    }
  }
  assert.ok(changes > 16, 'the hosts change phase and gate in the traced period');
});
test.run();
