import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { ProbeSession, runProbe } from '../../agent/probes/index.ts';

let server: Server;
let port = 0;
let status = 200;
test.before(async () => {
  server = createServer((req, res) => {
    if (req.url === '/slow') return; // never answers
    res.statusCode = status;
    res.end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  port = (server.address() as AddressInfo).port;
});
test.after(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

test('http probe: status match, mismatch, timeout', async () => {
  status = 200;
  assert.ok(
    (
      await runProbe({
        kind: 'http',
        name: 'h',
        url: `http://127.0.0.1:${port}/`,
        expectStatus: 200,
        timeoutMs: 2000,
      })
    ).ok,
  );
  status = 503;
  const bad = await runProbe({
    kind: 'http',
    name: 'h',
    url: `http://127.0.0.1:${port}/`,
    expectStatus: 200,
    timeoutMs: 2000,
  });
  assert.not.ok(bad.ok);
  assert.match(bad.detail, /503/);
  const t0 = Date.now();
  const slow = await runProbe({
    kind: 'http',
    name: 'h',
    url: `http://127.0.0.1:${port}/slow`,
    expectStatus: 200,
    timeoutMs: 150,
  });
  assert.not.ok(slow.ok);
  assert.match(slow.detail, /150 ms/);
  assert.ok(Date.now() - t0 < 1500);
});

test('tcp probe: open and closed port', async () => {
  assert.ok(
    (await runProbe({ kind: 'tcp', name: 't', host: '127.0.0.1', port, timeoutMs: 1000 })).ok,
  );
  const s = createTcpServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const closedPort = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  assert.not.ok(
    (
      await runProbe({
        kind: 'tcp',
        name: 't',
        host: '127.0.0.1',
        port: closedPort,
        timeoutMs: 1000,
      })
    ).ok,
  );
});

test('command probe: exit code and timeout (the whole process group dies)', async () => {
  assert.ok(
    (
      await runProbe({
        kind: 'command',
        name: 'c',
        argv: ['sh', '-c', 'exit 3'],
        expectExit: 3,
        timeoutMs: 2000,
      })
    ).ok,
  );
  const wrong = await runProbe({
    kind: 'command',
    name: 'c',
    argv: ['sh', '-c', 'echo nope >&2; exit 1'],
    expectExit: 0,
    timeoutMs: 2000,
  });
  assert.not.ok(wrong.ok);
  assert.match(wrong.detail, /exit 1 \(expected 0\): nope/);
  const t0 = Date.now();
  const slow = await runProbe({
    kind: 'command',
    name: 'c',
    argv: ['sleep', '5'],
    expectExit: 0,
    timeoutMs: 200,
  });
  assert.not.ok(slow.ok);
  assert.ok(Date.now() - t0 < 2000);
  assert.not.ok(
    (
      await runProbe({
        kind: 'command',
        name: 'c',
        argv: ['/nonexistent/x'],
        expectExit: 0,
        timeoutMs: 500,
      })
    ).ok,
  );
});

test('consecutive-pass rule: a failing round resets the count', async () => {
  let flip = [true, true, false, true, true, true];
  const session = new ProbeSession([], 3, async () => [
    { name: 'x', ok: flip.shift() ?? true, detail: '' },
  ]);
  const seen: boolean[] = [];
  for (let i = 0; i < 6; i++) seen.push(await session.round());
  assert.equal(seen, [false, false, false, false, false, true]);
  assert.is(session.passes, 3);
  flip = [];
});

test.run();
