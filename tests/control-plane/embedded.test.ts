// The embedded mTLS control plane: priming, client certificates, per-host authorisation, path
// normalisation, conditional GETs, and acks published under /acks/.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, symlinkSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTestPki, type TestPki } from '../support/pki.ts';
import { startControlPlane, type RunningServer } from '../../control-plane/index.ts';
import { canonicalString } from '../../protocol/canonical.ts';
import {
  fixtureHosts,
  fixtureKeys,
  writeTree,
  tempDir,
  removeDir,
  AckChain,
  type FixtureHost,
} from './tree-fixture.ts';
import { parsePrometheusText, sampleValue } from '../support/prom-parse.ts';
import { req } from './http.ts';

const test = suite('control-plane embedded server');

let pki: TestPki;
let treeDir: string;
let cp: RunningServer;
let hosts: FixtureHost[];
const keys = fixtureKeys();

test.before(async () => {
  pki = makeTestPki({ hosts: ['web1', 'db1'], operators: ['alice'] });
  treeDir = tempDir('cp-embedded');
  hosts = fixtureHosts({ web1: { wave: 0 }, db1: { wave: 1 } });
  cp = await startControlPlane({
    treeDir,
    tls: { ca: pki.ca, cert: pki.server.cert, key: pki.server.key },
    reloadIntervalMs: 60_000,
    ack: { debounceMs: 10 },
  });
});

test.after(async () => {
  await cp?.close();
  removeDir(treeDir);
  pki?.cleanup();
});

const web1 = () => pki.clientTls(pki.hosts['web1']!);
const db1 = () => pki.clientTls(pki.hosts['db1']!);
const alice = () => pki.clientTls(pki.operators['alice']!);

test('503 with Retry-After on every route until a verified tree is installed', async () => {
  const get = await req(`${cp.url}/timestamp.json`, { tls: web1() });
  assert.is(get.status, 503);
  assert.ok(get.headers['retry-after']);
  const post = await req(`${cp.url}/acks`, { tls: web1(), method: 'POST', body: '{}' });
  assert.is(post.status, 503);
  assert.ok(post.headers['retry-after']);
});

test('primes once a tree is present', async () => {
  writeTree(treeDir, { keys, hosts, version: 1 });
  cp.reload();
  assert.ok(cp.primed());
  assert.is(cp.view()?.releaseVersion, 1);
});

// As with nginx (`ssl_verify_client optional`), the handshake succeeds without a certificate (Nix must
// reach /nix-cache/, tests/control-plane/nix-cache.test.ts); every other route then refuses.
test('a client without a certificate is refused on every route but /nix-cache/', async () => {
  for (const path of ['/timestamp.json', '/releases/1/index.json', '/acks/hosts/web1.json']) {
    const r = await req(`${cp.url}${path}`, { tls: { ca: pki.ca } });
    assert.is(r.status, 403, path);
    assert.match(r.body, /NoClientIdentity/);
  }
  const post = await req(`${cp.url}/acks`, { tls: { ca: pki.ca }, method: 'POST', body: '{}' });
  assert.is(post.status, 403);
});

test('a certificate from another CA is refused', async () => {
  const other = makeTestPki({ hosts: ['web1'] });
  try {
    const r = await req(`${cp.url}/timestamp.json`, {
      tls: { ca: pki.ca, cert: other.hosts['web1']!.cert, key: other.hosts['web1']!.key },
    });
    assert.is(r.status, 403);
    assert.match(r.body, /NoClientIdentity/);
  } finally {
    other.cleanup();
  }
});

test('serves documents with content type, ETag and Last-Modified; 304 on conditional GET', async () => {
  const r = await req(`${cp.url}/timestamp.json`, { tls: web1() });
  assert.is(r.status, 200);
  assert.is(r.headers['content-type'], 'application/json');
  assert.is(r.body, readFileSync(join(treeDir, 'timestamp.json'), 'utf8'));
  const etag = r.headers['etag'] as string;
  assert.ok(etag);
  assert.is(
    (await req(`${cp.url}/timestamp.json`, { tls: web1(), headers: { 'if-none-match': etag } }))
      .status,
    304,
  );
  assert.is(
    (
      await req(`${cp.url}/timestamp.json`, {
        tls: web1(),
        headers: { 'if-modified-since': r.headers['last-modified'] as string },
      })
    ).status,
    304,
  );
  assert.is(
    (
      await req(`${cp.url}/timestamp.json`, {
        tls: web1(),
        headers: { 'if-none-match': '"other"' },
      })
    ).status,
    200,
  );
});

