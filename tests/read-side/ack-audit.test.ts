// The offline audit of ack history (`nixfleet verify --acks`: every host's chain from seq 1, forks,
// gaps, forged acks), replica logs read as one union by the operator read side, and `nixfleet cp merge`.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ackTrustOf,
  acksDirOf,
  loadVerifiedRelease,
  readPinnedRoot,
} from '../../read-side/load.ts';
import { auditAckLogs, readAckHistory } from '../../read-side/acks.ts';
import { auditAckChains, formatRecord, parseAckLog, ACK_LOG_FILE } from '../../protocol/ack-log.ts';
import { ackDigest, signAck, type SignedAck } from '../../protocol/acks.ts';
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
  type Fixture,
} from './fixture.ts';

test.after.each(cleanupTempDirs);

const NOW_ISO = isoTime(NOW);
const record = (a: SignedAck) => {
  const canonical = canonicalString(a);
  return formatRecord({ digest: sha256Digest(canonical), canonical });
};
const writeLog = (file: string, acks: SignedAck[]) => {
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, Buffer.concat(acks.map(record)));
};
/** Two hosts' full chains; the fixture's log holds both. */
function twoChains(fx: Fixture): { host: string; acks: SignedAck[] }[] {
  const hosts = Object.values(fx.plans)
    .flatMap((p) => Object.keys(p.hosts))
    .sort()
    .slice(0, 2);
  return hosts.map((host) => ({ host, acks: postAcks(fx, host, lifecycle(NOW - 40 * MIN)) }));
}
/** The same chain's ack at `seq`, re-signed with other content: a fork the host itself signed. */
function forkOf(fx: Fixture, ack: SignedAck): SignedAck {
  return signAck({ ...ack.signed, kind: 'failed', reason: 'fork' }, fx.hostKeys[ack.signed.host]!);
}

test('chain audit: complete, gap (also below the lowest held seq), fork, broken link', () => {
  const l = (seq: number, digest: string, prev: string | null) => ({
    host: 'h',
    seq,
    digest,
    prev,
  });
  assert.equal(auditAckChains([l(2, 'b', 'a'), l(1, 'a', null), l(1, 'a', null)]), [
    { host: 'h', acks: 2, head: 2, gaps: [], forks: [], broken: [], complete: true },
  ]);
  const [gappy] = auditAckChains([l(3, 'c', 'b'), l(4, 'd', 'c'), l(7, 'g', 'f')]);
  assert.equal(gappy!.gaps, [
    { from: 1, to: 2 },
    { from: 5, to: 6 },
  ]);
  assert.not.ok(gappy!.complete);
  const [forked] = auditAckChains([
    l(1, 'a', null),
    l(2, 'b', 'a'),
    l(2, 'x', 'a'),
    l(3, 'c', 'z'),
  ]);
  assert.equal(forked!.forks, [{ seq: 2, digests: ['b', 'x'] }]);
  assert.equal(
    forked!.broken.map((b) => b.seq),
    [3],
  );
});

test('verify --acks: a complete log is OK; a gap and a forged ack are findings (exit 1); replica logs are read as their union', async () => {
  const fx = publishedFixture('audit');
  const chains = twoChains(fx);
  const args = ['verify', fx.tree, '--root', fx.rootFile, '--now', NOW_ISO, '--acks'];
  const ok = await run(...args, '--ack-log', fx.logFile, '--json');
  assert.is(ok.code, 0, ok.err + ok.out);
  const report = JSON.parse(ok.out) as {
    ok: boolean;
    acks: { ok: boolean; hosts: { host: string; head: number; complete: boolean }[] };
  };
  assert.ok(report.ok && report.acks.ok);
  assert.equal(
    report.acks.hosts.map((h) => [h.host, h.head, h.complete]),
    chains.map((c) => [c.host, c.acks.length, true]),
  );

  // Replica 1 lost acks 2-3 of the first host; a forged ack (another host's key) sits in replica 2.
  const [first, second] = chains as [
    { host: string; acks: SignedAck[] },
    { host: string; acks: SignedAck[] },
  ];
  const r1 = join(fx.dir, 'r1', ACK_LOG_FILE);
  const r2 = join(fx.dir, 'r2', ACK_LOG_FILE);
  writeLog(r1, [first.acks[0]!, ...first.acks.slice(3), ...second.acks]);
  const forged = signAck(
    {
      ...second.acks[0]!.signed,
      seq: second.acks.length + 1,
      prev: ackDigest(second.acks[second.acks.length - 1]!),
    },
    fx.hostKeys[first.host]!,
  );
  writeLog(r2, [first.acks[1]!, forged]);
  const gap = await run(...args, '--ack-log', r1);
  assert.is(gap.code, 1);
  assert.match(
    gap.out,
    new RegExp(
      `${first.host}: seq 1..${first.acks.length}, ${first.acks.length - 2} acks: gap seq 2-3`,
    ),
  );
  assert.match(gap.out, new RegExp(`${second.host}: .*complete`));
  const both = await run(...args, '--ack-log', r1, '--ack-log', r2, '--json');
  assert.is(both.code, 1);
  const audit = (
    JSON.parse(both.out) as {
      acks: {
        hosts: { host: string; gaps: unknown[] }[];
        rejected: { code: string; host: string }[];
      };
    }
  ).acks;
  assert.equal(audit.hosts.find((h) => h.host === first.host)!.gaps, [{ from: 3, to: 3 }]);
  assert.equal(
    audit.rejected.map((r) => [r.code, r.host]),
    [['UnknownKey', second.host]],
  );
  // With the third replica holding seq 3, the union is complete again (the forged ack aside).
  const r3 = join(fx.dir, 'r3', ACK_LOG_FILE);
  writeLog(r3, [first.acks[2]!]);
  const trust = ackTrustOf(
    await loadVerifiedRelease(fx.tree, readPinnedRoot(fx.rootFile), { now: NOW }),
  );
  const union = auditAckLogs([r1, r2, r3], trust);
  assert.ok(
    union.hosts.every((h) => h.complete),
    JSON.stringify(union.hosts),
  );
  assert.is(union.rejected.length, 1);
  // A fork the host signed is a finding.
  writeLog(r3, [first.acks[2]!, forkOf(fx, first.acks[2]!)]);
  assert.equal(
    auditAckLogs([r1, r3], trust)
      .hosts.find((h) => h.host === first.host)!
      .forks.map((f) => f.seq),
    [3],
  );
  // The operator's history reads the same union (status/trace/dashboard over replicas).
  const history = readAckHistory({
    acksDir: acksDirOf(fx.tree),
    logFile: r1,
    replicaLogs: [r2, r3],
    trust,
  });
  assert.is(
    new Set(history.acks.filter((a) => a.host === first.host).map((a) => a.seq)).size,
    first.acks.length,
  );
  assert.equal(
    history.sources.replicaLogs?.map((l) => [l.file, l.records]),
    [
      [r2, 2],
      [r3, 2],
    ],
  );
});

