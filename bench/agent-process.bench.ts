// `nixfleet agent --once` as the systemd timer runs it: a whole process (the compiled binary), a
// converged host, nothing changed since its last run. Targets (issue 10): <= 150 ms CPU, <= 64 MB RSS,
// <= 3 requests, <= 2 KB on the wire including TLS, every answer a 304.
// CPU and peak RSS come from GNU time; requests and 304s from the run's own `cycle-done` log line;
// wire bytes and TCP connections from a counting TCP proxy between the agent and the control plane
// (every byte of TLS, handshakes included). Measured with TLS session resumption (the ticket the
// previous run kept in the state directory) and without (the ticket deleted before each run), next to
// the floor `node -e 0` in the same run. The agent runs with a code cache directory, as its systemd unit
// sets one (CacheDirectory=; cli/code-cache.ts), and once more without.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, connect, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { runAgentOnce } from '../agent/agent.ts';
import { TLS_SESSION_FILE } from '../agent/tls-session.ts';
import { memoryLogger } from '../agent/log.ts';
import { makeLab, labFleet, NEW } from '../tests/agent/lab-fleet.ts';
import { E2eStack } from '../tests/support/e2e-stack.ts';
import { hasTool } from '../tests/support/skip.ts';
import type { Lab } from '../tests/support/lab.ts';

// NIXFLEET_BIN: measure another build (e.g. the previous commit's) with the same setup.
const BIN =
  process.env.NIXFLEET_BIN ?? fileURLToPath(new URL('../bin/nixfleet.js', import.meta.url));
// NIXFLEET_BIN_BEFORE: a second build measured interleaved with the first (an A/B under one load), with
// its own code cache directory.
const BIN_BEFORE = process.env.NIXFLEET_BIN_BEFORE;
const GNU_TIME = '/usr/bin/time';
const RUNS = Number(process.env['BENCH_RUNS'] ?? 15);

interface Run {
  cpuMs: number;
  rssMb: number;
  requests: number;
  notModified: number;
  wireBytes: number;
  connections: number;
  decision: string;
}

