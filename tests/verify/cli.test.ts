// keygen / trust init / trust rotate / verify through the real command dispatcher (in-process for
// speed), plus one run of the `nixfleet` binary to check exit codes end to end.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readPrivateKey, readPublicKey } from '../../protocol/keys.ts';
import { readRoot } from '../../protocol/trust-root.ts';
import { hostManifestPath, rootPath } from '../../protocol/layout.ts';
import { isoTime } from '../../protocol/schemas/common.ts';
import {
  DAY,
  HOUR,
  writeRelease,
  writeRevocations,
  writeTimestamp,
} from '../support/tree-builder.ts';
import { NOW, cleanupTempDirs, flipByteInFleetValue, tempDir } from './helpers.ts';
import { runCli } from '../support/cli.ts';

test.after.each(cleanupTempDirs);

const run = runCli;

const CACHE_KEY = 'cache.example.org-1:' + Buffer.alloc(32, 3).toString('base64');
const NOW_ISO = isoTime(NOW - 10 * DAY);

async function initTrust(dir: string) {
  for (const n of ['root-a', 'root-b', 'root-c', 'release-1']) {
    const r = await run('keygen', '--name', n, '--out', join(dir, `${n}.key`));
    assert.is(r.code, 0, r.err);
  }
  const r = await run(
    'trust',
    'init',
    '--fleet',
    'test-fleet',
    '--root-key',
    join(dir, 'root-a.key'),
    '--root-key',
    join(dir, 'root-b.key'),
    '--root-key',
    join(dir, 'root-c.key'),
    '--threshold',
    '2',
    '--release-key',
    join(dir, 'release-1.pub'),
    '--cache-key',
    CACHE_KEY,
    '--expires-days',
    '365',
    '--out',
    join(dir, 'trust'),
    '--now',
    NOW_ISO,
    '--json',
  );
  assert.is(r.code, 0, r.err);
  return JSON.parse(r.out) as { path: string; version: number };
}

test('keygen writes a 0600 private key and a public key alongside; refuses to overwrite', async () => {
  const dir = tempDir('cli');
  const r = await run('keygen', '--name', 'ci-release', '--out', join(dir, 'ci.key'), '--json');
  assert.is(r.code, 0, r.err);
  const j = JSON.parse(r.out) as { keyid: string; public: string };
  assert.is(statSync(join(dir, 'ci.key')).mode & 0o777, 0o600);
  assert.is(j.public, join(dir, 'ci.pub'));
  assert.is(readPublicKey(join(dir, 'ci.pub')).keyid, j.keyid);
  assert.is(readPrivateKey(join(dir, 'ci.key')).keyid, j.keyid);
  assert.is((await run('keygen', '--name', 'again', '--out', join(dir, 'ci.key'))).code, 2);
  assert.is(
    (await run('keygen', '--out', join(dir, 'x.key'))).code,
    2,
    'missing --name is a usage error',
  );
});

test('trust init writes root/1.json with the given keys, thresholds and cache keys', async () => {
  const dir = tempDir('cli');
  const j = await initTrust(dir);
  assert.is(j.path, join(dir, 'trust', rootPath(1)));
  const root = readRoot(readFileSync(j.path), 'root/1.json').signed;
  assert.is(root.rootKeys.length, 3);
  assert.is(root.rootThreshold, 2);
  assert.equal(root.cacheKeys, [CACHE_KEY]);
  assert.is(root.releaseKeys[0]!.validFrom, NOW_ISO);
  assert.is(root.releaseKeys[0]!.validUntil, isoTime(NOW - 10 * DAY + 365 * DAY));
  assert.is(
    (
      await run(
        'trust',
        'init',
        '--fleet',
        'x',
        '--root-key',
        join(dir, 'root-a.key'),
        '--threshold',
        '1',
        '--release-key',
        join(dir, 'release-1.pub'),
        '--expires-days',
        '1',
        '--out',
        join(dir, 'trust'),
      )
    ).code,
    2,
    'refuses to overwrite root/1.json',
  );
});

test('trust init refuses a group-readable root key with a clear message', async () => {
  const dir = tempDir('cli');
  await run('keygen', '--name', 'loose', '--out', join(dir, 'loose.key'));
  chmodSync(join(dir, 'loose.key'), 0o644);
  const r = await run(
    'trust',
    'init',
    '--fleet',
    'f',
    '--root-key',
    join(dir, 'loose.key'),
    '--threshold',
    '1',
    '--release-key',
    join(dir, 'loose.pub'),
    '--expires-days',
    '1',
    '--out',
    join(dir, 't'),
  );
  assert.is(r.code, 2);
  assert.match(r.err, /chmod 600/);
});

test('trust rotate: 2 old + new keys -> root/2.json; one old key -> refused (exit 1, ThresholdNotMet)', async () => {
  const dir = tempDir('cli');
  await initTrust(dir);
  await run('keygen', '--name', 'root-d', '--out', join(dir, 'root-d.key'));
  const one = await run(
    'trust',
    'rotate',
    '--trust',
    join(dir, 'trust'),
    '--old-root-key',
    join(dir, 'root-a.key'),
    '--root-key',
    join(dir, 'root-d.key'),
    '--threshold',
    '1',
    '--out',
    join(dir, 'trust'),
    '--now',
    NOW_ISO,
  );
  assert.is(one.code, 1);
  assert.match(one.err, /ThresholdNotMet: root\/2\.json/);
  assert.not.ok(existsSync(join(dir, 'trust', rootPath(2))));
  const ok = await run(
    'trust',
    'rotate',
    '--trust',
    join(dir, 'trust'),
    '--old-root-key',
    join(dir, 'root-a.key'),
    '--old-root-key',
    join(dir, 'root-c.key'),
    '--root-key',
    join(dir, 'root-d.key'),
    '--threshold',
    '1',
    '--reject-before',
    NOW_ISO,
    '--out',
    join(dir, 'trust'),
    '--now',
    NOW_ISO,
    '--json',
  );
  assert.is(ok.code, 0, ok.err);
  const root2 = readRoot(readFileSync(join(dir, 'trust', rootPath(2))), 'root/2.json').signed;
  assert.is(root2.version, 2);
  assert.is(root2.rejectBefore, NOW_ISO);
  assert.equal(
    root2.rootKeys.map((k) => k.name),
    ['root-d'],
  );
  assert.equal(root2.cacheKeys, [CACHE_KEY], 'cache keys carried over');
});

