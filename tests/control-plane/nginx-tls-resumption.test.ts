// TLS session resumption through the real nginx with the rendered config, as a timer-mode agent uses it
// (agent/tls-session.ts: the session kept in the state directory between runs), in both modes of
// control-plane/nginx-config.ts: the shared session cache (default) and stateless tickets
// (--tls-session-cache off). What each mode must keep: a resumed session still carries the host's
// certificate, the signed revocations refuse it on every request, and a certificate newly in the CRL
// stops at the step the mode documents (tickets: any reload; cache: `nginx-config --nginx-pid`, which
// renders again and reloads, as the NixOS module does when the CRL changes).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { createServer, connect as tcpConnect, type Server } from 'node:net';
import { requireTool } from '../support/skip.ts';
import { makeTestPki, type TestPki, type TestCert } from '../support/pki.ts';
import {
  startNginx,
  freePort,
  makeRuntimeDir,
  removeRuntimeDir,
  type RunningNginx,
} from '../support/nginx.ts';
import { renderNginxConfig } from '../../control-plane/nginx-config.ts';
import { ensureRevocationMaps, syncTree } from '../../control-plane/index.ts';
import nginxConfigCommand from '../../cli/nginx-config.ts';
import { captureOutput } from '../support/cli.ts';
import { CertificateRefused, HttpClient, Unreachable } from '../../agent/http-client.ts';
import { HttpCache } from '../../agent/http-cache.ts';
import { StateDir } from '../../agent/state-dir.ts';
import { tlsSessionStore } from '../../agent/tls-session.ts';
import { fixtureHosts, fixtureKeys, writeTree, tempDir, removeDir } from './tree-fixture.ts';

const test = suite('nginx TLS resumption');
const ok = requireTool('nginx', 'nginx integration tests') && requireTool('openssl', 'test PKI');
const keys = fixtureKeys();
const hosts = fixtureHosts({ web1: {}, db1: {}, web2: {} });

let pki: TestPki;
let work: string;
let treeDir: string;
const running: { nginx: RunningNginx; runtime: string; relay: Server }[] = [];

test.before(async () => {
  if (!ok) return;
  pki = makeTestPki({ hosts: ['web1', 'db1', 'web2'] });
  work = tempDir('nginx-resumption');
  chmodSync(work, 0o755);
  treeDir = join(work, 'cp');
  mkdirSync(treeDir, { recursive: true });
  ensureRevocationMaps(treeDir);
  await syncTree({ from: ciTree('v1', 1), treeDir, pinnedRoot: keys.signedRoot });
});

test.after(async () => {
  for (const r of running) {
    r.relay.close();
    await r.nginx.stop();
    removeRuntimeDir(r.runtime);
  }
  if (work) removeDir(work);
  pki?.cleanup();
});

function ciTree(name: string, version: number, revoked: TestCert[] = []): string {
  const dir = join(work, name);
  writeTree(dir, {
    keys,
    hosts,
    version,
    revokedHosts: revoked.map((c) => ({ host: c.name, certSerial: c.serial })),
    issuedOffsetSeconds: -100 + version,
  });
  return dir;
}

/** One control plane box: nginx with the rendered config; sessionCacheSize undefined = the default. */
async function startBox(sessionCacheSize?: string) {
  const port = await freePort();
  const runtime = makeRuntimeDir();
  const render = () =>
    renderNginxConfig({
      treeDir,
      ...pki.nginxTls(),
      listen: `127.0.0.1:${port}`,
      ackUpstream: '127.0.0.1:9',
      runtimeDir: runtime,
      workerProcesses: 1,
      ...(sessionCacheSize ? { sessionCacheSize } : {}),
    });
  const nginx = await startNginx({ config: render(), runtimeDir: runtime, port });
  const relay = await countingRelay(port);
  running.push({ nginx, runtime, relay: relay.server });
  return {
    nginx,
    /** Through the relay, which counts every byte on the wire. */
    url: `https://127.0.0.1:${relay.port}/`,
    wireBytes: relay.bytes,
    port,
    config: render,
    /**
     * The CRL-update path: `nixfleet nginx-config ... --nginx-pid` (what the NixOS module runs when the CA
     * or CRL file changes) renders the config from the PKI directory as it is now and reloads nginx.
     */
    async renderAgainAndReload() {
      await nginx.reload(async () => {
        const r = await captureOutput(() =>
          nginxConfigCommand.run([
            ...['--tree', treeDir, '--pki', pki.dir, '--listen', `127.0.0.1:${port}`],
            ...['--ack-upstream', '127.0.0.1:9', '--runtime-dir', runtime, '--workers', '1'],
            ...(sessionCacheSize ? ['--tls-session-cache', sessionCacheSize] : []),
            ...['--out', join(runtime, 'nginx.conf'), '--nginx-pid', nginx.pidFile],
          ]),
        );
        assert.is(r.code, 0, r.err);
      });
    },
  };
}

