import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HttpClient, NotFound, Unreachable } from '../../agent/http-client.ts';
import { HttpCache } from '../../agent/http-cache.ts';
import { StateDir } from '../../agent/state-dir.ts';
import { TLS_SESSION_FILE, tlsSessionStore } from '../../agent/tls-session.ts';
import { TooLarge } from '../../protocol/errors.ts';
import { requireTool } from '../support/skip.ts';
import { makeTestPki, type TestPki } from '../support/pki.ts';

let pki: TestPki | undefined;
let server: Server;
let base = '';
let dir = '';
let flaky = 0;
const seen: {
  url: string;
  inm: string | undefined;
  cn: string | undefined;
  /** Header names as sent, and the client's port (one port = one connection). */
  headers: string[];
  port: number | undefined;
}[] = [];

test.before(async () => {
  if (!requireTool('openssl', 'test PKI')) return;
  pki = makeTestPki({ hosts: ['web-01'] });
  dir = mkdtempSync(join(tmpdir(), 'nf-http-'));
  server = createServer(
    {
      key: pki.server.key,
      cert: pki.server.cert,
      ca: pki.ca,
      requestCert: true,
      rejectUnauthorized: true,
    },
    (req, res) => {
      const cn = (req.socket as TLSSocket).getPeerCertificate().subject?.CN;
      seen.push({
        url: req.url ?? '',
        inm: req.headers['if-none-match'],
        cn: typeof cn === 'string' ? cn : undefined,
        headers: req.rawHeaders.filter((_, i) => i % 2 === 0).map((h) => h.toLowerCase()),
        port: req.socket.remotePort,
      });
      if (req.url === '/doc.json') {
        if (req.headers['if-none-match'] === '"v1"') {
          res.statusCode = 304;
          return res.end();
        }
        res.setHeader('etag', '"v1"');
        return res.end('{"hello":"world"}');
      }
      if (req.url === '/big.json') {
        res.setHeader('content-length', '100000');
        return res.end('x'.repeat(100000));
      }
      if (req.url === '/endless.json') {
        // no content-length: the cap must be enforced while streaming
        const tick = setInterval(() => res.write('y'.repeat(8192)), 1);
        res.on('close', () => clearInterval(tick));
        return;
      }
      if (req.url === '/flaky.json') {
        if (flaky-- > 0) {
          res.statusCode = 503;
          res.setHeader('retry-after', '0');
          return res.end();
        }
        return res.end('{}');
      }
      if (req.url === '/slow.json') return; // never answers
      if (req.url === '/post' && req.method === 'POST') {
        let body = '';
        req.on('data', (d) => (body += d));
        req.on('end', () => {
          res.statusCode = 409;
          res.end(JSON.stringify({ echoed: body.length }));
        });
        return;
      }
      res.statusCode = 404;
      res.end();
    },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});

test.after(async () => {
  if (!pki) return;
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  pki.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

function client(extra: Partial<ConstructorParameters<typeof HttpClient>[0]> = {}): HttpClient {
  const c = pki!.hosts['web-01']!;
  return new HttpClient({
    baseUrl: base,
    ca: pki!.ca,
    cert: c.cert,
    key: c.key,
    cache: new HttpCache(join(dir, 'cache')),
    retries: 2,
    backoffBaseMs: 5,
    timeoutMs: 2000,
    ...extra,
  });
}

async function rejects(p: Promise<unknown>, check: (e: unknown) => boolean, label: string) {
  try {
    await p;
  } catch (e) {
    assert.ok(check(e), `${label}: got ${(e as Error).message}`);
    return;
  }
  assert.unreachable(label);
}

test('mTLS GET, then conditional GET answered 304 from the cache', async () => {
  if (!pki) return;
  const c = client();
  const first = await c.get('doc.json', 1024);
  assert.is(Buffer.from(first).toString(), '{"hello":"world"}');
  const second = await c.get('doc.json', 1024);
  assert.is(Buffer.from(second).toString(), '{"hello":"world"}');
  assert.is(c.stats.notModified, 1);
  const mine = seen.filter((s) => s.url === '/doc.json');
  assert.equal(
    mine.map((s) => s.inm),
    [undefined, '"v1"'],
  );
  assert.equal(
    mine.map((s) => s.cn),
    ['web-01', 'web-01'],
  );
  c.close();
});

test('a conditional GET carries only Host and If-None-Match, and the connection stays open for the next', async () => {
  if (!pki) return;
  const c = client({ cache: new HttpCache(join(dir, 'cache-headers')) });
  await c.get('doc.json', 1024);
  await c.get('doc.json', 1024);
  await c.get('doc.json', 1024);
  c.close();
  const mine = seen.slice(-3);
  // Every byte of a header is paid on every request of every timer run: no Connection (HTTP/1.1 is
  // persistent by default), no User-Agent, no Accept.
  assert.equal(
    mine.map((s) => s.headers.sort()),
    [['host'], ['host', 'if-none-match'], ['host', 'if-none-match']],
  );
  assert.is(new Set(mine.map((s) => s.port)).size, 1, 'all three requests on one connection');
  assert.is(c.stats.connections, 1);
});

test('size caps: announced and streamed', async () => {
  if (!pki) return;
  const c = client();
  await rejects(
    c.get('big.json', 1000),
    (e) => e instanceof TooLarge && /announced 100000/.test((e as Error).message),
    'announced',
  );
  await rejects(
    c.get('endless.json', 50_000),
    (e) => e instanceof TooLarge && /exceeds the limit of 50000/.test((e as Error).message),
    'streamed',
  );
  c.close();
});

test('404 is NotFound without retries; 503 is retried; a timeout ends in Unreachable', async () => {
  if (!pki) return;
  const c = client();
  const before = c.stats.requests;
  await rejects(c.get('missing.json', 1000), (e) => e instanceof NotFound, '404');
  assert.is(c.stats.requests - before, 1);
  flaky = 2;
  assert.is(Buffer.from(await c.get('flaky.json', 100)).toString(), '{}');
  assert.is(c.stats.retries, 2);
  const slow = client({ timeoutMs: 100, retries: 1 });
  const t0 = Date.now();
  await rejects(
    slow.get('slow.json', 100),
    (e) => e instanceof Unreachable && /within 100 ms/.test((e as Error).message),
    'timeout',
  );
  assert.ok(Date.now() - t0 < 2000);
  slow.close();
  c.close();
});

test('until(deadline): no attempt or backoff outlives it; a request after it fails at once', async () => {
  if (!pki) return;
  // Production-sized timeout and retries: unbounded, a silent server would cost 4 x 10 s.
  const c = client({ timeoutMs: 10_000, retries: 3, backoffBaseMs: 2000, random: () => 0.999 });
  const t0 = Date.now();
  await rejects(
    c.until(Date.now() + 400, () => c.get('slow.json', 100)),
    (e) => e instanceof Unreachable,
    'bounded by the deadline',
  );
  assert.ok(Date.now() - t0 < 5000, `waited ${Date.now() - t0} ms, for a 400 ms deadline`);
  const before = c.stats.requests;
  await rejects(
    c.until(Date.now() - 1, () => c.post('post', '{}')),
    (e) => e instanceof Unreachable && /deadline/.test((e as Error).message),
    'past the deadline',
  );
  assert.is(c.stats.requests, before, 'nothing sent after the deadline');
  // Outside the scope the client is unbounded again.
  assert.is(Buffer.from(await c.get('doc.json', 1024)).toString(), '{"hello":"world"}');
  c.close();
});

test('POST returns 4xx answers to the caller', async () => {
  if (!pki) return;
  const c = client();
  const r = await c.post('post', '{"a":1}');
  assert.is(r.status, 409);
  assert.is(Buffer.from(r.body).toString(), '{"echoed":7}');
  c.close();
});

test('refuses a client without a certificate the server trusts (handshake fails -> Unreachable)', async () => {
  if (!pki) return;
  const other = makeTestPki({ hosts: ['web-01'] });
  try {
    const c = new HttpClient({
      baseUrl: base,
      ca: pki.ca,
      cert: other.hosts['web-01']!.cert,
      key: other.hosts['web-01']!.key,
      retries: 0,
      timeoutMs: 2000,
    });
    await rejects(c.get('doc.json', 1000), (e) => e instanceof Unreachable, 'foreign cert');
    c.close();
  } finally {
    other.cleanup();
  }
});

test('speaks TLS 1.3 only: a server limited to TLS 1.2 is unreachable', async () => {
  if (!pki) return;
  const old = createServer({
    key: pki.server.key,
    cert: pki.server.cert,
    ca: pki.ca,
    requestCert: true,
    rejectUnauthorized: true,
    maxVersion: 'TLSv1.2',
  });
  old.on('request', (_req, res) => res.end('{}'));
  await new Promise<void>((r) => old.listen(0, '127.0.0.1', r));
  try {
    const c = client({
      baseUrl: `https://127.0.0.1:${(old.address() as AddressInfo).port}/`,
      retries: 0,
    });
    await rejects(c.get('doc.json', 1000), (e) => e instanceof Unreachable, 'TLS 1.2 server');
    c.close();
  } finally {
    old.close();
  }
});

test('refuses non-https base URLs and traversal paths', async () => {
  if (!pki) return;
  assert.throws(
    () => new HttpClient({ baseUrl: 'http://127.0.0.1:1/', ca: '', cert: '', key: '' }),
    /https/,
  );
  const c = client();
  await rejects(
    c.get('../etc/passwd', 10),
    (e) => /suspicious/.test((e as Error).message),
    'traversal',
  );
  c.close();
});

test('TLS session kept for the next run: it resumes (no certificate exchange) and still authenticates as the host', async () => {
  if (!pki) return;
  const state = new StateDir(mkdtempSync(join(dir, 'state-')));
  const cert = pki.hosts['web-01']!.cert;
  const run = async () => {
    const c = client({ tlsSession: tlsSessionStore(state, base, cert) });
    await c.get('doc.json', 1024);
    await c.get('doc.json', 1024); // keep-alive: the same connection
    c.close();
    return c.stats;
  };
  const first = await run();
  assert.equal([first.connections, first.resumed], [1, 0], 'first run: a full handshake');
  assert.is(statSync(state.path(TLS_SESSION_FILE)).mode & 0o777, 0o600, 'the session is a secret');
  const before = seen.length;
  const second = await run();
  assert.equal([second.connections, second.resumed], [1, 1], 'next run resumes');
  assert.equal(
    seen.slice(before).map((s) => s.cn),
    ['web-01', 'web-01'],
    'the resumed session carries the client certificate',
  );

  // Made for another URL or another certificate, or damaged: a full handshake, never an error.
  const stored = readFileSync(state.path(TLS_SESSION_FILE), 'utf8');
  const other = await (async () => {
    const c = client({
      tlsSession: tlsSessionStore(state, base, pki.hosts['web-01']!.cert + '\n'),
    });
    await c.get('doc.json', 1024);
    c.close();
    return c.stats;
  })();
  assert.equal([other.connections, other.resumed], [1, 0], 'another certificate');
  for (const damaged of [
    '{"not":"a session"}',
    JSON.stringify({
      ...JSON.parse(stored),
      sessions: { [base]: Buffer.from('garbage, not a TLS session').toString('base64') },
    }),
    'x'.repeat(100),
  ]) {
    writeFileSync(state.path(TLS_SESSION_FILE), damaged);
    const s = await run();
    assert.equal([s.connections, s.resumed], [1, 0], `damaged: ${damaged.slice(0, 30)}`);
  }
  // The damaged file was replaced by a good session: the next run resumes again.
  assert.is((await run()).resumed, 1);
});

test.run();
