// Several control plane boxes (issue 10 section 6). The HTTP client sticks to the box that answered
// last (remembered in the state directory), moves a request to the next box on a refused connection,
// a timeout or a 5xx (not on a 429: that is this host's own rate limit), and keeps TLS sessions and
// ETags per box. Through the agent cycle: a lagging box serving an older release than this host has
// seen is refused (the rollback defence) and the cycle carries on with the next box.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HttpClient, Unreachable } from '../../agent/http-client.ts';
import { HttpCache } from '../../agent/http-cache.ts';
import { StateDir } from '../../agent/state-dir.ts';
import { TLS_SESSION_FILE, tlsSessionStore } from '../../agent/tls-session.ts';
import { PREFERRED_BOX_FILE, preferredBoxStore } from '../../agent/control-planes.ts';
import { runAgentOnce } from '../../agent/agent.ts';
import { memoryLogger } from '../../agent/log.ts';
import { startControlPlane } from '../../control-plane/server.ts';
import { requireTool } from '../support/skip.ts';
import { makeTestPki, type TestPki } from '../support/pki.ts';
import { makeLab, labFleet, NEW, OLD } from './lab-fleet.ts';
import { AckJournal } from '../../agent/ack-journal.ts';
import { readPrivateKey } from '../../protocol/keys.ts';
import { mergeAckRecords } from '../../control-plane/ack-merge.ts';
import { ACK_LOG_FILE, parseAckLog } from '../../protocol/ack-log.ts';
import { ackDigest, readAck } from '../../protocol/acks.ts';

interface Box {
  name: string;
  server: Server;
  url: string;
  /** What the box does with the next request (default: answer). */
  mode: 'ok' | '503' | '429' | 'silent';
  seen: { path: string; inm: string | undefined }[];
}

let pki: TestPki | undefined;
let dir = '';
const boxes: Box[] = [];

async function startBox(name: string): Promise<Box> {
  const box = { name, mode: 'ok', seen: [] } as unknown as Box;
  box.server = createServer(
    { key: pki!.server.key, cert: pki!.server.cert, ca: pki!.ca, requestCert: true },
    (req, res) => {
      box.seen.push({ path: req.url ?? '', inm: req.headers['if-none-match'] });
      if (box.mode === 'silent') return;
      if (box.mode === '503' || box.mode === '429') {
        res.statusCode = Number(box.mode);
        res.setHeader('retry-after', '0');
        return res.end();
      }
      const etag = `"${name}-1"`;
      if (req.headers['if-none-match'] === etag) {
        res.statusCode = 304;
        return res.end();
      }
      res.setHeader('etag', etag);
      res.end(JSON.stringify({ from: name }));
    },
  );
  await new Promise<void>((r) => box.server.listen(0, '127.0.0.1', () => r()));
  box.url = `https://127.0.0.1:${(box.server.address() as AddressInfo).port}/`;
  boxes.push(box);
  return box;
}

async function stopBox(box: Box): Promise<void> {
  box.server.closeAllConnections();
  await new Promise((r) => box.server.close(r));
}

test.before(async () => {
  if (!requireTool('openssl', 'test PKI')) return;
  pki = makeTestPki({ hosts: ['web-01'] });
  dir = mkdtempSync(join(tmpdir(), 'nf-failover-'));
});