/** A TCP relay in front of nginx that counts the bytes of both directions (TLS records, handshakes included). */
async function countingRelay(target: number) {
  let bytes = 0;
  const server = createServer((down) => {
    const up = tcpConnect(target, '127.0.0.1');
    down.on('data', (d: Buffer) => (bytes += d.length));
    up.on('data', (d: Buffer) => (bytes += d.length));
    down.pipe(up).pipe(down);
    const end = () => (down.destroy(), up.destroy());
    down.on('error', end).on('close', end);
    up.on('error', end).on('close', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port, bytes: () => bytes };
}

/** A timer-mode agent's runs: a new client per run, the TLS session and ETags kept in its state directory. */
function agentOf(host: TestCert, box: { url: string; wireBytes: () => number }) {
  const url = box.url;
  const state = new StateDir(mkdtempSync(join(work, `state-${host.name}-`)));
  const cache = new HttpCache(join(state.root, 'http-cache'));
  return async () => {
    const c = new HttpClient({
      baseUrl: url,
      ca: pki.ca,
      cert: host.cert,
      key: host.key,
      certFile: host.certPath,
      cache,
      retries: 0,
      timeoutMs: 10_000,
      tlsSession: tlsSessionStore(state, url, host.cert),
    });
    const bytesBefore = box.wireBytes();
    let error: unknown;
    try {
      await c.get('timestamp.json', 64 * 1024);
      await c.get('timestamp.json', 64 * 1024);
    } catch (e) {
      error = e;
    }
    const stats = c.stats;
    c.close();
    // Everything nginx sent has arrived with the last answer (the new ticket comes with the first).
    return { ...stats, wireBytes: box.wireBytes() - bytesBefore, error };
  };
}

/** How many session tickets nginx sends after a full handshake (and one request). */
function ticketsAfterFullHandshake(port: number, host: TestCert): Promise<number> {
  return new Promise((resolve, reject) => {
    let tickets = 0;
    const s = connect({
      host: '127.0.0.1',
      port,
      ca: pki.ca,
      cert: host.cert,
      key: host.key,
      minVersion: 'TLSv1.3',
    });
    s.on('session', () => tickets++);
    s.on('error', reject);
    s.once('secureConnect', () =>
      s.write('GET /timestamp.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
    );
    s.resume();
    s.once('end', () => resolve(tickets));
  });
}

let ticketRunBytes = 0;

test('tickets (--tls-session-cache off): one ticket per full handshake; the next run resumes; any reload ends it', async () => {
  if (!ok) return;
  const box = await startBox('off');
  assert.match(box.config(), /ssl_session_tickets on;/);
  assert.is(await ticketsAfterFullHandshake(box.port, pki.hosts['web1']!), 1);
  const run = agentOf(pki.hosts['db1']!, box);
  const first = await run();
  assert.equal([first.error, first.connections, first.resumed], [undefined, 1, 0]);
  const second = await run();
  assert.equal([second.error, second.connections, second.resumed], [undefined, 1, 1]);
  assert.is(second.notModified, 2);
  ticketRunBytes = second.wireBytes;

  pki.revoke(pki.hosts['db1']!);
  await box.nginx.reload();
  const after = await run();
  assert.is(after.resumed, 0, 'new ticket keys: the kept session is not resumed');
  assert.instance(after.error, CertificateRefused, String(after.error));
});

test('default, the session cache: the next run resumes in under 2 KB, ~1.3 KB less than with tickets; the signed revocations refuse a resumed session', async () => {
  if (!ok) return;
  const box = await startBox();
  assert.match(box.config(), /ssl_session_cache shared:nixfleet_[0-9a-f]{12}:128m;/);
  assert.match(box.config(), /ssl_session_tickets off;/);
  assert.is(await ticketsAfterFullHandshake(box.port, pki.hosts['web1']!), 1);
  const run = agentOf(pki.hosts['web1']!, box);
  assert.equal((await run()).resumed, 0);
  const resumed = await run();
  assert.equal([resumed.error, resumed.connections, resumed.resumed], [undefined, 1, 1]);
  assert.is(resumed.notModified, 2);
  assert.ok(resumed.wireBytes <= 2048, `resumed run: ${resumed.wireBytes} bytes on the wire`);
  assert.ok(
    ticketRunBytes - resumed.wireBytes >= 1000,
    `resumed run: ${resumed.wireBytes} bytes with the cache, ${ticketRunBytes} with tickets`,
  );

  // Revocation path 3: CI publishes signed revocations naming the certificate; cp sync installs the maps
  // and reloads. The cache outlives the reload, and the maps refuse the resumed session per request.
  await syncTree({
    from: ciTree('v2', 2, [pki.hosts['web1']!]),
    treeDir,
    pinnedRoot: keys.signedRoot,
  });
  await box.nginx.reload();
  const refused = await run();
  assert.is(refused.resumed, 1, 'the cache outlives the reload');
  assert.instance(refused.error, Unreachable);
  assert.match(String(refused.error), /HTTP 403 \(Forbidden: revoked\)/);
});

test('default, the session cache: a certificate newly in the CRL is refused, resumed or not, once nginx-config --nginx-pid has rendered again and reloaded', async () => {
  if (!ok) return;
  const box = await startBox();
  const web2 = pki.hosts['web2']!;
  const run = agentOf(web2, box);
  assert.equal((await run()).resumed, 0);
  assert.equal((await run()).resumed, 1);

  // Revocation path 1: the CRL changes (pki revoke) and nginx is reloaded without rendering again. Full
  // handshakes are checked against the new CRL, but the cache (its name unchanged) keeps the host's
  // session: this is why a CRL is applied by rendering again, never by a bare reload.
  pki.revoke(web2);
  await box.nginx.reload();
  const fresh = await agentOf(web2, box)();
  assert.equal([fresh.resumed, fresh.error?.constructor], [0, CertificateRefused]);
  const stale = await run();
  assert.equal([stale.resumed, stale.error], [1, undefined]);

  // Revocation path 2, the CRL-update path: render again + reload. The config names a new cache (the
  // CRL's digest changed), empty: the kept session is unknown, the full handshake meets the CRL.
  const zoneBefore = /shared:(nixfleet_[0-9a-f]+)/.exec(
    readFileSync(join(box.nginx.runtimeDir, 'nginx.conf'), 'utf8'),
  )?.[1];
  await box.renderAgainAndReload();
  const zoneAfter = /shared:(nixfleet_[0-9a-f]+)/.exec(
    readFileSync(join(box.nginx.runtimeDir, 'nginx.conf'), 'utf8'),
  )?.[1];
  assert.ok(zoneBefore && zoneAfter && zoneBefore !== zoneAfter, `${zoneBefore} -> ${zoneAfter}`);
  const after = await run();
  assert.is(after.resumed, 0, 'a new cache: the kept session is unknown');
  assert.instance(after.error, CertificateRefused, String(after.error));
});

test('the cache size is checked', () => {
  assert.throws(
    () =>
      renderNginxConfig({
        treeDir: '/srv/cp',
        caCert: '/dev/null',
        serverCert: '/s.crt',
        serverKey: '/s.key',
        listen: '8443',
        ackUpstream: '127.0.0.1:8444',
        sessionCacheSize: '10 m',
      }),
    /--tls-session-cache: expected a size such as 128m, or off, got "10 m"/,
  );
});

test.run();
