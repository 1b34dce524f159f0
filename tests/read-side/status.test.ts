// `nixfleet status` through the real command dispatcher over a real published tree and real signed acks.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { signAck, ackDigest } from '../../protocol/acks.ts';
import { canonicalString } from '../../protocol/canonical.ts';
import { isoTime } from '../../protocol/schemas/common.ts';
import type { StatusReport } from '../../read-side/status.ts';
import {
  MIN,
  NOW,
  OLD_SYSTEM,
  cleanupTempDirs,
  run,
  lifecycle,
  postAcks,
  publishedFixture,
  waiting,
  type Fixture,
} from './fixture.ts';

test.after.each(cleanupTempDirs);

/**
 * ch-0: wave 0 [a] soaked; wave 1 [b activating, c soaking, d pending, eligible].
 * ch-1: gated by ch-0; e pending (held by the channel edge); d's forged "healthy" ack sits in a bundle.
 */
function midRollout(): { fx: Fixture; a: string; b: string; c: string; d: string; e: string } {
  const fx = publishedFixture('status');
  const [a] = fx.wave('ch-0', 0);
  const [b, c, d] = fx.wave('ch-0', 1);
  const [e] = fx.wave('ch-1', 0);
  postAcks(fx, a!, lifecycle(NOW - 12 * MIN, NOW - MIN));
  postAcks(fx, b!, [...waiting(NOW - 10 * MIN, NOW - 5 * MIN), { kind: 'started', at: NOW - MIN }]);
  postAcks(fx, c!, [
    { kind: 'started', at: NOW - 4 * MIN },
    { kind: 'activated', at: NOW - 3 * MIN },
    { kind: 'healthy', at: NOW - 2 * MIN, healthySince: NOW - 2 * MIN },
  ]);
  const dAcks = postAcks(fx, d!, waiting(NOW - 10 * MIN, NOW - MIN));
  postAcks(fx, e!, waiting(NOW - 10 * MIN, NOW - MIN));
  // A forged "healthy on target" ack for d, signed with a's key: if it were believed d would be soaking.
  const last = dAcks[dAcks.length - 1]!;
  const forged = signAck(
    {
      ...last.signed,
      seq: last.signed.seq + 1,
      prev: ackDigest(last),
      kind: 'healthy',
      time: isoTime(NOW - 30_000),
      current: last.signed.target,
      healthySince: isoTime(NOW - 30_000),
    },
    fx.hostKeys[a!]!,
  );
  mkdirSync(join(fx.tree, 'acks/channels/ch-0'), { recursive: true });
  writeFileSync(
    join(fx.tree, 'acks/channels/ch-0/wave-1.json'),
    canonicalString({
      type: 'ack-bundle',
      schemaVersion: 1,
      fleet: 'generated',
      channel: 'ch-0',
      wave: 1,
      generatedAt: isoTime(NOW),
      acks: [forged],
    }),
  );
  return { fx, a: a!, b: b!, c: c!, d: d!, e: e! };
}

const NOW_ISO = isoTime(NOW);

test('human status: release, freshness, channel and wave states, host phases, gates and reasons, the forged ack', async () => {
  const { fx, a, b, c, d, e } = midRollout();
  const r = await run('status', '--tree', fx.tree, '--root', fx.rootFile, '--now', NOW_ISO);
  assert.is(r.code, 0, r.err);
  const out = r.out;
  assert.match(out, 'fleet "generated": release 1');
  assert.match(
    out,
    /timestamp: fresh, issued 2030-03-01T11:10:00Z \(50 min ago\), expires 2030-03-01T12:10:00Z \(in 10 min\)/,
  );
  assert.match(out, /channel ch-0: IN-PROGRESS, wave 2 of 2/);
  assert.match(out, /channel ch-1: GATED, wave 1 of 2/);
  assert.match(out, /channel ch-1 waits for channel ch-0 to complete/);
  assert.match(out, /wave 1 {2}complete {2}1\/1 done/);
  assert.match(out, /wave 2 {2}active {4}0\/3 done, 1 activating, 1 soaking, 1 pending/);
  const row = (h: string) => out.split('\n').find((l) => l.startsWith(`${h} `)) ?? '';
  assert.match(row(a), /ch-0 +1 +soaked += target/);
  assert.match(row(b), /ch-0 +2 +activating .* started 60 s ago/);
  assert.match(row(c), /ch-0 +2 +healthy += target/);
  assert.match(
    row(d),
    new RegExp(
      `ch-0 +2 +pending +0a0a0a0a…-nixos-system-old .* heartbeat 60 s ago +every gate passed`,
    ),
  );
  assert.match(
    row(e),
    /ch-1 +1 +pending .* channel-edge: channel ch-1 waits for channel ch-0 to complete/,
  );
  assert.match(out, /acks: \d+ verified, 1 REJECTED \(not counted\)/);
  assert.match(out, `rejected acks/channels/ch-0/wave-1.json#0 (claims host ${d}): UnknownKey`);
});

