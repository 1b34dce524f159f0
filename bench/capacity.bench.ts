// Control-plane capacity (issue 10, section 3): how many timer-mode agents one nginx box serves at a 60 s
// poll. The real nginx with exactly the config `nixfleet nginx-config` renders (access log off, as in the
// nginx bench), the real ack endpoint behind it (`nixfleet cp serve --acks-only`), real client
// certificates from the fleet PKI code. The load generator is bench/support/agent-load.c (compiled here
// with gcc): several processes, each a stream of agent runs, every run a NEW TLS connection carrying the
// steady-state request sequence of `nixfleet agent --once` with nothing new (docs/architecture.md, "Timer
// mode"), with the agent's headers:
//   before h-steady: timestamp.json, acks/channels/<channel>/wave-0.json, wave-1.json  (all 304)
//   now, a converged host under `halt`: timestamp.json (304), and in every tenth run (the loss check at
//   agent/ack-sync.ts LOSS_CHECK_INTERVAL_MS over the 60 s poll) its own head acks/hosts/<host>.json
// with a full handshake and with TLS resumption, both ways nginx can resume (the shared session cache,
// the default; stateless tickets, `nginx-config --tls-session-cache off`), and with 1 % of runs made by
// hosts in a rollout that also POST an ack (a real, signed, chained ack: verified and fsynced by the
// endpoint). The heartbeat rows are the converged fleet's real mix: a converged host posts a heartbeat
// when plan.heartbeatSeconds have passed (agent/cycle.ts convergedAck), so at the default 60 s every
// run posts one, at 300 s one run in five; both with the old and the new request sequence, played by
// more client processes (each waits for its ack's fsync).
// Floor, same run, same parallelism: `openssl s_time` (a bare handshake + one GET per connection),
// -new and -reuse. Reported: runs/s, hosts at a 60 s poll (= runs/s x 60), ratio to the floor, bytes on
// the wire per run, and the CPU per run of nginx, of the clients and of the ack endpoint (from /proc), so
// the bottleneck is visible; and the projection for nginx alone on every core (cores / nginx CPU per run).
// CAPACITY_BENCH_SESSION_CACHE: the cache's size (default: nginx-config's, DEFAULT_TLS_SESSION_CACHE).
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpus, loadavg } from 'node:os';
import { hasTool } from '../tests/support/skip.ts';
import { makeTestPki, type TestPki } from '../tests/support/pki.ts';
import { startNginx, freePort, makeRuntimeDir, removeRuntimeDir } from '../tests/support/nginx.ts';
import {
  fixtureHosts,
  fixtureKeys,
  writeTree,
  tempDir,
  removeDir,
  AckChain,
} from '../tests/control-plane/tree-fixture.ts';
import { renderNginxConfig, DEFAULT_TLS_SESSION_CACHE } from '../control-plane/nginx-config.ts';
import { ensureRevocationMaps, syncTree } from '../control-plane/sync.ts';
import { ackBundlePath, latestAckPath, TIMESTAMP_PATH } from '../protocol/layout.ts';
import { LOSS_CHECK_INTERVAL_MS } from '../agent/ack-sync.ts';

const BIN = fileURLToPath(new URL('../bin/nixfleet.js', import.meta.url));
const SOURCE = fileURLToPath(new URL('./support/agent-load.c', import.meta.url));
const SECONDS = Number(process.env.CAPACITY_BENCH_SECONDS ?? 8);
/** Load generator processes (and as many s_time processes for the floor). */
const CLIENTS = Number(process.env.CAPACITY_BENCH_CLIENTS ?? 4);
/** One run in POST_EVERY posts an ack: 1 % of hosts are in a rollout. */
const POST_EVERY = 100;
/**
 * Client processes of the heartbeat rows: a posting run waits for its ack's group-commit fsync, so
 * CLIENTS sequential streams would measure their own latency, not the box.
 */
