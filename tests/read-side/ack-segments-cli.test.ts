// A segmented ack log from the operator's side: `verify --acks` and `trace` read every segment (named
// by the log directory or any of its files), `cp archive-acks` moves old segments away, and the audit
// of archive + live is complete from seq 1 while the live segments alone start at the floor.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeAckSnapshot } from '../../control-plane/ack-log.ts';
import { ackSegmentName, formatRecord } from '../../protocol/ack-log.ts';
import { ackDigest, type SignedAck } from '../../protocol/acks.ts';
import { canonicalString, sha256Digest } from '../../protocol/canonical.ts';
import { isoTime } from '../../protocol/schemas/common.ts';
import {
  NOW,
  MIN,
  cleanupTempDirs,
  lifecycle,
  postAcks,
  publishedFixture,
  run,
} from './fixture.ts';

test.after.each(cleanupTempDirs);

const NOW_ISO = isoTime(NOW);
const record = (a: SignedAck) => {
  const canonical = canonicalString(a);
  return formatRecord({ digest: sha256Digest(canonical), canonical });
};

interface AuditJson {
  acks: {
    ok: boolean;
    floors: string[];
    logs: { records: number; segments: number }[];
    hosts: { host: string; acks: number; complete: boolean; startsAt?: { seq: number } }[];
  };
}

test('verify --acks and trace over segments; cp archive-acks; archive + live complete, live alone from the floor', async () => {
  const fx = publishedFixture('segments');
  const hosts = Object.values(fx.plans)
    .flatMap((p) => Object.keys(p.hosts))
    .sort()
    .slice(0, 2);
  const chains = hosts.map((h) => postAcks(fx, h, lifecycle(NOW - 40 * MIN)));
  // Three segments as the endpoint would have rolled them: each host's acks spread over all three.
  const logDir = join(fx.tree, '.ack-log');
  mkdirSync(logDir);
  const thirds = [0, 1, 2].map((i) =>
    chains.flatMap((c) =>
      c.slice(Math.floor((c.length * i) / 3), Math.floor((c.length * (i + 1)) / 3)),
    ),
  );
  thirds.forEach((acks, i) =>
    writeFileSync(join(logDir, ackSegmentName(i)), Buffer.concat(acks.map(record))),
  );
  const total = chains.reduce((n, c) => n + c.length, 0);
  const verify = ['verify', fx.tree, '--root', fx.rootFile, '--now', NOW_ISO, '--acks', '--json'];

  // The default log (TREE/.ack-log) and its first file both stand for every segment.
  for (const extra of [[], ['--ack-log', join(logDir, 'acks.log')]]) {
    const r = await run(...verify, ...extra);
    assert.is(r.code, 0, r.err + r.out);
    const a = (JSON.parse(r.out) as AuditJson).acks;
    assert.equal(
      a.logs.map((l) => [l.records, l.segments]),
      [[total, 3]],
    );
    assert.ok(a.hosts.every((h) => h.complete && h.startsAt === undefined));
  }
  // The trace of hosts[0] reads its channel's and its gating channels' acks (read-side/scope.ts).
  const channel = Object.values(fx.plans).find((p) => p.hosts[hosts[0]!])!.channel;
  const scope = new Set(
    [channel, ...fx.plans[channel]!.gatedBy].flatMap((c) => Object.keys(fx.plans[c]!.hosts)),
  );
  const read = chains.reduce((n, c, i) => n + (scope.has(hosts[i]!) ? c.length : 0), 0);
  const trace = await run(
    'trace',
    '--tree',
    fx.tree,
    '--root',
    fx.rootFile,
    '--host',
    hosts[0]!,
    '--now',
    NOW_ISO,
  );
  assert.is(trace.code, 0, trace.err);
  assert.match(
    trace.out,
    `${read} verified acks of the ${scope.size} hosts the gates read (channel ${channel}, the channels gating it, its budgets) from ${join(logDir, 'acks.log')} (${read} records)`,
  );

  // Archiving needs the endpoint's snapshot to cover the segments left (it writes one at each roll).
  const archive = join(fx.dir, 'archive');
  const args = ['cp', 'archive-acks', '--tree', fx.tree, '--before', '2', '--to', archive];
  const refused = await run(...args);
  assert.is(refused.code, 2);
  assert.match(refused.err, 'needs a snapshot');
  const last = thirds[1]![thirds[1]!.length - 1]!;
  writeAckSnapshot(logDir, {
    type: 'ack-log-snapshot',
    version: 1,
    at: { segment: 2, bytes: 0, lastDigest: ackDigest(last) },
    heads: [],
  });
  const archived = await run(...args);
  assert.is(archived.code, 0, archived.err);
  assert.ok(existsSync(join(archive, 'acks.log')) && existsSync(join(archive, ackSegmentName(1))));
  assert.not.ok(existsSync(join(logDir, 'acks.log')));

  const both = await run(...verify, '--ack-log', archive, '--ack-log', logDir);
  assert.is(both.code, 0, both.out);
  const whole = (JSON.parse(both.out) as AuditJson).acks;
  assert.ok(whole.hosts.every((h) => h.complete && h.startsAt === undefined));
  assert.is(
    whole.hosts.reduce((n, h) => n + h.acks, 0),
    total,
  );

  const liveOnly = await run(...verify.filter((a) => a !== '--json'));
  assert.is(liveOnly.code, 0, liveOnly.out);
  assert.match(liveOnly.out, 'history starts at floor');
  assert.match(liveOnly.out, 'acks-000002.floor');
  assert.match(liveOnly.out, /floor .*unsigned/);
});

test.run();
