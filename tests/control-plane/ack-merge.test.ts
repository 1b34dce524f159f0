// Merging replicas' ack logs: a grow-only set union with a deterministic head per host.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import {
  AckService,
  loadReleaseView,
  mergeAckRecords,
  mergeAckLogFiles,
  parseAckLog,
  ACK_LOG_FILE,
  type LogRecord,
} from '../../control-plane/index.ts';
import {
  fixtureHosts,
  fixtureKeys,
  writeTree,
  tempDir,
  removeDir,
  AckChain,
  logRecordOf,
} from './tree-fixture.ts';

const test = suite('control-plane ack log merge');
const keys = fixtureKeys();
const hosts = fixtureHosts({ web1: {}, db1: {} });
const rec = (a: object): LogRecord => logRecordOf(a);

test('union is order-independent and idempotent; the head is the highest seq', () => {
  const c = new AckChain(hosts[0]!);
  const a = [c.next(), c.next(), c.next()].map(rec);
  const d = new AckChain(hosts[1]!);
  const b = [d.next()].map(rec);
  const left = mergeAckRecords([
    [a[0]!, a[1]!],
    [a[1]!, a[2]!, b[0]!],
  ]);
  const right = mergeAckRecords([[b[0]!, a[2]!], [a[0]!], [a[1]!, a[0]!]]);
  assert.equal(
    left.records.map((r) => r.digest),
    right.records.map((r) => r.digest),
  );
  assert.is(left.records.length, 4);
  assert.equal(mergeAckRecords([left.records, left.records]).records, left.records);
});

test('a fork is kept in the set, reported, and resolved to the smaller digest on every replica', () => {
  const c = new AckChain(hosts[0]!);
  const a1 = c.next();
  const x = c.make({ kind: 'healthy' });
  const y = c.make({ kind: 'failed' });
  const r1 = mergeAckRecords([
    [rec(a1), rec(x)],
    [rec(a1), rec(y)],
  ]);
  const r2 = mergeAckRecords([
    [rec(a1), rec(y)],
    [rec(a1), rec(x)],
  ]);
  assert.is(r1.forks.length, 1);
  assert.is(r1.forks[0]!.seq, 2);
  const headDigest = [rec(x).digest, rec(y).digest].sort()[0];
  assert.is(r1.records[r1.records.length - 1]!.digest, headDigest);
  assert.equal(r1.records, r2.records);
});

test('with a release view, forged and foreign-fleet acks are dropped; a merged log replays into the right heads', async () => {
  const dir = tempDir('merge');
  try {
    writeTree(dir, { keys, hosts, version: 1 });
    const view = loadReleaseView(dir);
    const c = new AckChain(hosts[0]!);
    const good = [c.next(), c.next()];
    const forged = new AckChain({ ...hosts[1]!, key: hosts[0]!.key }).next();
    const foreign = new AckChain(hosts[1]!).next({ fleet: 'other-fleet' });
    const { writeFileSync, mkdirSync } = await import('node:fs');
    const { formatRecord } = await import('../../protocol/ack-log.ts');
    mkdirSync(join(dir, 'r1'));
    mkdirSync(join(dir, 'r2'));
    writeFileSync(join(dir, 'r1', ACK_LOG_FILE), formatRecord(rec(good[0]!)));
    writeFileSync(
      join(dir, 'r2', ACK_LOG_FILE),
      Buffer.concat([
        formatRecord(rec(good[0]!)),
        formatRecord(rec(good[1]!)),
        formatRecord(rec(forged)),
        formatRecord(rec(foreign)),
      ]),
    );
    const result = mergeAckLogFiles(
      [join(dir, 'r1', ACK_LOG_FILE), join(dir, 'r2', ACK_LOG_FILE)],
      join(dir, 'merged'),
      view,
    );
    assert.equal(
      result.rejected.map((r) => [r.host, r.reason.split(':')[0]]),
      [
        ['db1', 'UnknownKey'],
        ['db1', 'WrongFleet'],
      ],
    );
    assert.is(parseAckLog(readFileSync(join(dir, 'merged', ACK_LOG_FILE))).records.length, 2);
    const svc = await AckService.open({
      logDir: join(dir, 'merged'),
      publishRoot: dir,
      rateLimit: false,
    });
    svc.setView(view);
    assert.is(svc.head('web1')?.seq, 2);
    assert.is(
      (
        await svc.submit(Buffer.from(JSON.stringify(c.next())), {
          cn: 'web1',
          ou: 'agent',
          serial: '1',
        })
      ).status,
      201,
    );
    await svc.close();
  } finally {
    removeDir(dir);
  }
});

test.run();