const HB_CLIENTS = Number(process.env.CAPACITY_BENCH_HEARTBEAT_CLIENTS ?? 3 * CLIENTS);
/** The agent's loss check at the 60 s poll: LOSS_CHECK_INTERVAL_MS / 60 s = one run in ten. */
const LOSS_CHECK_EVERY = LOSS_CHECK_INTERVAL_MS / 60_000;
/** Pre-signed heartbeats per posting identity (every heartbeat row takes its part of the chain). */
const PRESIGNED = Number(process.env.CAPACITY_BENCH_PRESIGNED ?? 5000);
/** nginx's shared session cache for the cache rows (~1 KB per host: ample for the bench's hosts). */
const SESSION_CACHE = process.env.CAPACITY_BENCH_SESSION_CACHE ?? DEFAULT_TLS_SESSION_CACHE;
/** Linux's USER_HZ: /proc/<pid>/stat times are in these ticks. */
const TICKS_PER_SECOND = 100;

interface LoadResult {
  runs: number;
  seconds: number;
  resumed: number;
  notModified: number;
  ok200: number;
  bad: number;
  connFail: number;
  posts: number;
  postOk: number;
  postBad: number;
  requests: number;
  p50: number;
  p99: number;
  cpuSeconds: number;
  wireBytes: number;
}

/** utime + stime of a process, in seconds. */
function cpuOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

/** CPU seconds of nginx's master and workers (workers are long-lived: deltas across a row are exact). */
function nginxCpu(master: number): number {
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${master}/task/${master}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    /* gone */
  }
  return [master, ...children].reduce((s, p) => s + cpuOf(p), 0);
}

/** CPU of this process's reaped children (the clients of a row, once they have exited). */
function reapedChildrenCpu(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) / TICKS_PER_SECOND;
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    child.once('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}: ${err.slice(0, 2000)}`)),
    );
  });
}

async function startEndpoint(
  treeDir: string,
  logDir: string,
): Promise<{ child: ChildProcess; port: number }> {
  // Rate limit off: the 1 % of posting hosts are played by CLIENTS identities, each posting far more
  // often than one real host would (a real host posts a few acks per rollout and a heartbeat a minute).
  const child = spawn(
    process.execPath,
    [
      BIN,
      'cp',
      'serve',
      '--acks-only',
      '--tree',
      treeDir,
      '--port',
      '0',
      '--acks-log',
      logDir,
      '--rate-limit',
      'off',
    ],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('\n')) resolve((JSON.parse(out.split('\n')[0]!) as { port: number }).port);
    });
    child.once('exit', (code) => reject(new Error(`cp serve exited ${code}`)));
  });
  return { child, port };
}

/** Posts one ack straight to the endpoint (as nginx would forward it), so the host's latest-ack file exists. */
function postDirect(port: number, host: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const r = httpRequest(
      {
        host: '127.0.0.1',
        port,
        path: '/acks',
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          'x-ssl-client-verify': 'SUCCESS',
          'x-ssl-client-s-dn': `CN=${host},OU=agent`,
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    r.on('error', reject);
    r.end(body);
  });
}

function etagOf(url: string, tls: object): Promise<string> {
  return new Promise((resolve, reject) => {
    const r = httpsRequest(url, { ...tls, agent: false }, (res) => {
      res.resume();
      if (res.statusCode !== 200) reject(new Error(`GET ${url}: ${res.statusCode}`));
      else resolve(String(res.headers['etag']));
    });
    r.on('error', reject);
    r.end();
  });
}

