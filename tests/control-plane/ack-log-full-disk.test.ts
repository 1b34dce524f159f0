// The ack log on a real full disk (a small tmpfs): the endpoint answers 503 with a Retry-After that
// says when it will try again, loses nothing it acknowledged, heals by itself once space is freed (no
// restart), and the log it wrote replays cleanly afterwards.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdirSync, openSync, writeSync, closeSync, rmSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AckService,
  loadReleaseView,
  parseAckLog,
  ACK_LOG_FILE,
  type ClientIdentity,
} from '../../control-plane/index.ts';
import { ackDigest, type SignedAck } from '../../protocol/acks.ts';
import { requireTool } from '../support/skip.ts';
import {
  fixtureHosts,
  fixtureKeys,
  writeTree,
  tempDir,
  removeDir,
  AckChain,
} from './tree-fixture.ts';

const test = suite('control-plane ack log on a full disk');
const keys = fixtureKeys();
const hosts = fixtureHosts({ web1: {}, web2: {} });
const agent = (cn: string): ClientIdentity => ({ cn, ou: 'agent', serial: '1001' });
const body = (x: unknown) => Buffer.from(JSON.stringify(x));

/** Writes `file` until the filesystem is full (ENOSPC). */
function fillDisk(file: string): void {
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(4096, 0x78);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    closeSync(fd);
  }
}

test('full disk: 503 + Retry-After, nothing acknowledged lost; heals without a restart once space is freed; replays cleanly', async () => {
  if (
    !requireTool('mount', 'tmpfs for a full disk') ||
    !requireTool('umount', 'tmpfs for a full disk')
  )
    return;
  const dir = tempDir('ack-full');
  const mnt = join(dir, 'log');
  mkdirSync(mnt);
  writeTree(dir, { keys, hosts, version: 1 });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k,mode=0700', 'tmpfs', mnt]);
  let svc: AckService | undefined;
  try {
    let now = 5_000_000;
    const open = async () => {
      const s = await AckService.open({
        logDir: mnt,
        publishRoot: dir,
        rateLimit: false,
        now: () => now,
        debounceMs: 5,
      });
      s.setView(loadReleaseView(dir));
      return s;
    };
    svc = await open();
    const chain = new AckChain(hosts[0]!);
    const acknowledged: SignedAck[] = [];
    for (let i = 0; i < 3; i++) {
      const a = chain.next();
      assert.is((await svc.submit(body(a), agent('web1'))).status, 201);
      acknowledged.push(a);
    }

    fillDisk(join(mnt, 'filler'));
    // The log file's last page may still take a record or two; then the disk is full.
    let refused: SignedAck | undefined;
    let answer;
    for (let i = 0; i < 200 && !refused; i++) {
      const a = chain.make();
      answer = await svc.submit(body(a), agent('web1'));
      if (answer.status === 201) {
        chain.advance(a);
        acknowledged.push(a);
      } else refused = a;
    }
    assert.ok(refused && answer, 'the disk never filled');
    assert.is(answer.status, 503, JSON.stringify(answer.body));
    assert.is(answer.body['error'], 'LogUnavailable');
    assert.match(String(answer.body['reason']), /ENOSPC/);
    const retryAfter = answer.retryAfter!;
    assert.ok(retryAfter >= 1, `Retry-After ${retryAfter}`);
    // The refused ack was never accepted: the head is still the last acknowledged one.
    assert.is(svc.head('web1')?.digest, ackDigest(acknowledged[acknowledged.length - 1]!));

    // Within the back-off every post is 503 at once, and Retry-After counts down to the same moment.
    rmSync(join(mnt, 'filler'));
    now += 300;
    const early = await svc.submit(body(refused), agent('web1'));
    assert.is(early.status, 503);
    assert.ok(early.retryAfter! >= 1 && early.retryAfter! <= retryAfter);
    const other = await svc.submit(body(new AckChain(hosts[1]!).next()), agent('web2'));
    assert.is(other.status, 503);

    // Once Retry-After has passed, the same endpoint (no restart) accepts the ack it refused, and more.
    now += retryAfter * 1000;
    const healed = await svc.submit(body(refused), agent('web1'));
    assert.is(healed.status, 201, JSON.stringify(healed.body));
    chain.advance(refused);
    acknowledged.push(refused);
    for (let i = 0; i < 2; i++) {
      const a = chain.next();
      assert.is((await svc.submit(body(a), agent('web1'))).status, 201);
      acknowledged.push(a);
    }
    // Whatever the failed write left on disk was cut before writing on.
    const parsed = parseAckLog(readFileSync(join(mnt, ACK_LOG_FILE)));
    assert.is(parsed.tornBytes, 0);
    assert.equal(
      parsed.records.map((r) => r.digest),
      acknowledged.map(ackDigest),
    );

    // A restart replays the same log without cutting anything: every acknowledged ack, chain continues.
    await svc.close();
    svc = await open();
    assert.is(svc.recoveredCutBytes, 0);
    assert.is(svc.recoveredRecords, acknowledged.length);
    assert.is(svc.head('web1')?.seq, acknowledged.length);
    assert.is((await svc.submit(body(chain.next()), agent('web1'))).status, 201);
  } finally {
    await svc?.close().catch(() => undefined);
    execFileSync('umount', [mnt]);
    removeDir(dir);
  }
});

test.run();
