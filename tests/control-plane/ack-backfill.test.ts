// An endpoint that holds a host's chain only from seq N > 1 (adopted after a rebuild, or recovered from
// the published heads after its log was lost) says so (missingBelow) and takes the older acks back,
// each chaining by digest to what it holds, until the history is complete again.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  AckService,
  loadReleaseView,
  parseAckLog,
  ACK_LOG_FILE,
  type ClientIdentity,
} from '../../control-plane/index.ts';
import { ackDigest, type SignedAck } from '../../protocol/acks.ts';
import {
  fixtureHosts,
  fixtureKeys,
  writeTree,
  tempDir,
  removeDir,
  AckChain,
} from './tree-fixture.ts';

const test = suite('control-plane ack back-fill');
const keys = fixtureKeys();
const hosts = fixtureHosts({ web1: {}, web2: {} });
const agent = (cn: string): ClientIdentity => ({ cn, ou: 'agent', serial: '1001' });
const body = (x: unknown) => Buffer.from(JSON.stringify(x));
let dir: string;
let events: Record<string, unknown>[];

async function service(): Promise<AckService> {
  const svc = await AckService.open({
    logDir: join(dir, 'log'),
    publishRoot: dir,
    rateLimit: false,
    debounceMs: 5,
    log: (e) => events.push(e),
  });
  svc.setView(loadReleaseView(dir));
  return svc;
}
const logged = () =>
  parseAckLog(readFileSync(join(dir, 'log', ACK_LOG_FILE)))
    .records.map((r) => r.digest)
    .sort();
const chainOf = (n: number, host = hosts[0]!) => {
  const c = new AckChain(host);
  return { chain: c, acks: Array.from({ length: n }, () => c.next()) };
};

test.before.each(() => {
  dir = tempDir('backfill');
  events = [];
  writeTree(dir, { keys, hosts, version: 1 });
});
test.after.each(() => removeDir(dir));

test('adopted at seq 5: answers say missingBelow, only the digest-chained ack below is accepted, down to seq 1', async () => {
  const { chain, acks } = chainOf(5);
  const [a1, a2, a3, a4, a5] = acks as [SignedAck, SignedAck, SignedAck, SignedAck, SignedAck];
  let svc = await service();
  const adopted = await svc.submit(body(a5), agent('web1'));
  assert.is(adopted.status, 201);
  assert.is(adopted.body['missingBelow'], 5);
  const skipped = await svc.submit(body(a3), agent('web1'));
  assert.is(skipped.status, 409);
  assert.match(String(skipped.body['reason']), /gap below.*back-fill seq 4/);
  assert.is(skipped.body['missingBelow'], 5);
  // Another ack with seq 4, validly signed, does not chain to seq 5 by digest: a fork, refused.
  const other4 = new AckChain(hosts[0]!).make({ seq: 4, prev: ackDigest(a3), kind: 'failed' });
  assert.is((await svc.submit(body(other4), agent('web1'))).status, 409);
  const b4 = await svc.submit(body(a4), agent('web1'));
  assert.is(b4.status, 201, JSON.stringify(b4.body));
  assert.is(b4.body['status'], 'backfilled');
  assert.is(b4.body['missingBelow'], 4);
  // The head is unchanged by back-fill; a restart keeps the floor (replay).
  assert.is(svc.head('web1')?.seq, 5);
  await svc.close();
  svc = await service();
  assert.equal(svc.head('web1'), { seq: 5, digest: ackDigest(a5), missingBelow: 4 });
  for (const a of [a3, a2])
    assert.is((await svc.submit(body(a), agent('web1'))).body['missingBelow'], a.signed.seq);
  const last = await svc.submit(body(a1), agent('web1'));
  assert.is(last.status, 201);
  assert.is(last.body['missingBelow'], undefined, 'history complete');
  assert.is((await svc.submit(body(a1), agent('web1'))).status, 409, 'seq 1 again is a replay');
  const a6 = chain.next();
  const forward = await svc.submit(body(a6), agent('web1'));
  assert.is(forward.status, 201);
  assert.is(forward.body['missingBelow'], undefined);
  await svc.close();
  assert.equal(logged(), [...acks, a6].map(ackDigest).sort());
  svc = await service();
  assert.equal(svc.head('web1'), { seq: 6, digest: ackDigest(a6) });
  await svc.close();
});

