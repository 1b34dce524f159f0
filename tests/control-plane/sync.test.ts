// `cp sync`: verify-then-swap installation; older, tampered or symlinked trees are refused and the
// current tree keeps serving; revocations become nginx map files.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  statSync,
  readFileSync,
  writeFileSync,
  symlinkSync,
  mkdirSync,
  readlinkSync,
  existsSync,
  readdirSync,
} from 'node:fs';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import {
  syncTree,
  startControlPlane,
  REVOKED_SERIALS_MAP,
  REVOKED_HOSTS_MAP,
} from '../../control-plane/index.ts';
import { isVerificationError } from '../../protocol/errors.ts';
import { makeTestPki, type TestPki } from '../support/pki.ts';
import { fixtureHosts, fixtureKeys, writeTree, tempDir, removeDir } from './tree-fixture.ts';
import { req } from './http.ts';

const test = suite('control-plane cp sync');
const keys = fixtureKeys();
const hosts = fixtureHosts({ web1: {}, db1: { wave: 1 } });
let work: string;

test.before.each(() => {
  work = tempDir('sync');
});
test.after.each(() => removeDir(work));

function ciTree(
  name: string,
  version: number,
  extra: Partial<Parameters<typeof writeTree>[1]> = {},
): string {
  const dir = join(work, name);
  writeTree(dir, { keys, hosts, version, ...extra });
  return dir;
}

function servedVersion(treeDir: string): number {
  return JSON.parse(readFileSync(join(treeDir, 'current', 'timestamp.json'), 'utf8')).signed.release
    .version;
}

async function refusedWith(fn: () => unknown, code: string, file?: RegExp): Promise<void> {
  try {
    await fn();
  } catch (e) {
    assert.ok(isVerificationError(e), `expected a verification error, got ${(e as Error).message}`);
    assert.is((e as { code: string }).code, code, (e as Error).message);
    if (file) assert.match((e as { file: string }).file, file);
    return;
  }
  assert.unreachable(`expected ${code}`);
}

