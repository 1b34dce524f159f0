// protocol/pid-lock.ts: the one lock the agent, the publisher and site-gen share.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { readLockOwner, tryAcquirePidLock } from '../../protocol/pid-lock.ts';

const dirs: string[] = [];
const lockIn = () => {
  const d = mkdtempSync(join(tmpdir(), 'pid-lock-'));
  dirs.push(d);
  return join(d, 'x.lock');
};
test.after.each(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A PID that certainly belongs to no process: one that has just exited. */
const deadPid = () => spawnSync(process.execPath, ['-e', '0']).pid!;

test('held: a second taker in this process is refused with the owner; released: taken again', () => {
  const path = lockIn();
  const a = tryAcquirePidLock(path);
  assert.ok(a.acquired);
  assert.is(readLockOwner(path), process.pid);
  const b = tryAcquirePidLock(path);
  assert.equal(b, { acquired: false, heldBy: process.pid });
  if (a.acquired) {
    a.lock.release();
    a.lock.release(); // idempotent
  }
  assert.not.ok(existsSync(path));
  const c = tryAcquirePidLock(path);
  assert.ok(c.acquired);
  if (c.acquired) c.lock.release();
});

test('a live owner in another process is refused; the file is left alone', () => {
  const path = lockIn();
  writeFileSync(path, `${process.ppid}\n`);
  assert.equal(tryAcquirePidLock(path), { acquired: false, heldBy: process.ppid });
  assert.is(readLockOwner(path), process.ppid);
});

test('stale locks are taken over: a dead owner, an empty or garbled file, our own PID left by an earlier process', () => {
  for (const content of [`${deadPid()}\n`, '', 'not a pid', '-4\n', `${process.pid}\n`]) {
    const path = lockIn();
    writeFileSync(path, content);
    const r = tryAcquirePidLock(path);
    assert.ok(r.acquired, `not taken over: ${JSON.stringify(content)}`);
    assert.is(readLockOwner(path), process.pid);
    // nothing left beside it (the stale file was moved aside and removed)
    assert.equal(readdirSync(join(path, '..')), ['x.lock']);
    if (r.acquired) r.lock.release();
    assert.not.ok(existsSync(path));
  }
});

test('release removes only a lock that still names this process', () => {
  const path = lockIn();
  const a = tryAcquirePidLock(path);
  assert.ok(a.acquired);
  writeFileSync(path, `${process.ppid}\n`);
  if (a.acquired) a.lock.release();
  assert.is(readLockOwner(path), process.ppid, "another owner's lock survives our release");
  // and our registry no longer claims the path: a file naming us now is stale
  writeFileSync(path, `${process.pid}\n`);
  const b = tryAcquirePidLock(path);
  assert.ok(b.acquired);
  if (b.acquired) b.lock.release();
});

test('mode of a new lock file; errors other than "exists" are thrown', () => {
  const path = lockIn();
  const r = tryAcquirePidLock(path, { mode: 0o600 });
  assert.ok(r.acquired);
  assert.is((statSync(path).mode & 0o777).toString(8), '600');
  if (r.acquired) r.lock.release();
  assert.throws(
    () => tryAcquirePidLock(join(path, 'missing-dir', 'y.lock')),
    (e: NodeJS.ErrnoException) => e.code === 'ENOENT',
  );
});

test.run();