test('--json: the fleet view with current closures, the rejected ack, and --channel / --host filters', async () => {
  const { fx, a, d, e } = midRollout();
  const r = await run(
    'status',
    '--tree',
    fx.tree,
    '--root',
    fx.rootFile,
    '--now',
    NOW_ISO,
    '--json',
  );
  assert.is(r.code, 0, r.err);
  const j = JSON.parse(r.out) as StatusReport;
  assert.is(j.at, NOW_ISO);
  assert.is(j.freshness.state, 'fresh');
  for (const h of j.hosts)
    assert.ok(
      h.lastAck === null || /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/.test(h.lastAck),
      'every time is ISO',
    );
  assert.is(j.release.version, 1);
  assert.is(j.timestamp.secondsLeft, 600);
  assert.equal(
    j.channels.map((c) => [c.channel, c.state]),
    [
      ['ch-0', 'in-progress'],
      ['ch-1', 'gated'],
    ],
  );
  assert.equal(
    j.channels[0]!.waves.map((w) => w.state),
    ['complete', 'active'],
  );
  const byHost = new Map(j.hosts.map((h) => [h.host, h]));
  assert.is(j.hosts.length, 8);
  assert.is(byHost.get(a)!.phase, 'soaked');
  assert.is(byHost.get(a)!.current, byHost.get(a)!.target);
  assert.is(byHost.get(d)!.phase, 'pending');
  assert.is(byHost.get(d)!.current, OLD_SYSTEM);
  assert.is(byHost.get(d)!.gate, null);
  assert.is(byHost.get(e)!.gate, 'channel-edge');
  assert.is(j.acks.rejected.length, 1);
  assert.is(j.acks.rejected[0]!.host, d);

  const ch = JSON.parse(
    (
      await run(
        'status',
        '--tree',
        fx.tree,
        '--root',
        fx.rootFile,
        '--now',
        NOW_ISO,
        '--json',
        '--channel',
        'ch-1',
      )
    ).out,
  ) as StatusReport;
  assert.equal(
    ch.channels.map((c) => c.channel),
    ['ch-1'],
  );
  assert.ok(ch.hosts.length === 4 && ch.hosts.every((h) => h.channel === 'ch-1'));
  const one = await run(
    'status',
    '--tree',
    fx.tree,
    '--root',
    fx.rootFile,
    '--now',
    NOW_ISO,
    '--host',
    e,
  );
  assert.is(one.code, 0, one.err);
  assert.match(one.out, `latest ack of ${e}: seq 3, heartbeat at ${isoTime(NOW - MIN)}`);
  assert.not.match(one.out, `\n${a} `);
});

test('a tampered channel plan -> exit 1 naming the file (text and --json); nothing else printed', async () => {
  const { fx } = midRollout();
  const file = 'releases/1/channels/ch-0.json';
  const p = join(fx.tree, file);
  writeFileSync(
    p,
    readFileSync(p, 'utf8').replace(/"wave":\d/, (m) =>
      m === '"wave":0' ? '"wave":1' : '"wave":0',
    ),
  );
  const r = await run('status', '--tree', fx.tree, '--root', fx.rootFile, '--now', NOW_ISO);
  assert.is(r.code, 1);
  assert.is(r.out, '');
  assert.match(r.err, `REFUSED: BadSignature: ${file}`);
  const j = await run(
    'status',
    '--tree',
    fx.tree,
    '--root',
    fx.rootFile,
    '--now',
    NOW_ISO,
    '--json',
  );
  assert.is(j.code, 1);
  assert.equal(
    (JSON.parse(j.out) as { ok: boolean; error: { code: string; file: string } }).error.file,
    file,
  );
});