test.after(async () => {
  for (const b of boxes) await stopBox(b).catch(() => undefined);
  pki?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function clientFor(urls: string[], state: StateDir, failovers: unknown[] = []): HttpClient {
  const h = pki!.hosts['web-01']!;
  return new HttpClient({
    baseUrl: urls,
    ca: pki!.ca,
    cert: h.cert,
    key: h.key,
    cache: new HttpCache(state.path('http-cache')),
    retries: 1,
    backoffBaseMs: 5,
    timeoutMs: 1500,
    tlsSession: tlsSessionStore(state, urls, h.cert),
    preferred: preferredBoxStore(state),
    onFailover: (e) => failovers.push(e),
  });
}

const from = (bytes: Uint8Array) =>
  (JSON.parse(Buffer.from(bytes).toString()) as { from: string }).from;

test('sticks to the box that answered, across runs; a dead, failing or silent box moves the request on', async () => {
  if (!pki) return;
  const a = await startBox('a');
  const b = await startBox('b');
  const state = new StateDir(mkdtempSync(join(dir, 'state-')));
  const urls = [a.url, b.url];
  const run = async (path = 'doc.json') => {
    const failovers: { from: string; to: string; reason: string }[] = [];
    const c = clientFor(urls, state, failovers);
    try {
      return { box: from(await c.get(path, 1024)), failovers, stats: c.stats };
    } finally {
      c.close();
    }
  };
  assert.is((await run()).box, 'a', 'the first URL first');
  for (const [mode, reason] of [
    ['503', /HTTP 503/],
    ['silent', /no complete answer within/],
  ] as const) {
    a.mode = mode;
    const r = await run();
    assert.is(r.box, 'b', `${mode}: answered by the next box`);
    assert.is(r.failovers.length, 1);
    assert.match(r.failovers[0]!.reason, reason);
    assert.is(JSON.parse(readFileSync(state.path(PREFERRED_BOX_FILE), 'utf8')).url, b.url);
    // The next run starts with the box that answered: the failing one is not asked at all.
    const before = a.seen.length;
    a.mode = 'ok';
    assert.equal([(await run()).box, a.seen.length], ['b', before], 'sticks to b');
    // Back to a for the next round: b fails once.
    b.mode = '503';
    assert.is((await run()).box, 'a');
    b.mode = 'ok';
  }

  // A 429 is this host's rate limit on that box: retried there, never moved.
  a.mode = '429';
  const before = b.seen.length;
  const c = clientFor(urls, state);
  try {
    await c.get('doc.json', 1024);
    assert.unreachable('429 every time');
  } catch (e) {
    assert.ok(e instanceof Unreachable, String(e));
    assert.match((e as Error).message, /HTTP 429/);
  } finally {
    c.close();
  }
  assert.is(b.seen.length, before, 'b was not asked on a 429');
  a.mode = 'ok';

  // A dead box (connection refused): moved on at once, and every box down is Unreachable naming both.
  await stopBox(a);
  assert.is((await run()).box, 'b');
  b.mode = '503';
  const all = clientFor(urls, state);
  try {
    await all.get('doc.json', 1024);
    assert.unreachable('no box answers');
  } catch (e) {
    assert.ok(e instanceof Unreachable);
  } finally {
    all.close();
  }
  b.mode = 'ok';
});

test('TLS sessions and ETags are per box: each box resumes its own session and is asked only for its own ETags', async () => {
  if (!pki) return;
  const a = await startBox('a2');
  const b = await startBox('b2');
  const state = new StateDir(mkdtempSync(join(dir, 'state-')));
  const urls = [a.url, b.url];
  const once = async () => {
    const c = clientFor(urls, state);
    try {
      return { box: from(await c.get('doc.json', 1024)), stats: c.stats };
    } finally {
      c.close();
    }
  };
  const first = await once();
  assert.equal([first.box, first.stats.resumed], ['a2', 0]);
  assert.equal([(await once()).stats.resumed, (await once()).stats.notModified], [1, 1]);
  // a2 fails: b2 gets a full handshake, and is NOT sent a2's ETag (its file may differ).
  a.mode = '503';
  const moved = await once();
  assert.equal([moved.box, moved.stats.notModified], ['b2', 0]);
  assert.is(b.seen.at(-1)!.inm, undefined, "a2's ETag is not offered to b2");
  // Both sessions are kept; b2 now resumes and answers 304 to its own ETag.
  const sessions = JSON.parse(readFileSync(state.path(TLS_SESSION_FILE), 'utf8')).sessions;
  assert.equal(Object.keys(sessions).sort(), [...urls].sort());
  const again = await once();
  assert.equal([again.box, again.stats.resumed, again.stats.notModified], ['b2', 1, 1]);
  // And a2 still resumes its own session when the client goes back to it.
  a.mode = 'ok';
  b.mode = '503';
  const back = await once();
  // b2 (tried first: it answered last) resumes its session to say 503; a2 resumes its own.
  assert.equal([back.box, back.stats.connections, back.stats.resumed], ['a2', 2, 2]);
  b.mode = 'ok';
});

test('a lagging box serving an older release is refused (RollbackAttempt) and the cycle carries on with the next box', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const lab = makeLab(['m1']);
  let lagging: Awaited<ReturnType<typeof startControlPlane>> | undefined;
  try {
    lab.publish(labFleet(lab, { prod: { hosts: { m1: OLD }, waves: [{ soakSeconds: 0 }] } }));
    // Box B keeps release 1: a mirror whose sync stopped.
    const lagDir = join(lab.opts.dir, 'lagging-tree');
    cpSync(lab.treeDir, lagDir, { recursive: true });
    lab.publish(labFleet(lab, { prod: { hosts: { m1: NEW }, waves: [{ soakSeconds: 0 }] } }));
    await lab.startControlPlane();
    lagging = await startControlPlane({
      treeDir: lagDir,
      tls: {
        ca: readFileSync(lab.pki.caCert),
        cert: readFileSync(lab.pki.serverCert),
        key: readFileSync(lab.pki.serverKey),
      },
      host: '127.0.0.1',
      port: 0,
      ack: { debounceMs: 10, rateLimit: false },
    });
    const laggingUrl = `https://127.0.0.1:${lagging.port}/`;
    const current = lab.agentConfig('m1');
    // The host has seen release 2 (from box A).
    const seen = await runAgentOnce(current, { log: memoryLogger('m1') });
    assert.is(seen.kind, 'decided', JSON.stringify(seen));

    // Now B first: its tree is refused, the cycle moves on to A in the same run.
    const both = lab.agentConfig('m1', {
      controlPlaneUrl: laggingUrl,
      otherControlPlaneUrls: [current.controlPlaneUrl],
    });
    rmSync(join(both.stateDir, PREFERRED_BOX_FILE), { force: true });
    const log = memoryLogger('m1');
    const out = await runAgentOnce(both, { log });
    assert.is(out.kind, 'decided', JSON.stringify(out));
    const refused = log.records.find((r) => r['event'] === 'control-plane-tree-refused');
    assert.ok(refused, 'the lagging box was refused');
    assert.equal([refused['url'], refused['code']], [laggingUrl, 'RollbackAttempt']);
    const decision = log.records.find((r) => r['event'] === 'decision');
    assert.is(decision?.['release'], 2, 'the decision is on the newest release');
    // The next run starts with A: the lagging box is not tried first again.
    assert.is(
      JSON.parse(readFileSync(join(both.stateDir, PREFERRED_BOX_FILE), 'utf8')).url,
      current.controlPlaneUrl,
    );
    const next = memoryLogger('m1');
    assert.is((await runAgentOnce(both, { log: next })).kind, 'decided');
    assert.not.ok(next.records.some((r) => r['event'] === 'control-plane-tree-refused'));

    // Only the lagging box left: refused, generation kept (never the older release).
    const alone = lab.agentConfig('m1', { controlPlaneUrl: laggingUrl });
    const refusedRun = await runAgentOnce(alone, { log: memoryLogger('m1') });
    assert.equal(
      [refusedRun.kind, refusedRun.kind === 'refused' && refusedRun.code],
      ['refused', 'RollbackAttempt'],
    );
  } finally {
    await lagging?.close();
    await lab.close();
  }
});

test('a box whose timestamp expired is left for a box serving a fresh one; alone, its stale view holds new activations', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const lab = makeLab(['s1']);
  let staleBox: Awaited<ReturnType<typeof startControlPlane>> | undefined;
  try {
    // Signed two hours ago with a one-hour freshness: expired on the box whose sync stopped.
    lab.publish(
      labFleet(lab, { prod: { hosts: { s1: NEW }, waves: [{ soakSeconds: 0 }] } }),
      Date.now() - 2 * 3600_000,
    );
    const staleDir = join(lab.opts.dir, 'stale-tree');
    cpSync(lab.treeDir, staleDir, { recursive: true });
    lab.refresh(); // CI's scheduled re-signing reached box A only
    await lab.startControlPlane();
    staleBox = await startControlPlane({
      treeDir: staleDir,
      tls: {
        ca: readFileSync(lab.pki.caCert),
        cert: readFileSync(lab.pki.serverCert),
        key: readFileSync(lab.pki.serverKey),
      },
      host: '127.0.0.1',
      port: 0,
      ack: { debounceMs: 10, rateLimit: false },
    });
    const staleUrl = `https://127.0.0.1:${staleBox.port}/`;
    const freshUrl = lab.agentConfig('s1').controlPlaneUrl;
    const alone = lab.agentConfig('s1', { controlPlaneUrl: staleUrl });
    const held = await runAgentOnce(alone, { log: memoryLogger('s1') });
    assert.equal(
      [held.kind, held.kind === 'decided' && held.acted],
      ['decided', null],
      `stale alone: nothing activated (${JSON.stringify(held)})`,
    );
    const both = lab.agentConfig('s1', {
      controlPlaneUrl: staleUrl,
      otherControlPlaneUrls: [freshUrl],
    });
    const log = memoryLogger('s1');
    const out = await runAgentOnce(both, { log });
    const left = log.records.find((r) => r['event'] === 'control-plane-tree-stale');
    assert.is(left?.['url'], staleUrl, 'the stale box was left');
    assert.ok(
      log.records.some((r) => r['event'] === 'switching' || r['event'] === 'activated'),
      `the fresh box's release was activated (${JSON.stringify(out)})`,
    );
  } finally {
    await staleBox?.close();
    await lab.close();
  }
});

