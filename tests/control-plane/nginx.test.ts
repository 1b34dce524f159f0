// The real nginx (Debian nginx-light) on 127.0.0.1 with exactly the config `nixfleet nginx-config`
// renders, in front of the ack endpoint: mTLS, priming, per-host authorisation, 304s, acks through nginx,
// and revocation after `cp sync` + reload.
import { suite } from 'uvu';
import { LIMITS } from '../../protocol/limits.ts';
import * as assert from 'uvu/assert';
import { chmodSync, mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireTool } from '../support/skip.ts';
import { makeTestPki, type TestPki } from '../support/pki.ts';
import {
  startNginx,
  freePort,
  makeRuntimeDir,
  removeRuntimeDir,
  type RunningNginx,
} from '../support/nginx.ts';
import { renderNginxConfig } from '../../control-plane/nginx-config.ts';
import {
  ensureRevocationMaps,
  syncTree,
  startAckEndpoint,
  type RunningServer,
} from '../../control-plane/index.ts';
import { canonicalString } from '../../protocol/canonical.ts';
import {
  fixtureHosts,
  fixtureKeys,
  writeTree,
  tempDir,
  removeDir,
  AckChain,
} from './tree-fixture.ts';
import { req } from './http.ts';
import { parsePrometheusText, sampleValue } from '../support/prom-parse.ts';
import { CertificateRefused, HttpClient } from '../../agent/http-client.ts';

const test = suite('control-plane nginx');
const ok = requireTool('nginx', 'nginx integration tests') && requireTool('openssl', 'test PKI');
const keys = fixtureKeys();
const hosts = fixtureHosts({ web1: {}, db1: { wave: 1 }, web2: { wave: 1 } });

let pki: TestPki;
let work: string;
let treeDir: string;
let runtime: string;
let nginx: RunningNginx | undefined;
let ep: RunningServer | undefined;
let url: string;
let renderConfig: () => string;

const as = (name: string) => pki.clientTls(pki.hosts[name] ?? pki.operators[name]!);

test.before(async () => {
  if (!ok) return;
  pki = makeTestPki({ hosts: ['web1', 'db1', 'web2'], operators: ['alice'] });
  work = tempDir('nginx-tree');
  chmodSync(work, 0o755);
  treeDir = join(work, 'cp');
  mkdirSync(treeDir, { recursive: true });
  ensureRevocationMaps(treeDir);
  const dashboard = join(work, 'dashboard');
  mkdirSync(dashboard);
  writeFileSync(join(dashboard, 'index.html'), '<h1>fleet</h1>');
  ep = await startAckEndpoint({
    treeDir,
    ackLogDir: join(work, 'ack-log'),
    reloadIntervalMs: 60_000,
    ack: { debounceMs: 5 },
  });
  const port = await freePort();
  const ackUpstream = `127.0.0.1:${ep.port}`;
  runtime = makeRuntimeDir();
  renderConfig = () =>
    renderNginxConfig({
      treeDir,
      ...pki.nginxTls(),
      listen: `127.0.0.1:${port}`,
      ackUpstream,
      dashboardDir: dashboard,
      runtimeDir: runtime,
      workerProcesses: 1,
    });
  nginx = await startNginx({ config: renderConfig(), runtimeDir: runtime, port });
  url = `https://127.0.0.1:${port}`;
});

test.after(async () => {
  await nginx?.stop();
  await ep?.close();
  if (runtime) removeRuntimeDir(runtime);
  if (work) removeDir(work);
  pki?.cleanup();
});

function ciTree(
  name: string,
  version: number,
  revokedHosts: { host: string; certSerial: string }[] = [],
): string {
  const dir = join(work, name);
  writeTree(dir, { keys, hosts, version, revokedHosts, issuedOffsetSeconds: -100 + version });
  mkdirSync(join(dir, 'nix-cache'), { recursive: true });
  writeFileSync(join(dir, 'nix-cache', 'nix-cache-info'), 'StoreDir: /nix/store\n');
  return dir;
}

