// The enrolment commands through the real dispatcher (in-process): trust init with an enrolment role
// (refused when it reuses the release key), enrol token / withdraw against a published tree, pki
// issuing-ca + pki list, and nginx-config with the enrolment endpoint.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { b64, readPublicKey } from '../../protocol/keys.ts';
import { readRoot } from '../../protocol/trust-root.ts';
import { enrolmentPath, rootPath } from '../../protocol/layout.ts';
import { publishRelease } from '../../publisher/publish.ts';
import { readPrivateKey } from '../../protocol/keys.ts';
import type { FleetInput } from '../../publisher/fleet-schema.ts';
import { runCli as run } from '../support/cli.ts';
import { requireTool } from '../support/skip.ts';
import { cleanupTempDirs, tempDir } from '../verify/helpers.ts';

test.after.each(cleanupTempDirs);

async function keys(dir: string, names: string[]) {
  for (const n of names) {
    const r = await run('keygen', '--name', n, '--out', join(dir, `${n}.key`));
    assert.is(r.code, 0, r.err);
  }
}

function trustInit(dir: string, enrolmentKey: string) {
  return run(
    'trust',
    'init',
    '--fleet',
    'ops',
    '--root-key',
    join(dir, 'root.key'),
    '--threshold',
    '1',
    '--release-key',
    join(dir, 'release.pub'),
    '--enrolment-key',
    enrolmentKey,
    '--expires-days',
    '365',
    '--out',
    join(dir, 'trust'),
    '--json',
  );
}

test('trust init --enrolment-key: the role in root v1; the release key cannot be an enrolment key', async () => {
  const dir = tempDir('enrol-cli');
  await keys(dir, ['root', 'release', 'enrol']);
  const bad = await trustInit(dir, join(dir, 'release.pub'));
  assert.is.not(bad.code, 0);
  assert.match(bad.out + bad.err, /also a release key/);
  assert.not.ok(existsSync(join(dir, 'trust', rootPath(1))));
  const ok = await trustInit(dir, join(dir, 'enrol.pub'));
  assert.is(ok.code, 0, ok.err);
  const root = readRoot(readFileSync(join(dir, 'trust', rootPath(1))), rootPath(1)).signed;
  assert.equal(
    root.enrolmentKeys!.map((k) => k.keyid),
    [readPublicKey(join(dir, 'enrol.pub')).keyid],
  );
  assert.is(root.enrolmentThreshold, 1);
});

test('enrol token / withdraw against a published tree; pki issuing-ca, pki list, nginx-config --enrol-upstream', async () => {
  if (!requireTool('openssl', 'the issuing CA')) return;
  const dir = tempDir('enrol-cli');
  await keys(dir, ['root', 'release', 'enrol', 'web-1']);
  assert.is((await trustInit(dir, join(dir, 'enrol.pub'))).code, 0);
  const rootFile = join(dir, 'trust', rootPath(1));
  const tree = join(dir, 'tree');
  publishRelease({
    cacheCheck: 'skip',
    treeDir: tree,
    trustDir: join(dir, 'trust'),
    releaseKeys: [readPrivateKey(join(dir, 'release.key'))],
    now: Date.now(),
    fleet: {
      fleet: 'ops',
      hosts: {
        'web-1': {
          system: 'x86_64-linux',
          channel: 'prod',
          tags: [],
          target: '/nix/store/11111111111111111111111111111111-nixos-system-a',
          hostKey: b64(readPublicKey(join(dir, 'web-1.pub')).publicKey),
        },
      },
      channels: { prod: { policy: 'p' } },
      policies: { p: { strategy: 'all-at-once', waves: [] } },
    } as unknown as FleetInput,
  });
  const common = ['--tree', tree, '--root', rootFile, '--enrolment-key', join(dir, 'enrol.key')];
  const token = join(dir, 'web-1.token');
  const minted = await run(
    'enrol',
    'token',
    '--host',
    'web-1',
    '--expires',
    '24h',
    '--out',
    token,
    '--json',
    ...common,
  );
  assert.is(minted.code, 0, minted.err);
  assert.is(statSync(token).mode & 0o777, 0o600);
  assert.ok(existsSync(join(tree, enrolmentPath(1))));
  const nonce = (JSON.parse(minted.out) as { nonce: string }).nonce;
  assert.is(
    (JSON.parse(readFileSync(token, 'utf8')) as { signed: { nonce: string } }).signed.nonce,
    nonce,
  );
  // A week at most; an unknown host is a usage error; the release key cannot mint.
  assert.is((await run('enrol', 'token', '--host', 'web-1', '--expires', '8d', ...common)).code, 1);
  assert.is((await run('enrol', 'token', '--host', 'nope', '--expires', '1d', ...common)).code, 2);
  const byRelease = await run(
    'enrol',
    'token',
    '--host',
    'web-1',
    '--expires',
    '1d',
    '--tree',
    tree,
    '--root',
    rootFile,
    '--enrolment-key',
    join(dir, 'release.key'),
  );
  assert.is(byRelease.code, 1, byRelease.err);
  assert.match(byRelease.err, /UnknownKey/);
  const withdrawn = await run('enrol', 'withdraw', '--token', token, '--json', ...common);
  assert.is(withdrawn.code, 0, withdrawn.err);
  assert.is((JSON.parse(withdrawn.out) as { version: number }).version, 2);
  assert.is(
    (await run('enrol', 'withdraw', '--token', token, ...common)).code,
    1,
    'nothing left to withdraw',
  );

  const pki = join(dir, 'pki');
  assert.is((await run('pki', 'init', '--out', pki, '--fleet', 'ops')).code, 0);
  const issuing = join(dir, 'issuing');
  const created = await run('pki', 'issuing-ca', '--pki', pki, '--out', issuing);
  assert.is(created.code, 0, created.err + created.out);
  const listed = await run('pki', 'list', '--pki', pki, '--issuing', issuing, '--json');
  assert.is(listed.code, 0, listed.err);
  assert.ok((JSON.parse(listed.out) as { kind: string }[]).some((c) => c.kind === 'issuing-ca'));
  const nginx = await run(
    'nginx-config',
    '--tree',
    join(dir, 'cp'),
    '--pki',
    pki,
    '--listen',
    '127.0.0.1:8443',
    '--ack-upstream',
    '127.0.0.1:8444',
    '--enrol-upstream',
    '127.0.0.1:8445',
    '--issuing',
    issuing,
  );
  assert.is(nginx.code, 0, nginx.err);
  assert.match(nginx.out, /location = \/enrol \{/);
  assert.match(nginx.out, new RegExp(`ssl_client_certificate ${issuing}/client-ca.pem;`));
  assert.match(nginx.out, new RegExp(`ssl_crl ${issuing}/crl-chain.pem;`));
  assert.match(nginx.out, /X-SSL-Client-Cert \$ssl_client_escaped_cert/);
  assert.is(
    (
      await run(
        'nginx-config',
        '--tree',
        join(dir, 'cp'),
        '--pki',
        pki,
        '--listen',
        '8443',
        '--ack-upstream',
        '127.0.0.1:8444',
        '--enrol-upstream',
        '127.0.0.1:8445',
      )
    ).code,
    2,
  );
});

test.run();