test('installs a verified tree and swaps atomically to a newer one, keeping acks/', async () => {
  const treeDir = join(work, 'cp');
  const r1 = await syncTree({
    from: ciTree('v1', 1, { issuedOffsetSeconds: -120 }),
    treeDir,
    pinnedRoot: keys.signedRoot,
  });
  assert.ok(r1.installed);
  assert.is(r1.releaseVersion, 1);
  assert.is(r1.previousReleaseVersion, null);
  assert.is(servedVersion(treeDir), 1);
  assert.match(readlinkSync(join(treeDir, 'current')), /^versions\//);
  mkdirSync(join(treeDir, 'acks', 'hosts'), { recursive: true });
  writeFileSync(join(treeDir, 'acks', 'hosts', 'web1.json'), '{}');
  const r2 = await syncTree({ from: ciTree('v2', 2), treeDir, pinnedRoot: keys.signedRoot });
  assert.ok(r2.installed);
  assert.is(r2.previousReleaseVersion, 1);
  assert.is(servedVersion(treeDir), 2);
  assert.ok(existsSync(join(treeDir, 'acks', 'hosts', 'web1.json')));
  assert.is(
    readdirSync(join(treeDir, 'versions')).filter((n) => n.startsWith('.')).length,
    0,
    'no staging left behind',
  );
});

test('an older release is refused and the current tree keeps serving', async () => {
  const treeDir = join(work, 'cp');
  const old = ciTree('v1', 1, { issuedOffsetSeconds: -120 });
  await syncTree({ from: ciTree('v2', 2), treeDir, pinnedRoot: keys.signedRoot });
  await refusedWith(
    () => syncTree({ from: old, treeDir, pinnedRoot: keys.signedRoot }),
    'RollbackAttempt',
  );
  assert.is(servedVersion(treeDir), 2);
});

test('an older timestamp of the same release is refused; a newer one (refresh) installs', async () => {
  const treeDir = join(work, 'cp');
  await syncTree({
    from: ciTree('a', 1, { issuedOffsetSeconds: -60 }),
    treeDir,
    pinnedRoot: keys.signedRoot,
  });
  await refusedWith(
    () =>
      syncTree({
        from: ciTree('b', 1, { issuedOffsetSeconds: -300 }),
        treeDir,
        pinnedRoot: keys.signedRoot,
      }),
    'RollbackAttempt',
  );
  assert.ok(
    (
      await syncTree({
        from: ciTree('c', 1, { issuedOffsetSeconds: -10 }),
        treeDir,
        pinnedRoot: keys.signedRoot,
      })
    ).installed,
  );
});

test("a refreshed timestamp gets a later mtime second than the installed one (nginx's ETag is mtime-size)", async () => {
  const treeDir = join(work, 'cp');
  await syncTree({
    from: ciTree('a', 1, { issuedOffsetSeconds: -60 }),
    treeDir,
    pinnedRoot: keys.signedRoot,
  });
  const before = statSync(join(treeDir, 'current', 'timestamp.json'));
  // The refresh is installed at once, within the same second as a rule on a fast machine.
  await syncTree({
    from: ciTree('c', 1, { issuedOffsetSeconds: -10 }),
    treeDir,
    pinnedRoot: keys.signedRoot,
  });
  const after = statSync(join(treeDir, 'current', 'timestamp.json'));
  assert.ok(
    Math.floor(after.mtimeMs / 1000) > Math.floor(before.mtimeMs / 1000),
    `mtime ${after.mtimeMs} after ${before.mtimeMs}`,
  );
});

test('a tampered tree is refused naming the file; the current tree keeps serving', async () => {
  const treeDir = join(work, 'cp');
  await syncTree({
    from: ciTree('v1', 1, { issuedOffsetSeconds: -120 }),
    treeDir,
    pinnedRoot: keys.signedRoot,
  });
  const bad = ciTree('v2', 2);
  const manifest = join(bad, 'releases/2/hosts/web1.json');
  writeFileSync(manifest, readFileSync(manifest, 'utf8').replace('"wave":0', '"wave":1'));
  await refusedWith(
    () => syncTree({ from: bad, treeDir, pinnedRoot: keys.signedRoot }),
    'BadSignature',
    /releases\/2\/hosts\/web1\.json/,
  );
  assert.is(servedVersion(treeDir), 1);
});

test('a tree signed by an unknown key is refused', async () => {
  const treeDir = join(work, 'cp');
  const other = fixtureKeys();
  const dir = join(work, 'other');
  writeTree(dir, { keys: other, hosts, version: 5 });
  await refusedWith(
    () => syncTree({ from: dir, treeDir, pinnedRoot: keys.signedRoot }),
    'UnknownKey',
    /timestamp\.json/,
  );
  assert.not.ok(existsSync(join(treeDir, 'current')));
});

test('symlinks in the incoming tree are refused', async () => {
  const treeDir = join(work, 'cp');
  const src = ciTree('v1', 1);
  symlinkSync('/etc/passwd', join(src, 'releases', 'evil.json'));
  await refusedWith(
    () => syncTree({ from: src, treeDir, pinnedRoot: keys.signedRoot }),
    'Malformed',
    /evil\.json/,
  );
});

test("staging copies left by killed syncs are removed; a live sync's copy is kept", async () => {
  const treeDir = join(work, 'cp');
  await syncTree({ from: ciTree('v1', 1), treeDir, pinnedRoot: keys.signedRoot });
  const versions = join(treeDir, 'versions');
  const dead = spawnSync('true').pid!; // exited and reaped: its PID names no process now
  const live = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    for (const name of [
      `.staging-${dead}-0a1b2c3d`,
      `.staging-${process.pid}-00ff00ff`,
      `.staging-${live.pid}-deadbeef`,
    ]) {
      mkdirSync(join(versions, name, 'releases'), { recursive: true });
      writeFileSync(join(versions, name, 'timestamp.json'), '{}');
    }
    await syncTree({ from: ciTree('v2', 2), treeDir, pinnedRoot: keys.signedRoot });
    const left = readdirSync(versions).filter((n) => n.startsWith('.staging-'));
    assert.equal(left, [`.staging-${live.pid}-deadbeef`]);
    assert.is(servedVersion(treeDir), 2);
  } finally {
    live.kill('SIGKILL');
  }
});