test('503 with Retry-After before a tree is installed', async () => {
  if (!ok) return;
  const r = await req(`${url}/timestamp.json`, { tls: as('web1') });
  assert.is(r.status, 503, nginx!.logs());
  assert.is(r.headers['retry-after'], '5');
  assert.match(r.body, /NotPrimed/);
  const post = await req(`${url}/acks`, { tls: as('web1'), method: 'POST', body: '{}' });
  assert.is(post.status, 503);
});

test('after cp sync: a valid certificate reads, no certificate is refused', async () => {
  if (!ok) return;
  await syncTree({ from: ciTree('v1', 1), treeDir, pinnedRoot: keys.signedRoot });
  ep!.reload();
  const r = await req(`${url}/timestamp.json`, { tls: as('web1') });
  assert.is(r.status, 200, r.body + nginx!.logs());
  assert.is(r.headers['content-type'], 'application/json');
  assert.is(r.body, readFileSync(join(treeDir, 'current', 'timestamp.json'), 'utf8'));
  const none = await req(`${url}/timestamp.json`, { tls: { ca: pki.ca } });
  assert.is(none.status, 403);
  assert.match(none.body, /no-verified-client-certificate/);
});

test('304 on a conditional GET', async () => {
  if (!ok) return;
  const r = await req(`${url}/releases/1/channels/prod.json`, { tls: as('web1') });
  assert.is(r.status, 200);
  const etag = r.headers['etag'] as string;
  assert.ok(etag);
  const again = await req(`${url}/releases/1/channels/prod.json`, {
    tls: as('web1'),
    headers: { 'if-none-match': etag },
  });
  assert.is(again.status, 304);
  assert.is(again.body, '');
});

test("a host reads its own manifest, not another host's; operators read all", async () => {
  if (!ok) return;
  assert.is((await req(`${url}/releases/1/hosts/web1.json`, { tls: as('web1') })).status, 200);
  const other = await req(`${url}/releases/1/hosts/db1.json`, { tls: as('web1') });
  assert.is(other.status, 403);
  assert.match(other.body, /not-your-manifest/);
  // nginx normalises the URI before the map sees it
  assert.is(
    (await req(url, { tls: as('web1'), rawPath: '/releases/1/hosts/x/../db1.json' })).status,
    403,
  );
  assert.is((await req(`${url}/releases/1/hosts/db1.json`, { tls: as('alice') })).status, 200);
});

test('the dashboard is for operators only; nix-cache needs no certificate', async () => {
  if (!ok) return;
  assert.is((await req(`${url}/dashboard/`, { tls: as('web1') })).status, 403);
  const d = await req(`${url}/dashboard/`, { tls: as('alice') });
  assert.is(d.status, 200);
  assert.match(d.body, /fleet/);
  const cache = await req(`${url}/nix-cache/nix-cache-info`, { tls: { ca: pki.ca } });
  assert.is(cache.status, 200);
  assert.match(cache.body, /StoreDir/);
});

test('traversal and dotfiles are refused, directories are not listed', async () => {
  if (!ok) return;
  for (const path of [
    '/../../etc/passwd',
    '/releases/',
    '/releases/1/',
    '/%2e%2e/%2e%2e/etc/passwd',
  ]) {
    const r = await req(url, { tls: as('alice'), rawPath: path });
    assert.ok(r.status === 404 || r.status === 400 || r.status === 403, `${path} -> ${r.status}`);
    assert.not.match(r.body, /root:/);
  }
});

test('an ack POSTed through nginx is stored and published; the identity comes from the certificate', async () => {
  if (!ok) return;
  const chain = new AckChain(hosts[0]!);
  const ack = chain.next();
  // a client-sent identity header must not survive nginx
  const r = await req(`${url}/acks`, {
    tls: as('web1'),
    method: 'POST',
    body: JSON.stringify(ack),
    headers: { 'x-ssl-client-s-dn': 'CN=db1,OU=agent' },
  });
  assert.is(r.status, 201, r.body);
  ep!.ackService.publisher.flush();
  const latest = await req(`${url}/acks/hosts/web1.json`, { tls: as('db1') });
  assert.is(latest.status, 200);
  assert.is(latest.body, canonicalString(ack));
  const forged = await req(`${url}/acks`, {
    tls: as('db1'),
    method: 'POST',
    body: JSON.stringify(chain.next()),
  });
  assert.is(forged.status, 403);
  assert.match(forged.body, /WrongHost/);
  assert.is((await req(`${url}/acks`, { tls: as('web1') })).status, 403, 'GET /acks');
  assert.is(
    (
      await req(`${url}/acks`, {
        tls: as('web1'),
        method: 'POST',
        body: 'x'.repeat(LIMITS.ack + 1),
      })
    ).status,
    413,
  );
});