test('log lost, published heads kept: the endpoint takes the heads back into its log and asks for the rest', async () => {
  const { acks } = chainOf(4);
  const { acks: other } = chainOf(2, hosts[1]!);
  let svc = await service();
  for (const a of acks) assert.is((await svc.submit(body(a), agent('web1'))).status, 201);
  for (const a of other) assert.is((await svc.submit(body(a), agent('web2'))).status, 201);
  await svc.close(); // flushes acks/hosts/*.json
  rmSync(join(dir, 'log'), { recursive: true });
  // A published file that does not verify (tampered on the served disk) is not taken in.
  const tampered = JSON.parse(readFileSync(join(dir, 'acks/hosts/web2.json'), 'utf8'));
  tampered.signed.kind = 'failed';
  writeFileSync(join(dir, 'acks/hosts/web2.json'), JSON.stringify(tampered));

  svc = await service();
  assert.equal(svc.head('web1'), { seq: 4, digest: ackDigest(acks[3]!), missingBelow: 4 });
  assert.is(svc.head('web2'), undefined);
  assert.ok(
    events.some(
      (e) => e['event'] === 'published-ack-ignored' && String(e['file']).endsWith('web2.json'),
    ),
  );
  const behind = events.find((e) => e['event'] === 'ack-log-behind-published-heads');
  assert.equal(behind?.['adopted'], [{ host: 'web1', seq: 4, logSeq: null }]);
  // Re-posting the head is a duplicate once it is on disk, and the answer asks for the back-fill.
  const dup = await svc.submit(body(acks[3]), agent('web1'));
  assert.is(dup.status, 200);
  assert.is(dup.body['missingBelow'], 4);
  for (const a of acks.slice(0, 3).reverse())
    assert.is((await svc.submit(body(a), agent('web1'))).status, 201);
  assert.is(svc.head('web1')?.missingBelow, undefined);
  await svc.close();
  assert.equal(logged(), acks.map(ackDigest).sort());
});

test("a published file holding another host's ack (valid, signed) is not taken in under its name", async () => {
  const { acks } = chainOf(3);
  let svc = await service();
  for (const a of acks) assert.is((await svc.submit(body(a), agent('web1'))).status, 201);
  await svc.close();
  rmSync(join(dir, 'log'), { recursive: true });
  writeFileSync(join(dir, 'acks/hosts/web2.json'), readFileSync(join(dir, 'acks/hosts/web1.json')));
  svc = await service();
  assert.is(svc.head('web2'), undefined);
  assert.equal(svc.head('web1'), { seq: 3, digest: ackDigest(acks[2]!), missingBelow: 3 });
  const ignored = events.find((e) => e['event'] === 'published-ack-ignored');
  assert.match(String(ignored?.['file']), /acks\/hosts\/web2\.json$/);
  assert.match(String(ignored?.['error']), /web2\.json: holds an ack of host web1$/);
  await svc.close();
  assert.equal(logged(), [ackDigest(acks[2]!)]);
});

test('log restored from an old copy: the published head is adopted over it and back-fill joins the held run', async () => {
  const { acks } = chainOf(6);
  let svc = await service();
  for (const a of acks.slice(0, 3)) await svc.submit(body(a), agent('web1'));
  await svc.close();
  const oldLog = readFileSync(join(dir, 'log', ACK_LOG_FILE));
  svc = await service();
  for (const a of acks.slice(3)) assert.is((await svc.submit(body(a), agent('web1'))).status, 201);
  await svc.close();
  writeFileSync(join(dir, 'log', ACK_LOG_FILE), oldLog);

  svc = await service();
  assert.equal(svc.head('web1'), { seq: 6, digest: ackDigest(acks[5]!), missingBelow: 6 });
  assert.equal(events.find((e) => e['event'] === 'ack-log-behind-published-heads')?.['adopted'], [
    { host: 'web1', seq: 6, logSeq: 3 },
  ]);
  assert.is((await svc.submit(body(acks[4]), agent('web1'))).body['missingBelow'], 5);
  // seq 4 chains to the held seq 3, which chains down to seq 1: complete.
  const joined = await svc.submit(body(acks[3]), agent('web1'));
  assert.is(joined.status, 201);
  assert.is(joined.body['missingBelow'], undefined);
  await svc.close();
  svc = await service();
  assert.equal(svc.head('web1'), { seq: 6, digest: ackDigest(acks[5]!) });
  await svc.close();
  assert.equal(logged(), acks.map(ackDigest).sort());
});

test.run();