test("one host's chain across two ack endpoints, each with its own log: a box that missed acks is brought up to date by the agent, and each log alone stays a complete chain", async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const lab = makeLab(['c1']);
  let boxB: Awaited<ReturnType<typeof startControlPlane>> | undefined;
  try {
    lab.publish(
      labFleet(lab, {
        prod: { hosts: { c1: OLD }, waves: [{ soakSeconds: 0 }], heartbeatSeconds: 1 },
      }),
    );
    // Two boxes serving the same tree, each with its own ack endpoint and log.
    const treeB = join(lab.opts.dir, 'box-b');
    cpSync(lab.treeDir, treeB, { recursive: true });
    const boxA = await lab.startControlPlane();
    const startB = () =>
      startControlPlane({
        treeDir: treeB,
        tls: {
          ca: readFileSync(lab.pki.caCert),
          cert: readFileSync(lab.pki.serverCert),
          key: readFileSync(lab.pki.serverKey),
        },
        host: '127.0.0.1',
        port: boxB?.port ?? 0,
        ack: { debounceMs: 10, rateLimit: false },
      });
    boxB = await startB();
    const urlA = `https://127.0.0.1:${boxA.port}/`;
    const urlB = `https://127.0.0.1:${boxB.port}/`;
    const config = lab.agentConfig('c1', { controlPlaneUrl: urlA, otherControlPlaneUrls: [urlB] });
    const signed = () =>
      new AckJournal(
        new StateDir(config.stateDir),
        'lab',
        'c1',
        readPrivateKey(lab.host('c1').keyFile),
      ).all();
    const lastSeq = () => signed().at(-1)?.signed.seq ?? 0;
    const logOf = (dir: string) =>
      parseAckLog(readFileSync(join(dir, '.ack-log', ACK_LOG_FILE))).records;
    const seqs = (dir: string) => logOf(dir).map((r) => readAck(r.canonical, 'log').signed.seq);
    const heartbeatsUntil = async (seq: number) => {
      for (let i = 0; i < 60 && lastSeq() < seq; i++) {
        const out = await runAgentOnce(config, { log: memoryLogger('c1') });
        assert.is(out.kind, 'decided', JSON.stringify(out));
        await new Promise((r) => setTimeout(r, 1050)); // one heartbeat a second
      }
      assert.ok(lastSeq() >= seq);
    };

    // 1. Box A is preferred: A takes seq 1..2, B has none.
    await heartbeatsUntil(2);
    // 2. A dies: B adopts the chain where the host is and is back-filled below it.
    await lab.stopControlPlane();
    await heartbeatsUntil(4);
    // 3. A comes back, B dies: A has a head the host has long passed; the 409 tells the agent where
    //    A is and the agent re-posts what A missed.
    await lab.startControlPlane(boxA.port);
    await boxB.close();
    await heartbeatsUntil(6);
    // 4. B comes back: it too is brought up to date.
    boxB = await startB();
    await lab.stopControlPlane();
    await heartbeatsUntil(7);
    const head = lastSeq();
    const chain = (from: number) => Array.from({ length: head - from + 1 }, (_, i) => from + i);
    // Each log alone holds the whole chain (in acceptance order: back-filled acks come later).
    assert.equal(
      [...seqs(treeB)].sort((x, y) => x - y),
      chain(1),
      "box B's log",
    );
    const inA = [...seqs(lab.treeDir)].sort((x, y) => x - y);
    assert.equal(inA, chain(1).slice(0, inA.length), "box A's log: complete up to where it died");
    assert.ok(inA.length >= 6);
    // And every ack the host signed is in the union, once, as one unbroken chain.
    const merged = mergeAckRecords([logOf(lab.treeDir), logOf(treeB)]);
    assert.equal([merged.forks, merged.chains.map((c) => c.complete)], [[], [true]]);
    assert.equal(
      merged.records.map((r) => r.digest),
      signed().map((a) => ackDigest(a)),
    );
  } finally {
    await boxB?.close();
    await lab.close();
  }
});

test.run();
