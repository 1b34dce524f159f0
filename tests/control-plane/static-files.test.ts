// The embedded control plane's file serving keeps no file open after a response, also when the client
// hangs up before the body is sent: a long-running control plane would otherwise hold one descriptor per
// abandoned download until garbage collection happened to close it (Node warns, and will throw).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { serveFile } from '../../control-plane/static-files.ts';
import { tempDir, removeDir } from './tree-fixture.ts';
import { req } from './http.ts';
import { until } from '../support/e2e-processes.ts';

const root = tempDir('static-files');
const BIG = 'big.nar';
// Far more than the socket buffers hold: the server is mid-body when the client hangs up.
writeFileSync(join(root, BIG), Buffer.alloc(16 * 1024 * 1024, 7));
writeFileSync(join(root, 'small.json'), '{"small":true}\n');

// A FileHandle closed by the garbage collector is a leak that happened to be cleaned up: Node says so.
const closedByGc: string[] = [];
process.on('warning', (w) => {
  if (/on garbage collection/.test(w.message)) closedByGc.push(w.message);
});

let server: Server;
let base = '';

test.before(async () => {
  server = createServer((rq, rs) => void serveFile(rq, rs, root, [rq.url!.slice(1)]));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

test.after(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  removeDir(root);
});

/** Descriptors this process holds on `name` under the served root (Linux: /proc/self/fd). */
function openOn(name: string): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === join(root, name)) n++;
    } catch {
      /* closed while we looked */
    }
  }
  return n;
}

/** Waits (generous bound) until no descriptor on `name` is left, closed by the server. */
async function untilClosed(name: string, ms: number): Promise<void> {
  await until(`${name} closed after the response ended`, ms, () => openOn(name) === 0, 20);
  await new Promise((r) => setTimeout(r, 0)); // a warning is emitted on the next tick
  assert.equal(closedByGc, [], `${name}: closed by the garbage collector, not by the server`);
}

test('a complete download closes the file', async () => {
  const r = await req(`${base}/small.json`);
  assert.is(r.status, 200);
  assert.is(r.body, '{"small":true}\n');
  await untilClosed('small.json', 10_000);
});

test('a client hanging up mid-body: the file is closed, not left to garbage collection', async () => {
  await new Promise<void>((resolve, reject) => {
    const r = request(`${base}/${BIG}`, (res) => {
      assert.is(res.statusCode, 200);
      assert.is(Number(res.headers['content-length']), 16 * 1024 * 1024);
      res.once('data', () => {
        assert.is(openOn(BIG), 1, 'the server is streaming the file');
        r.destroy();
        resolve();
      });
    });
    r.on('error', (e) => ((e as NodeJS.ErrnoException).code === 'ECONNRESET' ? null : reject(e)));
    r.end();
  });
  await untilClosed(BIG, 10_000);
});

test.run();