test('a rewritten file gets a new ETag even with the same size in the same second', async () => {
  const first = await req(`${cp.url}/timestamp.json`, { tls: web1() });
  const path = join(treeDir, 'timestamp.json');
  const bytes = readFileSync(path);
  writeFileSync(path + '.new', bytes);
  const { renameSync } = await import('node:fs');
  renameSync(path + '.new', path);
  const second = await req(`${cp.url}/timestamp.json`, {
    tls: web1(),
    headers: { 'if-none-match': first.headers['etag'] as string },
  });
  assert.is(second.status, 200);
});

test("a host reads its own manifest but not another host's; operators read all", async () => {
  assert.is((await req(`${cp.url}/releases/1/hosts/web1.json`, { tls: web1() })).status, 200);
  const other = await req(`${cp.url}/releases/1/hosts/db1.json`, { tls: web1() });
  assert.is(other.status, 403);
  assert.match(other.body, /another host's manifest/);
  assert.is((await req(`${cp.url}/releases/1/hosts/db1.json`, { tls: db1() })).status, 200);
  assert.is((await req(`${cp.url}/releases/1/hosts/db1.json`, { tls: alice() })).status, 200);
  assert.is((await req(`${cp.url}/releases/1/channels/prod.json`, { tls: web1() })).status, 200);
});

test('the dashboard is for operator certificates only', async () => {
  mkdirSync(join(treeDir, 'dashboard'), { recursive: true });
  writeFileSync(join(treeDir, 'dashboard', 'index.html'), '<h1>fleet</h1>');
  assert.is((await req(`${cp.url}/dashboard/index.html`, { tls: web1() })).status, 403);
  const ok = await req(`${cp.url}/dashboard/index.html`, { tls: alice() });
  assert.is(ok.status, 200);
  assert.is(ok.headers['content-type'], 'text/html; charset=utf-8');
});

test('traversal, dotfiles, directories and symlinks out of the tree are refused', async () => {
  symlinkSync('/etc/passwd', join(treeDir, 'escape.json'));
  for (const path of [
    '/releases/../timestamp.json',
    '/%2e%2e/%2e%2e/etc/passwd',
    '/releases/1/..%2f..%2ftimestamp.json',
    '/.ack-log/acks.log',
    '/releases/',
    '/releases',
    '/escape.json',
    '/',
    '//timestamp.json',
    '/timestamp.json%00',
  ]) {
    const r = await req(cp.url, { tls: alice(), rawPath: path });
    assert.is(r.status, 404, `${path} -> ${r.status}`);
    assert.not.match(r.body, /root:/);
  }
});

test('only GET and HEAD on the tree', async () => {
  assert.is(
    (await req(`${cp.url}/timestamp.json`, { tls: web1(), method: 'PUT', body: 'x' })).status,
    405,
  );
  const head = await req(`${cp.url}/timestamp.json`, { tls: web1(), method: 'HEAD' });
  assert.is(head.status, 200);
  assert.is(head.body, '');
});

test('an ack posted over mTLS is stored and published under /acks/', async () => {
  const chain = new AckChain(hosts[0]!);
  const ack = chain.next();
  const r = await req(`${cp.url}/acks`, { tls: web1(), method: 'POST', body: JSON.stringify(ack) });
  assert.is(r.status, 201, r.body);
  cp.ackService.publisher.flush();
  const latest = await req(`${cp.url}/acks/hosts/web1.json`, { tls: db1() });
  assert.is(latest.status, 200);
  assert.is(latest.body, canonicalString(ack));
  const bundle = await req(`${cp.url}/acks/channels/prod/wave-0.json`, { tls: db1() });
  assert.is(bundle.status, 200);
  const parsed = JSON.parse(bundle.body);
  assert.is(parsed.type, 'ack-bundle');
  assert.is(parsed.acks.length, 1);
  assert.equal(parsed.acks[0], ack);
  const wave1 = await req(`${cp.url}/acks/channels/prod/wave-1.json`, { tls: db1() });
  assert.is(JSON.parse(wave1.body).acks.length, 0);
});

test('an ack for another host is refused even with a valid certificate', async () => {
  const ack = new AckChain(hosts[1]!).next();
  const r = await req(`${cp.url}/acks`, { tls: web1(), method: 'POST', body: JSON.stringify(ack) });
  assert.is(r.status, 403);
  assert.match(r.body, /WrongHost/);
});

test('/metrics: operators get parseable Prometheus text; hosts 403; no certificate refused', async () => {
  const r = await req(`${cp.url}/metrics`, { tls: alice() });
  assert.is(r.status, 200, r.body);
  assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  const m = parsePrometheusText(r.body);
  assert.ok(
    sampleValue(m, 'nixfleet_cp_acks_total', { result: 'accepted', reason: 'stored' }) >= 1,
  );
  assert.ok(
    sampleValue(m, 'nixfleet_cp_acks_total', { result: 'refused', reason: 'WrongHost' }) >= 1,
  );
  assert.is(sampleValue(m, 'nixfleet_cp_release_version'), cp.view()!.releaseVersion);
  assert.is(sampleValue(m, 'nixfleet_cp_primed'), 1);
  assert.ok(sampleValue(m, 'nixfleet_cp_timestamp_expires_in_seconds') > 0);
  const prod = m.get('nixfleet_cp_hosts')!.samples.filter((s) => s.labels['channel'] === 'prod');
  assert.is(
    prod.reduce((a, s) => a + s.value, 0),
    2,
    'every host of the channel counted once',
  );
  assert.is(
    sampleValue(m, 'nixfleet_cp_hosts', { channel: 'prod', phase: 'offline' }),
    1,
    'db1 has posted nothing',
  );
  assert.ok(sampleValue(m, 'nixfleet_cp_requests_total', { route: 'acks', code: '201' }) >= 1);
  assert.ok(sampleValue(m, 'nixfleet_cp_requests_total', { route: 'tree', code: '200' }) >= 1);
  const host = await req(`${cp.url}/metrics`, { tls: web1() });
  assert.is(host.status, 403);
  assert.match(host.body, /operator certificates only/);
  const anon = await req(`${cp.url}/metrics`, { tls: { ca: pki.ca } });
  assert.is(anon.status, 403);
  assert.match(anon.body, /NoClientIdentity/);
  const again = parsePrometheusText((await req(`${cp.url}/metrics`, { tls: alice() })).body);
  assert.ok(
    sampleValue(again, 'nixfleet_cp_requests_total', { route: 'metrics', code: '403' }) >= 2,
    'refused scrapes are counted',
  );
});

/** Requests the server counted as answered with `code` on `route`, read in process (no scrape of its own). */
function answered(route: string, code: number): number {
  const m = parsePrometheusText(cp.metrics.render(cp.ackService, Date.now()));
  const s = m.get('nixfleet_cp_requests_total')?.samples ?? [];
  return (
    s.find((x) => x.labels['route'] === route && x.labels['code'] === String(code))?.value ?? 0
  );
}

// A client that has its answer finds it counted: the count is not left to the response's 'finish',
// which comes after the last write completed (and never, for a streamed body whose client hung up
// once it had the content-length's worth).
test('every answer is counted by the time its client has it: streamed 200, 304, 404, refused POST', async () => {
  const etag = (await req(`${cp.url}/timestamp.json`, { tls: web1() })).headers['etag'] as string;
  const asks: [string, number, () => Promise<{ status: number }>][] = [
    ['tree', 200, () => req(`${cp.url}/releases/1/index.json`, { tls: web1() })],
    [
      'tree',
      304,
      () => req(`${cp.url}/timestamp.json`, { tls: web1(), headers: { 'if-none-match': etag } }),
    ],
    ['tree', 404, () => req(`${cp.url}/no-such.json`, { tls: web1() })],
    ['acks', 400, () => req(`${cp.url}/acks`, { tls: web1(), method: 'POST', body: '{}' })],
  ];
  for (let round = 0; round < 10; round++)
    for (const [route, code, ask] of asks) {
      const before = answered(route, code);
      assert.is((await ask()).status, code, `${route} ${code}`);
      assert.is(answered(route, code), before + 1, `round ${round}: ${route} ${code} counted once`);
    }
});

test.run();
