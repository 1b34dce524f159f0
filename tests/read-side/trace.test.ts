// `nixfleet trace` over a real published tree and a real ack history (the ack endpoint's log format).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { appendFileSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { signAck } from '../../protocol/acks.ts';
import { canonicalString, sha256Digest } from '../../protocol/canonical.ts';
import { isoTime } from '../../protocol/schemas/common.ts';
import { formatRecord } from '../../protocol/ack-log.ts';
import type { TraceReport } from '../../read-side/trace.ts';
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

const T0 = NOW - 40 * MIN;
const NOW_ISO = isoTime(NOW);

/**
 * ch-0 wave 0: a starts at T0 and soaks (300 s) at T0+6m. Wave 1: b starts at T0+9m and soaks; c starts
 * at T0+9m and fails at T0+10m, which halts the rollout; d never starts. ch-1: e held by the channel
 * edge throughout. The log also holds a forged "failed" ack for b (signed by e's key).
 */
function history(): { fx: Fixture; a: string; b: string; c: string; d: string; e: string } {
  const fx = publishedFixture('trace');
  const [a] = fx.wave('ch-0', 0);
  const [b, c, d] = fx.wave('ch-0', 1);
  const [e] = fx.wave('ch-1', 0);
  postAcks(fx, a!, lifecycle(T0, NOW - MIN));
  const bAcks = postAcks(fx, b!, [
    ...waiting(T0 - 2 * MIN, T0 + 8 * MIN),
    ...lifecycle(T0 + 9 * MIN, NOW - MIN),
  ]);
  postAcks(fx, c!, [
    ...waiting(T0 - 2 * MIN, T0 + 8 * MIN),
    { kind: 'started', at: T0 + 9 * MIN },
    { kind: 'failed', at: T0 + 10 * MIN, reason: 'probe web: connection refused' },
  ]);
  postAcks(fx, d!, waiting(T0 - 2 * MIN, NOW - MIN));
  postAcks(fx, e!, waiting(T0 - 2 * MIN, NOW - MIN));
  const forged = signAck(
    {
      ...bAcks[5]!.signed,
      seq: 99,
      kind: 'failed',
      time: isoTime(T0 + 12 * MIN),
      reason: 'forged',
    },
    fx.hostKeys[e!]!,
  );
  const canonical = canonicalString(forged);
  appendFileSync(fx.logFile, formatRecord({ digest: sha256Digest(canonical), canonical }));
  return { fx, a: a!, b: b!, c: c!, d: d!, e: e! };
}

const at = (ms: number) => isoTime(ms);