test("/metrics through nginx: operators get the ack endpoint's metrics; hosts 403; no certificate refused", async () => {
  if (!ok) return;
  const r = await req(`${url}/metrics`, { tls: as('alice') });
  assert.is(r.status, 200, r.body + nginx!.logs());
  const m = parsePrometheusText(r.body);
  assert.ok(
    sampleValue(m, 'nixfleet_cp_acks_total', { result: 'accepted', reason: 'stored' }) >= 1,
  );
  assert.ok(
    sampleValue(m, 'nixfleet_cp_acks_total', { result: 'refused', reason: 'WrongHost' }) >= 1,
  );
  assert.is(sampleValue(m, 'nixfleet_cp_release_version'), 1);
  const host = await req(`${url}/metrics`, { tls: as('web1') });
  assert.is(host.status, 403);
  assert.match(host.body, /operator-only/);
  const anon = await req(`${url}/metrics`, { tls: { ca: pki.ca } });
  assert.is(anon.status, 403);
  assert.match(anon.body, /no-verified-client-certificate/);
  // A forged identity header from the client does not make a host an operator.
  const forged = await req(`${url}/metrics`, {
    tls: as('web1'),
    headers: { 'x-ssl-client-s-dn': 'CN=alice,OU=operator' },
  });
  assert.is(forged.status, 403);
});

test('a revoked certificate is refused after cp sync + nginx reload', async () => {
  if (!ok) return;
  assert.is((await req(`${url}/timestamp.json`, { tls: as('web2') })).status, 200);
  const serial = pki.hosts['web2']!.serial;
  const r = await syncTree({
    from: ciTree('v2', 2, [{ host: 'web2', certSerial: serial }]),
    treeDir,
    pinnedRoot: keys.signedRoot,
    nginxPidFile: nginx!.pidFile,
  });
  assert.ok(r.nginxReloaded);
  await nginx!.reload();
  const refused = await req(`${url}/timestamp.json`, { tls: as('web2') });
  assert.is(refused.status, 403);
  assert.match(refused.body, /revoked/);
  assert.is((await req(`${url}/timestamp.json`, { tls: as('web1') })).status, 200);
  assert.is(
    JSON.parse((await req(`${url}/timestamp.json`, { tls: as('web1') })).body).signed.release
      .version,
    2,
  );
});

test("a certificate revoked in the CRL: nginx answers 400 and the agent's client says the certificate was refused", async () => {
  if (!ok) return;
  const db1 = pki.hosts['db1']!;
  const client = new HttpClient({
    baseUrl: url,
    ca: pki.ca,
    cert: db1.cert,
    key: db1.key,
    certFile: db1.certPath,
    retries: 0,
    timeoutMs: 10_000,
  });
  try {
    await client.get('timestamp.json', 64 * 1024);
    pki.revoke(db1);
    // The CRL-update path: render again (a new, empty session cache named after the new CRL) and reload.
    // A bare reload would leave db1's session in the cache (nginx-tls-resumption.test.ts).
    writeFileSync(join(runtime, 'nginx.conf'), renderConfig());
    await nginx!.reload();
    const raw = await req(`${url}/timestamp.json`, { tls: as('db1') });
    assert.is(raw.status, 400, 'nginx refuses a certificate in its CRL with its own 400 page');
    const refused = await client.get('timestamp.json', 64 * 1024, { conditional: false }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.instance(refused, CertificateRefused);
    assert.match((refused as Error).message, /refused this host's client certificate/);
    assert.ok((refused as Error).message.includes(db1.certPath), 'names the certificate file');
    assert.is(client.stats.retries, 0);
  } finally {
    client.close();
  }
});

test.run();