test('a tampered host manifest: --host of that host refuses it (as its agent would); the fleet view shows no manifest', async () => {
  const { fx } = midRollout();
  const file = 'releases/1/hosts/host-005.json';
  const p = join(fx.tree, file);
  writeFileSync(
    p,
    readFileSync(p, 'utf8').replace(/"wave":\d/, (m) =>
      m === '"wave":0' ? '"wave":1' : '"wave":0',
    ),
  );
  const one = await run(
    'status',
    '--tree',
    fx.tree,
    '--root',
    fx.rootFile,
    '--now',
    NOW_ISO,
    '--host',
    'host-005',
  );
  assert.is(one.code, 1);
  assert.is(one.out, '');
  assert.match(one.err, `REFUSED: BadSignature: ${file}`);
  const t = await run(
    'trace',
    '--tree',
    fx.tree,
    '--root',
    fx.rootFile,
    '--now',
    NOW_ISO,
    '--host',
    'host-005',
  );
  assert.is(t.code, 1);
  assert.match(t.err, `REFUSED: BadSignature: ${file}`);
  // Every other view is unaffected: what it shows is verified from the plans; \`nixfleet verify\` audits manifests.
  assert.is(
    (await run('status', '--tree', fx.tree, '--root', fx.rootFile, '--now', NOW_ISO)).code,
    0,
  );
  const other = fx.wave('ch-0', 0)[0]!;
  assert.is(
    (
      await run(
        'status',
        '--tree',
        fx.tree,
        '--root',
        fx.rootFile,
        '--now',
        NOW_ISO,
        '--host',
        other,
      )
    ).code,
    0,
  );
  assert.is((await run('verify', fx.tree, '--root', fx.rootFile, '--now', NOW_ISO)).code, 1);
});

test('an expired timestamp: the last verified state under a STALE banner, exit 3 (text and --json)', async () => {
  const { fx, a } = midRollout();
  const r = await run(
    'status',
    '--tree',
    fx.tree,
    '--root',
    fx.rootFile,
    '--now',
    isoTime(NOW + 11 * MIN),
  );
  assert.is(r.code, 3, r.err);
  assert.ok(r.out.startsWith('STALE: Stale: timestamp.json: '), r.out);
  assert.match(r.out, 'hosts activate nothing new');
  assert.match(r.out, 'every signature verified as of 2030-03-01T12:09:59Z');
  assert.match(r.out, /timestamp: STALE, .* expired 2030-03-01T12:10:00Z \(60 s ago\)/);
  assert.match(r.out, new RegExp(`${a} +ch-0 +1 +soaked`), 'the fleet is still shown');
  const j = await run(
    'status',
    '--tree',
    fx.tree,
    '--root',
    fx.rootFile,
    '--now',
    isoTime(NOW + 11 * MIN),
    '--json',
  );
  assert.is(j.code, 3);
  const report = JSON.parse(j.out) as StatusReport;
  assert.equal(report.freshness, {
    state: 'stale',
    code: 'Stale',
    file: 'timestamp.json',
    detail: (report.freshness as { detail: string }).detail,
    verifiedAsOf: '2030-03-01T12:09:59Z',
  });
  assert.is(report.timestamp.secondsLeft, -60);
  // A signature failure on top of the expiry is still a refusal, not a stale view.
  const p = join(fx.tree, 'releases/1/channels/ch-0.json');
  writeFileSync(p, readFileSync(p, 'utf8').replace('"fleet":"generated"', '"fleet":"generatee"'));
  const bad = await run(
    'status',
    '--tree',
    fx.tree,
    '--root',
    fx.rootFile,
    '--now',
    isoTime(NOW + 11 * MIN),
  );
  assert.is(bad.code, 1);
  assert.match(bad.err, 'REFUSED: ');
});