async function publishedTree(dir: string) {
  await initTrust(dir);
  const tree = join(dir, 'trust');
  const release = readPrivateKey(join(dir, 'release-1.key'));
  const r = writeRelease({
    dir: tree,
    version: 1,
    issuedAt: NOW - 2 * HOUR,
    channels: { canary: ['c-0'], prod: ['p-0', 'p-1'] },
    gateOnFirst: true,
    signers: [release],
  });
  const rev = writeRevocations({
    dir: tree,
    version: 1,
    issuedAt: NOW - 2 * HOUR,
    signers: [release],
  });
  writeTimestamp({
    dir: tree,
    issuedAt: NOW - HOUR,
    releaseVersion: 1,
    index: r.index,
    revocationsVersion: 1,
    revocations: rev,
    signers: [release],
  });
  return { tree, pinned: join(tree, rootPath(1)) };
}

test('verify: human summary (exit 0), --json report, tampered tree -> exit 1 naming the file', async () => {
  const dir = tempDir('cli');
  const { tree, pinned } = await publishedTree(dir);
  const now = isoTime(NOW);
  const ok = await run('verify', tree, '--root', pinned, '--now', now);
  assert.is(ok.code, 0, ok.err);
  assert.match(ok.out, /^OK: fleet "test-fleet", release 1/);
  const j = await run('verify', tree, '--root', pinned, '--now', now, '--json');
  const report = JSON.parse(j.out) as {
    ok: boolean;
    documents: { file: string; result: string }[];
  };
  assert.ok(report.ok);
  assert.is(report.documents.length, 1 + 1 + 1 + 1 + 2 + 3);
  flipByteInFleetValue(join(tree, hostManifestPath(1, 'p-1')));
  const bad = await run('verify', tree, '--root', pinned, '--now', now);
  assert.is(bad.code, 1);
  assert.match(bad.err, /REFUSED: BadSignature: releases\/1\/hosts\/p-1\.json/);
  const badJson = await run('verify', tree, '--root', pinned, '--now', now, '--json');
  assert.is(badJson.code, 1);
  assert.equal(JSON.parse(badJson.out).error.code, 'BadSignature');
  assert.equal(JSON.parse(badJson.out).error.file, 'releases/1/hosts/p-1.json');
  const stale = await run('verify', tree, '--root', pinned, '--now', isoTime(NOW + DAY), '--json');
  assert.is(stale.code, 1);
  assert.is(JSON.parse(stale.out).error.code, 'Stale');
});

test('trust init: --cache-key is optional, and --help says so', async () => {
  const dir = tempDir('cli');
  for (const n of ['root-a', 'release-1'])
    assert.is((await run('keygen', '--name', n, '--out', join(dir, `${n}.key`))).code, 0);
  const r = await run(
    'trust',
    'init',
    '--fleet',
    'no-cache',
    '--root-key',
    join(dir, 'root-a.key'),
    '--threshold',
    '1',
    '--release-key',
    join(dir, 'release-1.pub'),
    '--expires-days',
    '30',
    '--out',
    join(dir, 'trust'),
    '--now',
    NOW_ISO,
    '--json',
  );
  assert.is(r.code, 0, r.err);
  assert.equal(
    readRoot(readFileSync(join(dir, 'trust', 'root', '1.json')), 'root/1.json').signed.cacheKeys,
    [],
  );
  const help = await run('trust', 'init', '--help');
  assert.match(help.out, "[--cache-key 'name:base64'...]");
});

test('verify usage errors exit 2', async () => {
  assert.is((await run('verify')).code, 2);
  assert.is((await run('verify', '/nonexistent', '--root', '/nonexistent/root.json')).code, 2);
  assert.is((await run('verify', '/tmp', '--root', '/x', '--now', 'yesterday')).code, 2);
});

test('the nixfleet binary: verify exit codes 0 / 1 / 2', async () => {
  const dir = tempDir('cli');
  const { tree, pinned } = await publishedTree(dir);
  const bin = fileURLToPath(new URL('../../bin/nixfleet.js', import.meta.url));
  const now = isoTime(NOW);
  const out = execFileSync(
    process.execPath,
    [bin, 'verify', tree, '--root', pinned, '--now', now, '--json'],
    { encoding: 'utf8' },
  );
  assert.ok((JSON.parse(out) as { ok: boolean }).ok);
  const later = spawnSync(
    process.execPath,
    [bin, 'verify', tree, '--root', pinned, '--now', isoTime(NOW + 5 * HOUR)],
    { encoding: 'utf8' },
  );
  assert.is(later.status, 1);
  assert.match(later.stderr, /Stale: timestamp\.json/);
  assert.is(spawnSync(process.execPath, [bin, 'verify', tree], { encoding: 'utf8' }).status, 2);
});

test.run();