async function until(what: string, check: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Row {
  name: string;
  floor: string | null;
  runs: number;
  seconds: number;
  perSecond: number;
  resumedPct: number | null;
  bad: number;
  posts: string;
  requestsPerRun: number | null;
  p50: number | null;
  p99: number | null;
  bytesPerRun: number | null;
  nginxMsPerRun: number;
  clientMsPerRun: number;
  endpointMs: number;
}

export default async function bench(): Promise<void> {
  for (const tool of ['nginx', 'openssl', 'gcc']) {
    if (!hasTool(tool)) {
      console.log(`skipped: ${tool} is required (nginx-light, openssl, gcc + libssl-dev)`);
      return;
    }
  }
  const work = tempDir('capacity-bench');
  chmodSync(work, 0o755);
  const client = join(work, 'agent-load');
  execFileSync('gcc', ['-O2', '-o', client, SOURCE, '-lssl', '-lcrypto']);
  const identities = Math.max(CLIENTS, HB_CLIENTS);
  const readers = Array.from({ length: identities }, (_, i) => `r${i}`);
  const posters = Array.from({ length: identities }, (_, i) => `p${i}`);
  const pki: TestPki = makeTestPki({ hosts: [...readers, ...posters] });
  const runtime = makeRuntimeDir();
  const rows: Row[] = [];
  let endpoint: ChildProcess | null = null;
  let stopNginx = null as (() => Promise<void>) | null;
  try {
    // The release: readers in "prod" (2 waves), the posting hosts in their own channel "canary", so
    // their acks change canary's bundles and the readers' conditional GETs stay 304.
    const keys = fixtureKeys();
    const hosts = fixtureHosts({
      ...Object.fromEntries(readers.map((h, i) => [h, { channel: 'prod', wave: i % 2 }])),
      ...Object.fromEntries(posters.map((h) => [h, { channel: 'canary', wave: 0 }])),
    });
    const treeDir = join(work, 'cp');
    mkdirSync(treeDir);
    ensureRevocationMaps(treeDir);
    writeTree(join(work, 'ci'), { keys, hosts, version: 1 });
    await syncTree({ from: join(work, 'ci'), treeDir, pinnedRoot: keys.signedRoot });
    const ep = await startEndpoint(treeDir, join(work, 'ack-log'));
    endpoint = ep.child;
    // The box as rendered; sessionCacheSize: the cache's size, or "off" for tickets.
    const startBox = async (sessionCacheSize?: string) => {
      const port = await freePort();
      const config = renderNginxConfig({
        treeDir,
        ...pki.nginxTls(),
        listen: `127.0.0.1:${port}`,
        ackUpstream: `127.0.0.1:${ep.port}`,
        runtimeDir: runtime,
        workerProcesses: 'auto',
        sessionCacheSize,
      }).replace(/access_log [^;]+;/, 'access_log off;');
      const nginx = await startNginx({ config, runtimeDir: runtime, port });
      stopNginx = () => nginx.stop();
      return { nginx, port };
    };
    // Tickets first (the full-handshake rows and the ticket rows), then the default box.
    let box = await startBox('off');

    // Each host's first ack (so its acks/hosts/<host>.json exists), then each poster's pre-signed chain.
    const chains = new Map(hosts.map((h) => [h.name, new AckChain(h)]));
    for (const h of hosts) {
      const status = await postDirect(ep.port, h.name, JSON.stringify(chains.get(h.name)!.next()));
      if (status !== 201) throw new Error(`first ack of ${h.name}: ${status}`);
    }
    await until('latest-ack files', () =>
      hosts.every((h) => existsSync(join(treeDir, latestAckPath(h.name)))),
    );
    // Each poster's chain, pre-signed; a posting row gets the part after what earlier rows stored.
    const presigned = posters.map((p) =>
      Array.from({ length: PRESIGNED }, () => JSON.stringify(chains.get(p)!.next())),
    );
    const stored = posters.map(() => 0);
    const ackFileFor = (i: number) => {
      const f = join(work, `${posters[i]}.${stored[i]}.acks`);
      writeFileSync(f, presigned[i]!.slice(stored[i]).join('\n') + '\n');
      return f;
    };

    const base = `https://127.0.0.1:${box.port}`;
    // [path, ETag] pairs of a reader: timestamp, the two wave bundles, its own head.
    const pathsFor = async (reader: string): Promise<string[][]> => {
      const tls = pki.clientTls(pki.hosts[reader]!);
      const paths = [
        TIMESTAMP_PATH,
        ackBundlePath('prod', 0),
        ackBundlePath('prod', 1),
        latestAckPath(reader),
      ].map((p) => `/${p}`);
      const out: string[][] = [];
      for (const p of paths) out.push([p, await etagOf(base + p, tls)]);
      return out;
    };
    const readerPaths = await Promise.all(readers.map(pathsFor));
    /**
     * The request sequence: "3 GETs" (before h-steady: timestamp + both bundles, every run) or "1 GET"
     * (timestamp; the own head every LOSS_CHECK_EVERY-th run). `headChanged`: a heartbeating host's head
     * changed since its last look (it posted since), so the head GET is a 200, not a 304.
     */
    type Sequence = { kind: '3 GETs' } | { kind: '1 GET'; headChanged: boolean };
    const argsOf = (i: number, seq: Sequence): string[] => {
      const [ts, b0, b1, head] = readerPaths[i]!;
      if (seq.kind === '3 GETs') return ['3', '1', ...ts!, ...b0!, ...b1!];
      const headEtag = seq.headChanged ? '"changed"' : head![1]!;
      return ['1', String(LOSS_CHECK_EVERY), ...ts!, head![0]!, headEtag];
    };

    const measure = async (
      name: string,
      floor: string | null,
      spawnOne: (i: number) => Promise<string>,
      parse: (out: string) => LoadResult,
      processes = CLIENTS,
    ): Promise<void> => {
      const n0 = nginxCpu(box.nginx.pid);
      const e0 = cpuOf(ep.child.pid!);
      const c0 = reapedChildrenCpu();
      const t0 = performance.now();
      const outs = await Promise.all(Array.from({ length: processes }, (_, i) => spawnOne(i)));
      const wall = (performance.now() - t0) / 1000;
      const results = outs.map(parse);
      results.forEach((r, i) => (stored[i]! += Math.max(0, r.postOk)));
      const sum = (k: keyof LoadResult) => results.reduce((s, r) => s + r[k], 0);
      const runs = sum('runs');
      const seconds = Math.max(...results.map((r) => r.seconds || wall));
      rows.push({
        name,
        floor,
        runs,
        seconds,
        perSecond: runs / seconds,
        resumedPct: results[0]!.resumed >= 0 ? (100 * sum('resumed')) / Math.max(1, runs) : null,
        bad: sum('bad') + sum('connFail') + sum('postBad'),
        posts: results[0]!.posts >= 0 ? `${sum('postOk')}/${sum('posts')}` : '',
        requestsPerRun: results[0]!.requests >= 0 ? sum('requests') / Math.max(1, runs) : null,
        p50: results[0]!.p50 >= 0 ? Math.max(...results.map((r) => r.p50)) : null,
        p99: results[0]!.p99 >= 0 ? Math.max(...results.map((r) => r.p99)) : null,
        bytesPerRun: results[0]!.wireBytes >= 0 ? sum('wireBytes') / Math.max(1, runs) : null,
        nginxMsPerRun: ((nginxCpu(box.nginx.pid) - n0) * 1000) / Math.max(1, runs),
        clientMsPerRun: ((reapedChildrenCpu() - c0) * 1000) / Math.max(1, runs),
        endpointMs: (cpuOf(ep.child.pid!) - e0) * 1000,
      });
    };

    const sTime = (mode: 'new' | 'reuse') => (i: number) => {
      const c = pki.hosts[readers[i]!]!;
      return run('openssl', [
        's_time',
        '-connect',
        `127.0.0.1:${box.port}`,
        `-${mode}`,
        '-time',
        String(SECONDS),
        '-cert',
        c.certPath,
        '-key',
        c.keyPath,
        '-CAfile',
        pki.caPath,
        '-www',
        `/${TIMESTAMP_PATH}`,
      ]);
    };
    const parseSTime = (out: string): LoadResult => {
      // "<n> connections in <t> real seconds, <b> bytes read per connection"
      const m = /(\d+) connections in (\d+(?:\.\d+)?) real seconds/.exec(out);
      if (!m) throw new Error(`unexpected s_time output: ${out.slice(0, 500)}`);
      return {
        runs: Number(m[1]),
        seconds: SECONDS,
        resumed: -1,
        notModified: 0,
        ok200: 0,
        bad: 0,
        connFail: 0,
        posts: -1,
        postOk: 0,
        postBad: 0,
        requests: -1,
        p50: -1,
        p99: -1,
        cpuSeconds: 0,
        wireBytes: -1,
      };
    };
    const agents =
      (mode: 'new' | 'reuse', postEvery: number, seq: Sequence = { kind: '3 GETs' }) =>
      (i: number) => {
        const c = pki.hosts[readers[i]!]!;
        const p = pki.hosts[posters[i]!]!;
        return run(client, [
          '127.0.0.1',
          String(box.port),
          String(SECONDS),
          mode,
          pki.caPath,
          c.certPath,
          c.keyPath,
          String(postEvery),
          p.certPath,
          p.keyPath,
          // The chain file only when this row posts (the generator opens it only then).
          postEvery > 0 ? ackFileFor(i) : '-',
          ...argsOf(i, seq),
        ]);
      };
    const parseAgents = (out: string) => JSON.parse(out) as LoadResult;

    await measure('floor: openssl s_time -new (handshake + 1 GET)', null, sTime('new'), parseSTime);
    await measure(
      'agent run, full handshake, 3 conditional GETs',
      'new',
      agents('new', 0),
      parseAgents,
    );
    await measure(
      'agent run, full handshake, 3 GETs, 1 % post an ack',
      'new',
      agents('new', POST_EVERY),
      parseAgents,
    );
    await measure(
      'floor: openssl s_time -reuse (resumed + 1 GET)',
      null,
      sTime('reuse'),
      parseSTime,
    );
    await measure(
      'agent run, resumed (tickets: --tls-session-cache off), 3 conditional GETs',
      'reuse',
      agents('reuse', 0),
      parseAgents,
    );
    await measure(
      'agent run, resumed (tickets), 3 GETs, 1 % post an ack',
      'reuse',
      agents('reuse', POST_EVERY),
      parseAgents,
    );
    // The same box as rendered by default: the session cache (same files, so the same ETags).
    await box.nginx.stop();
    box = await startBox(SESSION_CACHE);
    await measure('floor: openssl s_time -reuse, session cache', null, sTime('reuse'), parseSTime);
    await measure(
      'agent run, resumed (session cache, default), 3 GETs',
      'reuse-cache',
      agents('reuse', 0),
      parseAgents,
    );
    await measure(
      'agent run, resumed (session cache), 3 GETs, 1 % post',
      'reuse-cache',
      agents('reuse', POST_EVERY),
      parseAgents,
    );
    // h-steady: a converged host under `halt` skips the bundles (agent/cycle.ts peerAcksStep).
    const oneGet: Sequence = { kind: '1 GET', headChanged: false };
    const oneGetHb: Sequence = { kind: '1 GET', headChanged: true };
    await measure(
      `**now**: steady run under halt, 1 GET (+ own head every ${LOSS_CHECK_EVERY}th run)`,
      'reuse-cache',
      agents('reuse', 0, oneGet),
      parseAgents,
    );
    // The issue's mix: 1 % of runs post an ack (hosts in a rollout; they would also read their bundles,
    // 2 GETs more per posting run: ~0.02 requests per run, left out).
    await measure(
      `**now**: steady run under halt, 1 GET (+ own head every ${LOSS_CHECK_EVERY}th run), 1 % post`,
      'reuse-cache',
      agents('reuse', POST_EVERY, oneGet),
      parseAgents,
    );
    // The converged fleet's real mix: heartbeats (session cache, resumed), HB_CLIENTS processes.
    await measure(
      'heartbeat 60 s (old default): 3 GETs + a heartbeat POST every run',
      'reuse-cache',
      agents('reuse', 1),
      parseAgents,
      HB_CLIENTS,
    );
    await measure(
      `**now** heartbeat 60 s: 1 GET (+ head every ${LOSS_CHECK_EVERY}th) + a heartbeat POST every run`,
      'reuse-cache',
      agents('reuse', 1, oneGetHb),
      parseAgents,
      HB_CLIENTS,
    );
    await measure(
      'heartbeat 300 s: 3 GETs, a heartbeat POST every 5th run',
      'reuse-cache',
      agents('reuse', 5),
      parseAgents,
      HB_CLIENTS,
    );
    await measure(
      `**now** heartbeat 300 s (the default): 1 GET (+ head every ${LOSS_CHECK_EVERY}th), a heartbeat POST every 5th run`,
      'reuse-cache',
      agents('reuse', 5, oneGetHb),
      parseAgents,
      HB_CLIENTS,
    );
  } finally {
    if (stopNginx) await stopNginx();
    if (endpoint && endpoint.exitCode === null) {
      endpoint.kill('SIGTERM');
      await new Promise((r) => endpoint!.once('exit', r));
    }
    removeRuntimeDir(runtime);
    removeDir(work);
    pki.cleanup();
  }

  const floors = new Map([
    ['new', rows[0]!.perSecond],
    ['reuse', rows[3]!.perSecond],
    ['reuse-cache', rows[6]!.perSecond],
  ]);
  console.log(
    `${CLIENTS} client processes (${HB_CLIENTS} in the heartbeat rows), ${SECONDS} s per row, nginx workers auto (${cpus().length} cores), load average after: ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
  const head = [
    'scenario',
    'runs/s',
    'hosts at 60 s poll',
    'ratio to floor',
    'resumed %',
    'p50 / p99 ms',
    'requests/run',
    'wire bytes/run',
    'nginx CPU ms/run',
    'client CPU ms/run',
    'ack endpoint CPU ms',
    'endpoint ms/run',
    'acks 201/posted',
    'errors',
  ];
  console.log(`| ${head.join(' | ')} |\n|${head.map(() => '---').join('|')}|`);
  for (const r of rows) {
    const ratio = r.floor ? (r.perSecond / floors.get(r.floor)!).toFixed(2) : '1.00';
    console.log(
      `| ${[
        r.name,
        Math.round(r.perSecond),
        Math.round(r.perSecond * 60).toLocaleString('en'),
        ratio,
        r.resumedPct === null ? '' : r.resumedPct.toFixed(0),
        r.p50 === null ? '' : `${r.p50.toFixed(1)} / ${r.p99!.toFixed(1)}`,
        r.requestsPerRun === null ? '' : r.requestsPerRun.toFixed(2),
        r.bytesPerRun === null ? '' : Math.round(r.bytesPerRun),
        r.nginxMsPerRun.toFixed(3),
        r.clientMsPerRun.toFixed(3),
        r.endpointMs.toFixed(0),
        (r.endpointMs / Math.max(1, r.runs)).toFixed(3),
        r.posts,
        r.bad,
      ].join(' | ')} |`,
    );
  }
  console.log(
    `\nnginx alone on all ${cpus().length} cores (CPU-bound projection): ${rows
      .filter((r) => r.floor)
      .map(
        (r) =>
          `${r.name.replace('agent run, ', '')}: ${Math.round(((cpus().length * 1000) / r.nginxMsPerRun) * 60).toLocaleString('en')} hosts`,
      )
      .join('; ')}`,
  );
  // The box runs the ack endpoint too: with acks posted, its CPU per run counts against the same cores.
  console.log(
    `\nnginx + ack endpoint alone on all ${cpus().length} cores (CPU-bound projection, rows that post): ${rows
      .filter((r) => r.floor && r.posts !== '' && r.posts !== '0/0')
      .map((r) => {
        const ms = r.nginxMsPerRun + r.endpointMs / Math.max(1, r.runs);
        return `${r.name.replace('agent run, ', '')}: ${Math.round(((cpus().length * 1000) / ms) * 60).toLocaleString('en')} hosts`;
      })
      .join('; ')}`,
  );
}
