// Every rule of the ack endpoint, against the transport-independent AckService, plus the endpoint
// behind nginx (identity headers trusted on loopback only) and log recovery.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { appendFileSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  AckService,
  startAckEndpoint,
  loadReleaseView,
  parseAckLog,
  AckLogCorrupt,
  ACK_LOG_FILE,
  type ClientIdentity,
} from '../../control-plane/index.ts';
import { LIMITS } from '../../protocol/limits.ts';
import { ackDigest } from '../../protocol/acks.ts';
import {
  fixtureHosts,
  fixtureKeys,
  writeTree,
  tempDir,
  removeDir,
  AckChain,
  type FixtureHost,
} from './tree-fixture.ts';
import { req } from './http.ts';

const test = suite('control-plane ack endpoint');
const keys = fixtureKeys();
const hosts = fixtureHosts({
  web1: { wave: 0 },
  web2: { wave: 0 },
  db1: { channel: 'db', wave: 0 },
  gone: { wave: 1 },
});
const byName = (n: string) => hosts.find((h) => h.name === n) as FixtureHost;
let dir: string;

const agent = (cn: string, serial = '1001'): ClientIdentity => ({ cn, ou: 'agent', serial });
const body = (x: unknown) => Buffer.from(JSON.stringify(x));

async function service(
  opts: { rateLimit?: false | { burst: number; perSecond: number }; now?: () => number } = {},
) {
  const svc = await AckService.open({
    logDir: join(dir, 'log'),
    publishRoot: dir,
    rateLimit: opts.rateLimit ?? false,
    now: opts.now,
    debounceMs: 5,
  });
  svc.setView(loadReleaseView(dir));
  return svc;
}

test.before.each(() => {
  dir = tempDir('acks');
  writeTree(dir, { keys, hosts, version: 3, revokedHosts: [{ host: 'gone', certSerial: '1F00' }] });
});
test.after.each(() => removeDir(dir));

test('503 until primed', async () => {
  const svc = await AckService.open({ logDir: join(dir, 'log'), publishRoot: dir });
  const r = await svc.submit(body(new AckChain(byName('web1')).next()), agent('web1'));
  assert.is(r.status, 503);
  assert.ok(r.retryAfter);
  assert.equal(r.body, { error: 'NotPrimed', reason: 'no verified release is installed yet' });
  await svc.close();
});

test('stores a valid ack (201), an identical re-post is an idempotent 200', async () => {
  const svc = await service();
  const ack = new AckChain(byName('web1')).next();
  const r1 = await svc.submit(body(ack), agent('web1'));
  assert.is(r1.status, 201, JSON.stringify(r1.body));
  assert.is(r1.body['digest'], ackDigest(ack));
  const r2 = await svc.submit(body(ack), agent('web1'));
  assert.is(r2.status, 200);
  assert.is(r2.body['status'], 'duplicate');
  assert.is(parseAckLog(readFileSync(join(dir, 'log', ACK_LOG_FILE))).records.length, 1);
  await svc.close();
});

test('malformed bodies are 400 with the reason', async () => {
  const svc = await service();
  const cases: [string, RegExp][] = [
    ['not json', /Malformed/],
    ['{"signed":{"a":1,"a":2},"signatures":[]}', /duplicate key/],
    [JSON.stringify({ ...new AckChain(byName('web1')).make(), extra: 1 }), /Malformed/],
  ];
  for (const [text, re] of cases) {
    const r = await svc.submit(Buffer.from(text), agent('web1'));
    assert.is(r.status, 400, text);
    assert.match(String(r.body['reason']), re);
  }
  const a = new AckChain(byName('web1')).make();
  const bad = { ...a, signed: { ...a.signed, seq: 0 } };
  const r = await svc.submit(body(bad), agent('web1'));
  assert.is(r.status, 400);
  assert.match(String(r.body['reason']), /seq/);
  await svc.close();
});

test('a body over 16 KiB is 413', async () => {
  const svc = await service();
  const r = await svc.submit(Buffer.alloc(LIMITS.ack + 1, 0x20), agent('web1'));
  assert.is(r.status, 413);
  assert.equal(r.body, {
    error: 'TooLarge',
    reason: `ack body of ${LIMITS.ack + 1} bytes exceeds ${LIMITS.ack}`,
  });
  await svc.close();
});