test('--json over the ack log: eligibility, gate holds with durations, activation, confirmation, soak, failure, halt', async () => {
  const { fx, a, b, c, d } = history();
  const r = await run(
    'trace',
    '--tree',
    fx.tree,
    '--root',
    fx.rootFile,
    '--channel',
    'ch-0',
    '--acks-log',
    fx.logFile,
    '--now',
    NOW_ISO,
    '--step',
    '30',
    '--json',
  );
  assert.is(r.code, 0, r.err);
  const j = JSON.parse(r.out) as TraceReport;
  assert.equal(j.subject, { channel: 'ch-0' });
  assert.is(j.from, at(T0 - 2 * MIN));
  assert.is(j.until, NOW_ISO);
  const h = new Map(j.hosts.map((x) => [x.host, x]));
  assert.equal(h.get(a), {
    host: a,
    channel: 'ch-0',
    wave: 0,
    eligibleAt: at(T0),
    activatedAt: at(T0),
    confirmedAt: at(T0 + MIN),
    soakedAt: at(T0 + 6 * MIN),
    failedAt: null,
    failedReason: null,
    holds: [],
  });

  const hb = h.get(b)!;
  assert.is(hb.eligibleAt, at(T0 + 6 * MIN), 'wave 1 becomes eligible when wave 0 has soaked');
  assert.is(hb.activatedAt, at(T0 + 9 * MIN));
  assert.is(hb.confirmedAt, at(T0 + 10 * MIN));
  assert.is(hb.soakedAt, at(T0 + 15 * MIN));
  assert.is(hb.failedAt, null, 'the forged failure is not believed');
  assert.equal(
    hb.holds.map((x) => [x.gate, x.from, x.to, x.seconds]),
    [['earlier-waves', at(T0 - 2 * MIN), at(T0 + 6 * MIN), 480]],
  );
  assert.match(hb.holds[0]!.reason, /waiting for wave 1 of channel ch-0/);

  assert.is(h.get(c)!.failedAt, at(T0 + 10 * MIN));
  assert.is(
    h.get(c)!.failedReason,
    'failed: probe web: connection refused',
    'the signed failure report says why',
  );
  assert.ok(
    j.entries.some(
      (e) =>
        e.host === c &&
        e.phase === 'failed' &&
        e.reason === 'failed: probe web: connection refused',
    ),
    'the timeline entry carries the reason',
  );
  const hd = h.get(d)!;
  assert.is(hd.activatedAt, null);
  assert.equal(
    hd.holds.map((x) => [x.gate, x.from, x.to]),
    [
      ['earlier-waves', at(T0 - 2 * MIN), at(T0 + 6 * MIN)],
      ['halted', at(T0 + 10 * MIN), NOW_ISO],
    ],
  );
  assert.ok(
    j.entries.some(
      (e) => e.host === d && e.phase === 'pending' && e.gate === null && e.at === at(T0 + 6 * MIN),
    ),
    'd eligible at T0+6m',
  );

  assert.is(j.history.rejected.length, 1);
  assert.equal([j.history.rejected[0]!.host, j.history.rejected[0]!.code], [b, 'UnknownKey']);
  assert.is(j.history.logRecords, j.history.verified + 1);
});

test('human timeline for one host; the default log of a control plane directory is found', async () => {
  const { fx, d } = history();
  mkdirSync(join(fx.tree, '.ack-log'));
  copyFileSync(fx.logFile, join(fx.tree, '.ack-log', 'acks.log'));
  const r = await run(
    'trace',
    '--tree',
    fx.tree,
    '--root',
    fx.rootFile,
    '--host',
    d,
    '--now',
    NOW_ISO,
    '--step',
    '30',
  );
  assert.is(r.code, 0, r.err);
  assert.match(r.out, `trace of host ${d} (channel ch-0), fleet "generated", release 1`);
  assert.match(r.out, `history: `);
  assert.match(r.out, join('.ack-log', 'acks.log'));
  assert.match(r.out, /1 REJECTED \(not counted\)/);
  assert.match(r.out, `${at(T0 + 6 * MIN)}     +8 min  ${d}  eligible: every gate passed`);
  assert.match(r.out, new RegExp(`${at(T0 + 10 * MIN)} +\\+12 min  ${d}  held by halted: `));
  assert.match(r.out, `  ${d} (wave 2): eligible +8 min`);
  assert.match(
    r.out,
    /held by earlier-waves for 8 min \(\+0 s \.\. \+8 min\): waiting for wave 1 of channel ch-0/,
  );
  assert.match(r.out, /held by halted for 30 min \(\+12 min \.\. \+42 min\)/);
});

