// /nix-cache/ on the embedded control plane: open without a client certificate (like nginx), so the real
// Nix 2.8 can substitute from it over HTTPS (trusting the fleet CA through NIX_SSL_CERT_FILE), while every
// other route keeps requiring a certificate and nothing outside nix-cache/ is reachable through it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireTool } from '../support/skip.ts';
import { makeTestPki, type TestPki } from '../support/pki.ts';
import { startControlPlane, type RunningServer } from '../../control-plane/index.ts';
import { fixtureHosts, fixtureKeys, writeTree, tempDir, removeDir } from './tree-fixture.ts';
import { req } from './http.ts';
import { nixSandbox, run, type NixSandbox } from '../nix/nix-env.ts';
import { checkCache } from '../../publisher/cache-check.ts';

let pki: TestPki | undefined;
let treeDir: string | undefined;
let cp: RunningServer | undefined;
let sandbox: NixSandbox | undefined;
let target = '';
let cachePub = '';
let caFile = '';

async function must(cmd: string, args: string[], env = sandbox!.env): Promise<string> {
  const r = await run(cmd, args, { env, timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

const hasNix = requireTool('nix', 'Nix substituting from the embedded control plane');

test.before(async () => {
  if (!hasNix) return;
  sandbox = nixSandbox('nixfleet-cp-nix-cache-');
  pki = makeTestPki({ hosts: ['web1'] });
  caFile = join(sandbox.dir, 'ca.pem');
  writeFileSync(caFile, pki.ca);
  treeDir = tempDir('cp-nix-cache');
  writeTree(treeDir, {
    keys: fixtureKeys(),
    hosts: fixtureHosts({ web1: { wave: 0 } }),
    version: 1,
  });
  target = (
    await must('nix-build', [
      '--no-out-link',
      '-E',
      'derivation { name = "nixfleet-cp-cache-target"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "echo served > $out" ]; }',
    ])
  ).trim();
  const secret = join(sandbox.dir, 'cache.sec');
  writeFileSync(
    secret,
    await must('nix', ['key', 'generate-secret', '--key-name', 'fleet-cache-1']),
  );
  cachePub = (
    await must('sh', ['-c', 'nix key convert-secret-to-public < "$1"', 'sh', secret])
  ).trim();
  await must('nix', [
    'copy',
    '--to',
    `file://${join(treeDir, 'nix-cache')}?secret-key=${secret}`,
    target,
  ]);
  // A symlink inside nix-cache/ to a document elsewhere in the tree must not become an open door.
  symlinkSync('../timestamp.json', join(treeDir, 'nix-cache', 'leak.narinfo'));
  mkdirSync(join(treeDir, 'nix-cache', 'sub'), { recursive: true });
  cp = await startControlPlane({
    treeDir,
    tls: { ca: pki.ca, cert: pki.server.cert, key: pki.server.key },
    reloadIntervalMs: 60_000,
  });
});

test.after(async () => {
  await cp?.close();
  if (treeDir) removeDir(treeDir);
  pki?.cleanup();
  sandbox?.cleanup();
});

test('Nix substitutes a signed closure from https://.../nix-cache without a client certificate', async () => {
  if (!hasNix) return;
  const env = { ...sandbox!.env, NIX_SSL_CERT_FILE: caFile, SSL_CERT_FILE: caFile };
  const url = `${cp!.url}/nix-cache`;
  // A fresh chroot store (not the machine's, which already holds the path) has to download the NAR.
  const store = join(sandbox!.dir, 'client-store');
  const copy = await run(
    'nix',
    ['copy', '--from', url, '--to', store, '--option', 'trusted-public-keys', cachePub, target],
    { env, timeoutMs: 120_000 },
  );
  assert.is(copy.code, 0, copy.stderr);
  const info = await must('nix', ['path-info', '--store', store, '--json', target], env);
  assert.is((JSON.parse(info) as { path: string }[])[0]!.path, target);
  // Nix still checks the signature: with another trusted key it refuses the same cache.
  const other = join(sandbox!.dir, 'client-store-2');
  const refused = await run(
    'nix',
    [
      'copy',
      '--from',
      url,
      '--to',
      other,
      '--option',
      'trusted-public-keys',
      'someone-else:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
      target,
    ],
    { env, timeoutMs: 120_000 },
  );
  assert.is.not(refused.code, 0);
  assert.match(refused.stderr, /signature|trusted/);
});

test('the publisher cache check reads the same cache over https (CA from NODE_EXTRA_CA_CERTS or the fetcher)', async () => {
  if (!hasNix) return;
  // The CLI's fetcher (global fetch) trusts the fleet CA through NODE_EXTRA_CA_CERTS, read at process
  // start; in this process the fetcher is injected with the CA instead.
  const fetchNarinfo = async (u: string) => {
    const r = await req(u, { tls: { ca: pki!.ca } });
    if (r.status === 404) return null;
    if (r.status !== 200) throw new Error(`HTTP ${r.status}`);
    return Buffer.from(r.body, 'utf8');
  };
  const r = await checkCache({
    cacheUrl: `${cp!.url}/nix-cache`,
    storePaths: [target],
    trustedKeys: [cachePub],
    fetchNarinfo,
  });
  assert.equal(r.problems, []);
  assert.is(r.checked, 1);
});

test('/nix-cache/ opens nothing else: traversal, encoded slashes, symlinks out of the cache, listing, writes', async () => {
  if (!hasNix) return;
  const noCert = { tls: { ca: pki!.ca } };
  const ok = await req(`${cp!.url}/nix-cache/nix-cache-info`, noCert);
  assert.is(ok.status, 200);
  assert.match(ok.body, /StoreDir: \/nix\/store/);
  for (const rawPath of [
    '/nix-cache/../timestamp.json',
    '/nix-cache/%2e%2e/timestamp.json',
    '/nix-cache/..%2ftimestamp.json',
    '/nix-cache%2f..%2ftimestamp.json',
    '/nix-cache/./../releases/1/index.json',
    '/nix-cache//../timestamp.json',
  ]) {
    const r = await req(`${cp!.url}/`, { ...noCert, rawPath });
    assert.ok(r.status === 404 || r.status === 403, `${rawPath}: ${r.status}`);
    assert.not.match(r.body, /"signed"/, `${rawPath} leaked a document`);
  }
  for (const path of ['/nix-cache/leak.narinfo', '/nix-cache/sub', '/nix-cache']) {
    const r = await req(`${cp!.url}${path}`, noCert);
    assert.is(r.status, 404, path);
  }
  assert.is(
    (await req(`${cp!.url}/nix-cache/`, noCert)).status,
    403,
    'no listing: an empty segment is not a cache file',
  );
  const put = await req(`${cp!.url}/nix-cache/x.narinfo`, { ...noCert, method: 'PUT', body: 'x' });
  assert.is(put.status, 405);
  const ts = await req(`${cp!.url}/timestamp.json`, noCert);
  assert.is(ts.status, 403, 'the tree itself still needs a certificate');
  const withCert = await req(`${cp!.url}/timestamp.json`, {
    tls: pki!.clientTls(pki!.hosts['web1']!),
  });
  assert.is(withCert.status, 200);
});

test.run();