test('a tampered signature is refused (403 BadSignature), and so is an ack signed by another key', async () => {
  const svc = await service();
  const ack = new AckChain(byName('web1')).next();
  const tampered = { ...ack, signed: { ...ack.signed, kind: 'failed' } };
  const r = await svc.submit(body(tampered), agent('web1'));
  assert.is(r.status, 403);
  assert.is(r.body['error'], 'BadSignature');
  // web1's ack signed with db1's key
  const forged = new AckChain({ ...byName('web1'), key: byName('db1').key }).next();
  const r2 = await svc.submit(body(forged), agent('web1'));
  assert.is(r2.status, 403);
  assert.is(r2.body['error'], 'UnknownKey');
  await svc.close();
});

test("the client certificate must be the ack's host", async () => {
  const svc = await service();
  const r = await svc.submit(body(new AckChain(byName('web1')).next()), agent('db1'));
  assert.is(r.status, 403);
  assert.is(r.body['error'], 'WrongHost');
  assert.is(r.body['reason'], 'client certificate is for db1 but the ack is for web1');
  const none = await svc.submit(body(new AckChain(byName('web1')).next()), null);
  assert.is(none.status, 403);
  assert.equal(none.body, {
    error: 'NoClientIdentity',
    reason: 'a verified client certificate is required',
  });
  await svc.close();
});

test('an unknown host is refused (403)', async () => {
  const svc = await service();
  const ghost = fixtureHosts({ ghost: {} })[0]!;
  const r = await svc.submit(body(new AckChain(ghost).next()), agent('ghost'));
  assert.is(r.status, 403);
  assert.is(r.body['error'], 'UnknownHost');
  await svc.close();
});

test('an ack of another fleet, validly signed by the host key, is refused (400 WrongFleet) and not stored', async () => {
  const svc = await service();
  const r = await svc.submit(
    body(new AckChain(byName('web1')).next({ fleet: 'other-fleet' })),
    agent('web1'),
  );
  assert.is(r.status, 400);
  assert.is(r.body['error'], 'WrongFleet');
  assert.match(String(r.body['reason']), /fleet "other-fleet"/);
  assert.is(svc.head('web1'), undefined);
  await svc.close();
});

test('a revoked host and a revoked certificate serial are refused (403)', async () => {
  const svc = await service();
  const r = await svc.submit(body(new AckChain(byName('gone')).next()), agent('gone'));
  assert.is(r.status, 403);
  assert.is(r.body['error'], 'Revoked');
  assert.match(String(r.body['reason']), /revoked/);
  // a revoked serial is refused whichever CN it carries; serials compare without leading zeros
  const r2 = await svc.submit(body(new AckChain(byName('web2')).next()), agent('web2', '001F00'));
  assert.is(r2.status, 403);
  assert.equal(r2.body, {
    error: 'Revoked',
    reason: 'client certificate serial 001F00 is revoked',
  });
  const r3 = await svc.submit(body(new AckChain(byName('web2')).next()), agent('web2', '1F01'));
  assert.is(r3.status, 201, 'another certificate is not revoked');
  await svc.close();
});

test('chain rules: replay, fork with the same seq, wrong prev, gap are 409 naming the head', async () => {
  const svc = await service();
  const chain = new AckChain(byName('web1'));
  const a1 = chain.next();
  const a2 = chain.next();
  assert.is((await svc.submit(body(a1), agent('web1'))).status, 201);
  assert.is((await svc.submit(body(a2), agent('web1'))).status, 201);
  const replay = await svc.submit(body(a1), agent('web1'));
  assert.is(replay.status, 409);
  assert.match(String(replay.body['reason']), /replay/);
  assert.equal(replay.body['head'], { seq: 2, digest: ackDigest(a2) });
  const fork = chain.make({ seq: 2, kind: 'failed' });
  const rf = await svc.submit(body(fork), agent('web1'));
  assert.is(rf.status, 409);
  assert.match(String(rf.body['reason']), /fork/);
  const wrongPrev = chain.make({ seq: 3, prev: ackDigest(a1) });
  const rp = await svc.submit(body(wrongPrev), agent('web1'));
  assert.is(rp.status, 409);
  assert.match(String(rp.body['reason']), /prev/);
  const gap = chain.make({ seq: 5 });
  const rg = await svc.submit(body(gap), agent('web1'));
  assert.is(rg.status, 409);
  assert.match(String(rg.body['reason']), /gap/);
  assert.is((await svc.submit(body(chain.next()), agent('web1'))).status, 201);
  await svc.close();
});