test('the same tree again is a no-op', async () => {
  const treeDir = join(work, 'cp');
  const src = ciTree('v1', 1);
  assert.ok((await syncTree({ from: src, treeDir, pinnedRoot: keys.signedRoot })).installed);
  const again = await syncTree({ from: src, treeDir, pinnedRoot: keys.signedRoot });
  assert.not.ok(again.installed);
  assert.match(again.reason ?? '', /already installed/);
});

test('signed revocations become nginx map files', async () => {
  const treeDir = join(work, 'cp');
  await syncTree({
    from: ciTree('v1', 1, { revokedHosts: [{ host: 'db1', certSerial: 'ABC' }] }),
    treeDir,
    pinnedRoot: keys.signedRoot,
  });
  const serials = readFileSync(join(treeDir, REVOKED_SERIALS_MAP), 'utf8');
  assert.match(serials, /^ABC 1;$/m);
  assert.match(serials, /^0ABC 1;$/m);
  assert.match(readFileSync(join(treeDir, REVOKED_HOSTS_MAP), 'utf8'), /^db1 1;$/m);
});

test('the embedded server switches to a newly synced tree and keeps serving across a refused sync', async () => {
  const pki: TestPki = makeTestPki({ hosts: ['web1'] });
  const treeDir = join(work, 'cp');
  const cp = await startControlPlane({
    treeDir,
    tls: { ca: pki.ca, cert: pki.server.cert, key: pki.server.key },
    reloadIntervalMs: 60_000,
  });
  try {
    const tls = pki.clientTls(pki.hosts['web1']!);
    assert.is((await req(`${cp.url}/timestamp.json`, { tls })).status, 503);
    await syncTree({
      from: ciTree('v1', 1, { issuedOffsetSeconds: -120 }),
      treeDir,
      pinnedRoot: keys.signedRoot,
    });
    cp.reload();
    const r1 = await req(`${cp.url}/timestamp.json`, { tls });
    assert.is(r1.status, 200);
    assert.is(JSON.parse(r1.body).signed.release.version, 1);
    await syncTree({ from: ciTree('v2', 2), treeDir, pinnedRoot: keys.signedRoot });
    cp.reload();
    assert.is(cp.view()?.releaseVersion, 2);
    assert.is((await req(`${cp.url}/releases/2/hosts/web1.json`, { tls })).status, 200);
    try {
      await syncTree({
        from: ciTree('v1b', 1, { issuedOffsetSeconds: -300 }),
        treeDir,
        pinnedRoot: keys.signedRoot,
      });
    } catch {
      /* refused, as tested above */
    }
    cp.reload();
    assert.is(
      JSON.parse((await req(`${cp.url}/timestamp.json`, { tls })).body).signed.release.version,
      2,
    );
  } finally {
    await cp.close();
    pki.cleanup();
  }
});

test('serving a directory as is with a pinned root: a tree that does not verify never primes', async () => {
  const pki: TestPki = makeTestPki({ hosts: ['web1'] });
  const direct = ciTree('direct', 1);
  const stranger = fixtureKeys();
  const cp = await startControlPlane({
    treeDir: direct,
    tls: { ca: pki.ca, cert: pki.server.cert, key: pki.server.key },
    reloadIntervalMs: 60_000,
    pinnedRoot: stranger.signedRoot,
  });
  const cp2 = await startControlPlane({
    treeDir: direct,
    ackLogDir: join(work, 'log2'),
    tls: { ca: pki.ca, cert: pki.server.cert, key: pki.server.key },
    reloadIntervalMs: 60_000,
    pinnedRoot: keys.signedRoot,
  });
  try {
    const tls = pki.clientTls(pki.hosts['web1']!);
    assert.not.ok(cp.primed());
    assert.is((await req(`${cp.url}/timestamp.json`, { tls })).status, 503);
    assert.ok(cp2.primed());
    assert.is((await req(`${cp2.url}/timestamp.json`, { tls })).status, 200);
  } finally {
    await cp.close();
    await cp2.close();
    pki.cleanup();
  }
});

test.run();