/** A TCP relay that counts every byte in both directions and every connection (BENCH_VERBOSE: each TLS flight). */
async function countingProxy(targetPort: number): Promise<{
  server: Server;
  port: number;
  bytes: () => number;
  connections: () => number;
  reset: () => void;
}> {
  let bytes = 0;
  let connections = 0;
  const server = createServer((down) => {
    connections++;
    const up = connect(targetPort, '127.0.0.1');
    const count = (dir: string) => (d: Buffer) => {
      bytes += d.length;
      if (process.env['BENCH_VERBOSE']) console.log(dir, d.length);
    };
    down.on('data', count('agent >'));
    up.on('data', count('agent <'));
    down.pipe(up).pipe(down);
    const end = () => (down.destroy(), up.destroy());
    down.on('error', end).on('close', end);
    up.on('error', end).on('close', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    server,
    port,
    bytes: () => bytes,
    connections: () => connections,
    reset: () => ((bytes = 0), (connections = 0)),
  };
}

function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
}

/**
 * One whole process under GNU time: `%U %S %M` = user s, system s, peak RSS KB. Asynchronous: the
 * control plane and the proxy run in this process and must keep answering meanwhile.
 */
async function timed(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ cpuMs: number; rssMb: number; stdout: string }> {
  const child = spawn(GNU_TIME, ['-f', '%U %S %M', process.execPath, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const status = await new Promise<number | null>((r) => child.on('close', r));
  if (status !== 0)
    throw new Error(
      `node ${args.join(' ')} exited with ${status}: ${stderr}\n${stdout.slice(-2000)}`,
    );
  const [user, sys, rssKb] = stderr.trim().split('\n').at(-1)!.split(' ').map(Number) as [
    number,
    number,
    number,
  ];
  return { cpuMs: (user + sys) * 1000, rssMb: rssKb / 1024, stdout };
}

async function repeat<T>(n: number, f: () => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(await f());
  return out;
}

interface Setup {
  name: string;
  /** Port of the TLS endpoint agents talk to (the proxy relays to it). */
  port: number;
  /** Writes h1's agent config pointing at `url` and returns its path. */
  configFile(url: string): string;
  stateDir: string;
}

interface Runs {
  floor: Run[];
  resumed: Run[];
  full: Run[];
  noCache: Run[];
  before: Run[];
}

/**
 * Converges four hosts (two waves, so a steady run also reads its peers' bundle), then measures h1.
 * With a code cache directory, as the systemd unit runs it (CacheDirectory=, cli/code-cache.ts), and
 * once without ("no code cache": the ES-module build, as a run without the variable).
 */
async function measure(setup: Setup): Promise<Runs> {
  const proxy = await countingProxy(setup.port);
  const cacheDir = mkdtempSync(join(tmpdir(), 'nf-bench-codecache-'));
  // The build measured as "before" keeps its own code cache (as its unit would), beside this one's.
  const beforeCacheDir = mkdtempSync(join(tmpdir(), 'nf-bench-codecache-before-'));
  const noCacheEnv = { ...process.env };
  delete noCacheEnv['NIXFLEET_CODE_CACHE'];
  delete noCacheEnv['CACHE_DIRECTORY'];
  try {
    const configFile = setup.configFile(`https://127.0.0.1:${proxy.port}/`);
    const run = async (resume: boolean, bin = BIN, codeCache = true): Promise<Run> => {
      if (!resume) rmSync(`${setup.stateDir}/${TLS_SESSION_FILE}`, { force: true });
      proxy.reset();
      const dir = bin === BIN ? cacheDir : beforeCacheDir;
      const env = codeCache ? { ...noCacheEnv, NIXFLEET_CODE_CACHE: dir } : noCacheEnv;
      const t = await timed([bin, 'agent', '--config', configFile, '--once'], env);
      const lines = t.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const done = lines.find((l) => l['event'] === 'cycle-done') as
        { requests: number; notModified: number } | undefined;
      const decision = lines.find((l) => l['event'] === 'decision');
      if (!done) throw new Error(`no cycle-done line in: ${t.stdout.slice(0, 500)}`);
      return {
        cpuMs: t.cpuMs,
        rssMb: t.rssMb,
        requests: done.requests,
        notModified: done.notModified,
        wireBytes: proxy.bytes(),
        connections: proxy.connections(),
        decision: String(decision?.['decision']),
      };
    };
    // Settle the ETag cache, the session file and the code caches.
    await repeat(3, () => run(true));
    if (BIN_BEFORE) await run(true, BIN_BEFORE);
    // Interleaved, so the machine's load (shared by other work) weighs on all three alike.
    const floor: Run[] = [];
    const resumed: Run[] = [];
    const full: Run[] = [];
    const noCache: Run[] = [];
    const before: Run[] = [];
    for (let i = 0; i < RUNS; i++) {
      if (BIN_BEFORE) before.push(await run(true, BIN_BEFORE));
      const f = await timed(['-e', '0']);
      floor.push({
        ...f,
        requests: NaN,
        notModified: NaN,
        wireBytes: NaN,
        connections: NaN,
        decision: '',
      });
      resumed.push(await run(true));
      noCache.push(await run(true, BIN, false));
      full.push(await run(false));
    }
    return { floor, resumed, full, noCache, before };
  } finally {
    proxy.server.close();
    rmSync(cacheDir, { recursive: true, force: true });
    rmSync(beforeCacheDir, { recursive: true, force: true });
  }
}

function print(name: string, r: Runs): void {
  console.log(
    `\n${name}: nixfleet agent --once, whole process, converged host, nothing changed (median of ${RUNS} runs, interleaved)\n`,
  );
  console.log(
    '| run                           | CPU ms | RSS MB | requests | 304s | wire bytes | TCP conns |',
  );
  console.log(
    '|-------------------------------|--------|--------|----------|------|------------|-----------|',
  );
  const row = (label: string, rs: Run[]) => {
    const m = (f: (r: Run) => number) =>
      Number.isNaN(f(rs[0]!)) ? '-' : String(Math.round(median(rs.map(f))));
    console.log(
      `| ${label.padEnd(29)} | ${m((x) => x.cpuMs).padStart(6)} | ${m((x) => x.rssMb).padStart(6)} | ${m((x) => x.requests).padStart(8)} | ${m((x) => x.notModified).padStart(4)} | ${m((x) => x.wireBytes).padStart(10)} | ${m((x) => x.connections).padStart(9)} |`,
    );
  };
  row('node -e 0 (floor)', r.floor);
  if (r.before.length) row('BIN_BEFORE, resumed, cached', r.before);
  row('agent --once, TLS resumed', r.resumed);
  row('  same, no code cache', r.noCache);
  row('agent --once, full handshake', r.full);
  const decisions = new Set([...r.resumed, ...r.full].map((x) => x.decision));
  console.log(
    `\ndecisions: ${[...decisions].join(', ')}; targets (issue 10): <= 150 ms CPU, <= 64 MB RSS, <= 3 requests, all 304, <= 2048 bytes`,
  );
}

const HOSTS = ['h1', 'h2', 'h3', 'h4'];
const fleetOf = (lab: Lab) =>
  labFleet(lab, {
    prod: {
      hosts: Object.fromEntries(HOSTS.map((h) => [h, NEW])),
      waves: [{ count: 1, soakSeconds: 0 }, { soakSeconds: 0 }],
      heartbeatSeconds: 3600,
    },
  });

/**
 * The production shape: real nginx (the rendered config) and the ack endpoint as its own process.
 * sessionCache: `nginx-config --tls-session-cache` ("off": stateless tickets); default: the renderer's
 * default, the shared session cache.
 */
async function viaNginx(sessionCache?: string): Promise<void> {
  const stack = await E2eStack.create({
    hosts: HOSTS,
    ...(sessionCache ? { nginxSessionCache: sessionCache } : {}),
  });
  try {
    stack.publish(fleetOf(stack.lab));
    await stack.startControlPlane();
    for (let round = 0; round < 40; round++) {
      const outs = await Promise.all(HOSTS.map((h) => stack.runAgentOnce(h)));
      if (
        outs.every(
          (o) => o.outcome?.['kind'] === 'decided' && o.outcome['decision'] === 'converged',
        )
      )
        break;
    }
    await new Promise((r) => setTimeout(r, 1500)); // the endpoint publishes the last acks
    const h1 = stack.lab.host('h1');
    print(
      sessionCache ? `nginx --tls-session-cache ${sessionCache}` : 'nginx (default: session cache)',
      await measure({
        name: 'nginx',
        port: stack.nginxPort,
        stateDir: h1.stateDir,
        configFile: (url) => stack.agentConfigFile('h1', { controlPlaneUrl: url }),
      }),
    );
  } finally {
    await stack.close();
  }
}

/** The zero-setup default: the embedded Node control plane (in this process). */
async function viaEmbedded(): Promise<void> {
  const lab = makeLab(HOSTS);
  try {
    lab.publish(fleetOf(lab));
    const cp = await lab.startControlPlane();
    for (let round = 0; round < 40; round++) {
      const outs = await Promise.all(
        HOSTS.map((h) => runAgentOnce(lab.agentConfig(h), { log: memoryLogger(h) })),
      );
      if (outs.every((o) => o.kind === 'decided' && o.decision === 'converged')) break;
    }
    await new Promise((r) => setTimeout(r, 1500));
    const h1 = lab.host('h1');
    print(
      'embedded control plane',
      await measure({
        name: 'embedded',
        port: cp.port,
        stateDir: h1.stateDir,
        configFile: (url) => (lab.agentConfig('h1', { controlPlaneUrl: url }), h1.configFile),
      }),
    );
  } finally {
    await lab.close();
  }
}

export default async function bench(): Promise<void> {
  if (!existsSync(GNU_TIME))
    return void console.log(`skipped: ${GNU_TIME} (Debian package "time") is not installed`);
  if (!existsSync(fileURLToPath(new URL('../dist/main.js', import.meta.url))))
    return void console.log('skipped: dist/main.js is missing (npm run build)');
  console.log(
    'CPU and peak RSS: GNU time; requests and 304s: the run\'s cycle-done line; wire bytes (all TLS, handshakes included) and TCP connections: a counting TCP proxy in front of the control plane. "full handshake": the kept TLS session deleted before the run.',
  );
  if (hasTool('nginx')) {
    await viaNginx();
    await viaNginx('off');
  } else console.log('\nnginx: skipped (not installed)');
  await viaEmbedded();
}