test("an empty endpoint adopts a host's re-posted latest ack and enforces the chain from there", async () => {
  const svc = await service();
  const chain = new AckChain(byName('web1'));
  for (let i = 0; i < 4; i++) chain.next();
  const a5 = chain.next();
  assert.is((await svc.submit(body(a5), agent('web1'))).status, 201);
  assert.is((await svc.submit(body(chain.next()), agent('web1'))).status, 201);
  await svc.close();
});

test('per-host rate limit is 429 with Retry-After; other hosts are unaffected', async () => {
  let now = 1_000_000;
  const svc = await service({ rateLimit: { burst: 2, perSecond: 1 }, now: () => now });
  const chain = new AckChain(byName('web1'));
  assert.is((await svc.submit(body(chain.next()), agent('web1'))).status, 201);
  assert.is((await svc.submit(body(chain.next()), agent('web1'))).status, 201);
  const limited = await svc.submit(body(chain.make()), agent('web1'));
  assert.is(limited.status, 429);
  assert.ok((limited.retryAfter ?? 0) >= 1);
  assert.equal(limited.body, {
    error: 'RateLimited',
    reason: `too many acks from web1; retry in ${limited.retryAfter}s`,
  });
  assert.is((await svc.submit(body(new AckChain(byName('db1')).next()), agent('db1'))).status, 201);
  now += 1500;
  assert.is((await svc.submit(body(chain.next()), agent('web1'))).status, 201);
  await svc.close();
});

test('concurrent acks share fsyncs (group commit) and all are durable', async () => {
  const many = fixtureHosts(
    Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`h${i}`, {}])),
  );
  writeTree(dir, { keys, hosts: many, version: 4 });
  const svc = await service();
  const results = await Promise.all(
    many.map((h) => svc.submit(body(new AckChain(h).next()), agent(h.name))),
  );
  assert.ok(results.every((r) => r.status === 201));
  assert.is(svc.logStats.appended, 40);
  assert.ok(svc.logStats.syncs < 40, `syncs ${svc.logStats.syncs}`);
  await svc.close();
  assert.is(parseAckLog(readFileSync(join(dir, 'log', ACK_LOG_FILE))).records.length, 40);
});

test('restart: heads come back from the log, a torn tail is cut, the chain continues', async () => {
  const svc = await service();
  const chain = new AckChain(byName('web1'));
  for (let i = 0; i < 3; i++)
    assert.is((await svc.submit(body(chain.next()), agent('web1'))).status, 201);
  await svc.close();
  const logFile = join(dir, 'log', ACK_LOG_FILE);
  const goodSize = statSync(logFile).size;
  appendFileSync(logFile, 'sha256:' + 'ab'.repeat(32) + '\t{"signed":{"host":"web1"');
  const svc2 = await service();
  assert.is(
    svc2.recoveredCutBytes,
    statSync(logFile).size === goodSize ? svc2.recoveredCutBytes : -1,
  );
  assert.ok(svc2.recoveredCutBytes > 0);
  assert.is(svc2.recoveredRecords, 3);
  assert.is(svc2.head('web1')?.seq, 3);
  assert.is(
    (await svc2.submit(body(chain.make({ seq: 3, kind: 'failed' })), agent('web1'))).status,
    409,
  );
  assert.is((await svc2.submit(body(chain.next()), agent('web1'))).status, 201);
  await svc2.close();
});

