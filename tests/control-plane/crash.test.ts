// kill -9 of the ack endpoint process (`nixfleet cp serve --acks-only`) under concurrent load, then a
// restart: every ack that got a 2xx is in the log, a torn tail is cut, and each host's chain continues.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAckLog, ACK_LOG_FILE } from '../../control-plane/index.ts';
import { ackDigest, type SignedAck } from '../../protocol/acks.ts';
import {
  fixtureHosts,
  fixtureKeys,
  writeTree,
  tempDir,
  removeDir,
  AckChain,
} from './tree-fixture.ts';

const test = suite('control-plane ack endpoint crash');
const BIN = fileURLToPath(new URL('../../bin/nixfleet.js', import.meta.url));
const keys = fixtureKeys();
const hosts = fixtureHosts(
  Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`h${i}`, { wave: i % 2 }])),
);
const children = new Set<ChildProcess>();
let dir: string;

test.before.each(() => {
  dir = tempDir('crash');
  writeTree(dir, { keys, hosts, version: 1 });
});
test.after.each(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.clear();
  removeDir(dir);
});

interface Endpoint {
  child: ChildProcess;
  port: number;
  stderr: () => string;
}

async function startEndpoint(): Promise<Endpoint> {
  const child = spawn(
    process.execPath,
    [
      BIN,
      'cp',
      'serve',
      '--acks-only',
      '--tree',
      dir,
      '--port',
      '0',
      '--acks-log',
      join(dir, 'log'),
      '--rate-limit',
      'off',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.add(child);
  let out = '';
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`cp serve did not start:\n${err}`)), 15_000);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) {
        clearTimeout(timer);
        resolve((JSON.parse(line) as { port: number }).port);
      }
    });
    child.once('exit', (code) => reject(new Error(`cp serve exited ${code}:\n${err}`)));
  });
  return { child, port, stderr: () => err };
}

function post(port: number, agent: Agent, ack: SignedAck): Promise<number> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify(ack);
    const r = request(
      {
        host: '127.0.0.1',
        port,
        path: '/acks',
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          'x-ssl-client-verify': 'SUCCESS',
          'x-ssl-client-s-dn': `CN=${ack.signed.host},OU=agent,O=test`,
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      },
    );
    r.on('error', reject);
    r.end(body);
  });
}

test('kill -9 under load: no acknowledged ack is lost, the torn tail is cut, chains continue', async () => {
  const ep = await startEndpoint();
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const acknowledged = new Map<string, SignedAck>(); // digest -> ack that got 2xx
  const lastAcked = new Map<string, number>();
  const inFlight = new Map<string, SignedAck>();
  let killed = false;
  const chains = hosts.map((h) => new AckChain(h));
  const load = chains.map(async (chain) => {
    while (!killed) {
      const ack = chain.make();
      inFlight.set(chain.host.name, ack);
      let status: number;
      try {
        status = await post(ep.port, agent, ack);
      } catch {
        return; // connection died with the process: this ack was never acknowledged
      }
      if (status !== 201)
        throw new Error(`unexpected ${status} for ${chain.host.name} seq ${ack.signed.seq}`);
      acknowledged.set(ackDigest(ack), ack);
      lastAcked.set(chain.host.name, ack.signed.seq);
      inFlight.delete(chain.host.name);
      chain.advance(ack);
    }
  });
  while (acknowledged.size < 300) await new Promise((r) => setTimeout(r, 5));
  ep.child.kill('SIGKILL');
  killed = true;
  await Promise.all(load);
  agent.destroy();
  await new Promise((r) => ep.child.once('exit', r));

  const logFile = join(dir, 'log', ACK_LOG_FILE);
  const inLog = new Set(parseAckLog(readFileSync(logFile)).records.map((r) => r.digest));
  for (const d of acknowledged.keys())
    assert.ok(inLog.has(d), `acknowledged ack ${d} missing from the log`);

  // a crash mid-append leaves a partial record: simulate one on top of whatever the kill left
  appendFileSync(logFile, 'sha256:' + '0'.repeat(64) + '\t{"signed":{"host":"h0","se');
  const ep2 = await startEndpoint();
  const agent2 = new Agent({ keepAlive: false });
  try {
    for (let i = 0; i < 100 && !/ack-log-torn-tail-cut/.test(ep2.stderr()); i++)
      await new Promise((r) => setTimeout(r, 20));
    assert.match(ep2.stderr(), /ack-log-torn-tail-cut/);
    const parsed = parseAckLog(readFileSync(logFile));
    assert.is(parsed.tornBytes, 0);
    for (const d of acknowledged.keys()) assert.ok(parsed.records.some((r) => r.digest === d));
    // Each host re-posts its in-flight ack (200 if it was stored before the kill, else 201), then goes on.
    for (const chain of chains) {
      const pending = inFlight.get(chain.host.name);
      if (pending) {
        const s = await post(ep2.port, agent2, pending);
        assert.ok(s === 200 || s === 201, `re-post of in-flight ack: ${s}`);
        chain.advance(pending);
      }
      assert.is(await post(ep2.port, agent2, chain.next()), 201, chain.host.name);
    }
  } finally {
    agent2.destroy();
    ep2.child.kill('SIGTERM');
    await new Promise((r) => ep2.child.once('exit', r));
  }
});

test.run();