test('verify --acks without a log to read is a usage error naming the flag', async () => {
  const fx = publishedFixture('audit-nolog');
  const r = await run('verify', fx.tree, '--root', fx.rootFile, '--now', NOW_ISO, '--acks');
  assert.is(r.code, 2);
  assert.match(r.err, /--ack-log/);
});

test('cp merge: replicas merge into one complete log whatever the order; forks and forged acks are reported (exit 1)', async () => {
  const fx = publishedFixture('merge');
  const [first, second] = twoChains(fx) as [
    { host: string; acks: SignedAck[] },
    { host: string; acks: SignedAck[] },
  ];
  const r1 = join(fx.dir, 'r1');
  const r2 = join(fx.dir, 'r2');
  writeLog(join(r1, ACK_LOG_FILE), [...first.acks.slice(0, 3), ...second.acks.slice(2)]);
  writeLog(join(r2, ACK_LOG_FILE), [...first.acks.slice(2), ...second.acks.slice(0, 3)]);
  const a = await run(
    'cp',
    'merge',
    '--tree',
    fx.tree,
    '--out',
    join(fx.dir, 'm1'),
    r1,
    r2,
    '--json',
  );
  assert.is(a.code, 0, a.err + a.out);
  const summary = JSON.parse(a.out) as {
    records: number;
    forks: unknown[];
    chains: { complete: boolean }[];
  };
  assert.is(summary.records, first.acks.length + second.acks.length);
  assert.ok(summary.chains.every((c) => c.complete));
  const b = await run(
    'cp',
    'merge',
    '--tree',
    fx.tree,
    '--out',
    join(fx.dir, 'm2'),
    join(r2, ACK_LOG_FILE),
    join(r1, ACK_LOG_FILE),
  );
  assert.is(b.code, 0, b.err);
  const m1 = readFileSync(join(fx.dir, 'm1', ACK_LOG_FILE));
  assert.equal(m1, readFileSync(join(fx.dir, 'm2', ACK_LOG_FILE)), 'order-independent');
  assert.equal(
    parseAckLog(m1)
      .records.map((r) => r.digest)
      .sort(),
    [...first.acks, ...second.acks].map(ackDigest).sort(),
  );
  // Merging into an existing log that is not an input is refused (it would be replaced).
  assert.is((await run('cp', 'merge', '--tree', fx.tree, '--out', join(fx.dir, 'm1'), r1)).code, 2);
  // A replica that accepted a forked seq 2 and a forged ack: merged anyway, both reported.
  const r3 = join(fx.dir, 'r3');
  const forged = signAck({ ...second.acks[0]!.signed, kind: 'failed' }, fx.hostKeys[first.host]!);
  writeLog(join(r3, ACK_LOG_FILE), [first.acks[0]!, forkOf(fx, first.acks[1]!), forged]);
  const c = await run(
    'cp',
    'merge',
    '--tree',
    fx.tree,
    '--out',
    join(fx.dir, 'm1'),
    join(fx.dir, 'm1'),
    r3,
  );
  assert.is(c.code, 1);
  assert.match(c.out, new RegExp(`FORK ${first.host} seq 2`));
  assert.match(c.out, new RegExp(`REJECTED ${second.host} .*UnknownKey`));
  assert.is(
    parseAckLog(readFileSync(join(fx.dir, 'm1', ACK_LOG_FILE))).records.length,
    first.acks.length + second.acks.length + 1,
  );
});

test.run();