test('a failed host shows why; an expired timestamp traces the last verified release under STALE, exit 3', async () => {
  const { fx, c } = history();
  const r = await run(
    'trace',
    '--tree',
    fx.tree,
    '--root',
    fx.rootFile,
    '--host',
    c,
    '--acks-log',
    fx.logFile,
    '--now',
    NOW_ISO,
    '--step',
    '30',
  );
  assert.is(r.code, 0, r.err);
  assert.match(r.out, new RegExp(`${c}  FAILED: failed: probe web: connection refused`));
  assert.match(r.out, /FAILED \+\d+ (s|min) \(failed: probe web: connection refused\)/);
  const later = isoTime(NOW + 2 * 60 * MIN);
  const stale = await run(
    'trace',
    '--tree',
    fx.tree,
    '--root',
    fx.rootFile,
    '--host',
    c,
    '--acks-log',
    fx.logFile,
    '--now',
    later,
  );
  assert.is(stale.code, 3, stale.err);
  assert.ok(stale.out.startsWith('STALE: Stale: timestamp.json: '), stale.out);
  assert.match(stale.out, `trace of host ${c}`);
  const j = JSON.parse(
    (
      await run(
        'trace',
        '--tree',
        fx.tree,
        '--root',
        fx.rootFile,
        '--host',
        c,
        '--acks-log',
        fx.logFile,
        '--now',
        later,
        '--json',
      )
    ).out,
  ) as TraceReport;
  assert.is(j.freshness.state, 'stale');
});

test('without a log only the latest acks are known, and the output says so', async () => {
  const { fx, a } = history();
  const r = await run(
    'trace',
    '--tree',
    fx.tree,
    '--root',
    fx.rootFile,
    '--host',
    a,
    '--now',
    NOW_ISO,
  );
  assert.is(r.code, 0, r.err);
  assert.match(
    r.out,
    "the tree's acks/ only (latest ack per host: pass --acks-log for the full history)",
  );
  const j = JSON.parse(
    (
      await run(
        'trace',
        '--tree',
        fx.tree,
        '--root',
        fx.rootFile,
        '--host',
        a,
        '--now',
        NOW_ISO,
        '--json',
      )
    ).out,
  ) as TraceReport;
  // a's scope is its channel ch-0 (nothing gates it): a, b, c, d; e (ch-1) is not read.
  assert.is(j.history.verified, 4, "one latest ack per host of a's scope with acks");
  assert.equal(j.history.scope, { channels: ['ch-0'], hosts: 4 });
  assert.is(j.history.log, null);
});

test('a tampered plan -> exit 1 naming the file; usage and I/O errors exit 2; --help', async () => {
  const { fx, a } = history();
  const base = ['trace', '--tree', fx.tree, '--root', fx.rootFile, '--now', NOW_ISO];
  assert.is((await run(...base)).code, 2, 'neither --host nor --channel');
  assert.is((await run(...base, '--host', a, '--channel', 'ch-0')).code, 2, 'both');
  assert.is((await run(...base, '--host', 'nope')).code, 2);
  assert.is((await run(...base, '--host', a, '--step', '0')).code, 2);
  assert.is(
    (await run(...base, '--host', a, '--from', isoTime(NOW), '--until', isoTime(NOW - MIN))).code,
    2,
  );
  assert.is((await run(...base, '--host', a, '--acks-log', join(fx.dir, 'none.log'))).code, 2);
  // A corrupt record followed by valid ones: refused like the endpoint refuses to open it.
  const log = readFileSync(fx.logFile);
  writeFileSync(
    fx.logFile,
    Buffer.concat([Buffer.from('sha256:' + '0'.repeat(64) + '\t{}\n'), log]),
  );
  const corrupt = await run(...base, '--host', a, '--acks-log', fx.logFile);
  assert.is(corrupt.code, 2);
  assert.match(corrupt.err, 'corrupt record at byte 0');

  const file = 'releases/1/channels/ch-0.json';
  writeFileSync(
    join(fx.tree, file),
    readFileSync(join(fx.tree, file), 'utf8').replace('"soakSeconds":300', '"soakSeconds":30'),
  );
  const r = await run(...base, '--channel', 'ch-0', '--acks-log', fx.logFile);
  assert.is(r.code, 1);
  assert.match(r.err, `REFUSED: BadSignature: ${file}`);
  const h = await run('trace', '--help');
  assert.is(h.code, 0);
  assert.match(h.out, '(--host H | --channel C)');
});

test.run();