test('a bad record followed by good ones is corruption: the log refuses to open', async () => {
  const svc = await service();
  const chain = new AckChain(byName('web1'));
  for (let i = 0; i < 3; i++) await svc.submit(body(chain.next()), agent('web1'));
  await svc.close();
  const logFile = join(dir, 'log', ACK_LOG_FILE);
  const bytes = readFileSync(logFile);
  const firstLf = bytes.indexOf(0x0a);
  bytes[firstLf - 5] = bytes[firstLf - 5]! ^ 1;
  writeFileSync(logFile, bytes);
  try {
    await service();
    assert.unreachable('opened a corrupt log');
  } catch (e) {
    assert.instance(e, AckLogCorrupt);
  }
});

test('behind nginx: identity headers are trusted on loopback; without them the ack is refused', async () => {
  const ep = await startAckEndpoint({
    treeDir: dir,
    ackLogDir: join(dir, 'log'),
    ack: { rateLimit: false },
  });
  try {
    const ack = new AckChain(byName('web1')).next();
    const headers = {
      'x-ssl-client-verify': 'SUCCESS',
      'x-ssl-client-s-dn': 'CN=web1,OU=agent,O=test',
      'x-ssl-client-serial': '1001',
    };
    const ok = await req(`${ep.url}/acks`, { method: 'POST', body: JSON.stringify(ack), headers });
    assert.is(ok.status, 201, ok.body);
    const none = await req(`${ep.url}/acks`, { method: 'POST', body: JSON.stringify(ack) });
    assert.is(none.status, 403);
    const failed = await req(`${ep.url}/acks`, {
      method: 'POST',
      body: JSON.stringify(ack),
      headers: { ...headers, 'x-ssl-client-verify': 'FAILED:certificate revoked' },
    });
    assert.is(failed.status, 403);
    const big = await req(`${ep.url}/acks`, {
      method: 'POST',
      body: 'x'.repeat(LIMITS.ack + 1),
      headers,
    });
    assert.is(big.status, 413);
    assert.is((await req(`${ep.url}/timestamp.json`, { headers })).status, 404);
  } finally {
    await ep.close();
  }
});

test('behind nginx: refuses to listen on a non-loopback address without TLS', async () => {
  try {
    await startAckEndpoint({ treeDir: dir, host: '0.0.0.0', port: 0 });
    assert.unreachable('started');
  } catch (e) {
    assert.match((e as Error).message, /loopback or a unix socket/);
  }
});

test('unix socket listener', async () => {
  const socketPath = join(dir, 'ack.sock');
  const ep = await startAckEndpoint({ treeDir: dir, ackLogDir: join(dir, 'log'), socketPath });
  try {
    const ack = new AckChain(byName('db1')).next();
    const r = await req('http://localhost/acks', {
      socketPath,
      method: 'POST',
      body: JSON.stringify(ack),
      headers: { 'x-ssl-client-verify': 'SUCCESS', 'x-ssl-client-s-dn': 'CN=db1,OU=agent' },
    });
    assert.is(r.status, 201, r.body);
  } finally {
    await ep.close();
  }
});

test('bundles hold the latest ack of every host of the wave; files are replaced atomically', async () => {
  const svc = await service();
  const c1 = new AckChain(byName('web1'));
  const c2 = new AckChain(byName('web2'));
  await svc.submit(body(c1.next()), agent('web1'));
  await svc.submit(body(c2.next()), agent('web2', '2000'));
  const last = c1.next();
  await svc.submit(body(last), agent('web1'));
  svc.publisher.flush();
  const bundle = JSON.parse(readFileSync(join(dir, 'acks/channels/prod/wave-0.json'), 'utf8'));
  assert.is(bundle.acks.length, 2);
  assert.equal(
    bundle.acks.map((a: { signed: { host: string; seq: number } }) => [
      a.signed.host,
      a.signed.seq,
    ]),
    [
      ['web1', 2],
      ['web2', 1],
    ],
  );
  assert.equal(JSON.parse(readFileSync(join(dir, 'acks/hosts/web1.json'), 'utf8')), last);
  assert.is(
    JSON.parse(readFileSync(join(dir, 'acks/channels/db/wave-0.json'), 'utf8')).acks.length,
    0,
  );
  await svc.close();
});

test.run();