test('I/O errors exit 2 and name the option and the path', async () => {
  const { fx } = midRollout();
  const missing = join(fx.dir, 'nope');
  const r = await run('status', '--tree', missing, '--root', fx.rootFile, '--now', NOW_ISO);
  assert.is(r.code, 2);
  assert.match(r.err, `--tree ${missing}: no such file or directory`);
  const root = await run('status', '--tree', fx.tree, '--root', missing, '--now', NOW_ISO);
  assert.is(root.code, 2);
  assert.match(root.err, `--root ${missing}: no such file or directory`);
  const t = await run(
    'trace',
    '--tree',
    missing,
    '--root',
    fx.rootFile,
    '--now',
    NOW_ISO,
    '--channel',
    'ch-0',
  );
  assert.is(t.code, 2);
  assert.match(t.err, `--tree ${missing}: no such file or directory`);
  const log = await run(
    'trace',
    '--tree',
    fx.tree,
    '--root',
    fx.rootFile,
    '--now',
    NOW_ISO,
    '--channel',
    'ch-0',
    '--acks-log',
    missing,
  );
  assert.is(log.code, 2);
  assert.match(log.err, `--acks-log ${missing}: no such file or directory`);
  const both = await run(
    'status',
    '--tree',
    fx.tree,
    '--url',
    'https://127.0.0.1:1/',
    '--root',
    fx.rootFile,
  );
  assert.is(both.code, 2);
  assert.match(both.err, 'give exactly one of --tree DIR or --url URL');
});

test('usage errors exit 2; --help exits 0', async () => {
  const { fx } = midRollout();
  assert.is((await run('status', '--tree', fx.tree)).code, 2, 'no --root');
  assert.is((await run('status', '--root', fx.rootFile)).code, 2, 'no --tree');
  assert.is(
    (await run('status', '--tree', fx.tree, '--root', fx.rootFile, '--now', 'yesterday')).code,
    2,
  );
  const unknown = await run(
    'status',
    '--tree',
    fx.tree,
    '--root',
    fx.rootFile,
    '--now',
    NOW_ISO,
    '--host',
    'nope',
  );
  assert.is(unknown.code, 2);
  assert.match(unknown.err, 'no host "nope" in release 1');
  assert.is(
    (
      await run(
        'status',
        '--tree',
        fx.tree,
        '--root',
        fx.rootFile,
        '--now',
        NOW_ISO,
        '--channel',
        'ch-9',
      )
    ).code,
    2,
  );
  assert.is(
    (
      await run(
        'status',
        '--tree',
        fx.tree,
        '--root',
        join(fx.dir, 'missing.json'),
        '--now',
        NOW_ISO,
      )
    ).code,
    2,
    'unreadable root is an I/O error',
  );
  const h = await run('status', '--help');
  assert.is(h.code, 0);
  assert.match(h.out, 'Usage: nixfleet status --tree DIR --root PINNED_ROOT.json');
});

test('the nixfleet binary: status exits 0 with the table, 1 on a tree that does not verify', () => {
  const { fx, a } = midRollout();
  const bin = fileURLToPath(new URL('../../bin/nixfleet.js', import.meta.url));
  const ok = spawnSync(
    process.execPath,
    [bin, 'status', '--tree', fx.tree, '--root', fx.rootFile, '--now', NOW_ISO, '--host', a],
    { encoding: 'utf8', timeout: 60_000 },
  );
  assert.is(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, new RegExp(`${a} +ch-0 +1 +soaked`));
  writeFileSync(
    join(fx.tree, 'timestamp.json'),
    readFileSync(join(fx.tree, 'timestamp.json'), 'utf8').replace(
      '"fleet":"generated"',
      '"fleet":"generatee"',
    ),
  );
  const bad = spawnSync(
    process.execPath,
    [bin, 'status', '--tree', fx.tree, '--root', fx.rootFile, '--now', NOW_ISO],
    { encoding: 'utf8', timeout: 60_000 },
  );
  assert.is(bad.status, 1, bad.stderr);
  assert.match(bad.stderr, 'REFUSED: BadSignature: timestamp.json');
});

test.run();
