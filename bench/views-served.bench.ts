// `nixfleet status` / `nixfleet trace` answered by a view server (`nixfleet views serve`, cli/view-server.ts)
// side by side with the same views looked at by a one-shot process, on the operator bench's fixture
// (bench/operator.bench.ts: 10,000 hosts, 3 channels x 4 waves, a realistic ack history), with the floor
// (`node -e 0`). A served view's cost is the client process's (GNU time) plus the server's CPU during the
// request (/proc/<pid>/stat, every thread); the wall time is the client's, what the operator waits.
// Two tables: the frozen tree (a second look finds every file unchanged) and "a minute later" as in the
// operator bench: the server (started anew each round, so it knows only what it saw) has looked at the
// frozen tree, then the fleet advances one minute of its schedule (1,861 of 10,000 hosts post), the
// files get older than the racy margin, and each view is asked: first as the server meets it with no
// refresh since the minute (every new ack verified during the request: the worst case), then once more
// (what a request meets after the server's refresh replayed the view). The first of these is the burst
// worst case (the whole minute lands at once, just before the request); a third table, "live", is what
// an operator meets in a live fleet: the minute's files written evenly over 60 s (the fleet's rate,
// ~31 acks/s) to a server with its default --refresh while views are asked every 2 s, and right after
// the last write, with the code before (VIEWS_BENCH_BEFORE: a built checkout's bin/nixfleet.js) and
// this one in turn.
// OPERATOR_BENCH_DIR=DIR reuses the operator bench's kept fixture (DIR/<hosts>); OPERATOR_BENCH_HOSTS
// (default 10000); OPERATOR_BENCH_RUNS (default 3); VIEWS_BENCH_ROUNDS (default frozen,minute,live);
// VIEWS_BENCH_LIVE_SECONDS (default 60); VIEWS_BENCH_SERVER_NODE_ARGS (the servers' Node options, e.g.
// --cpu-prof); VIEWS_BENCH_SERVER_LOGS=DIR (each server's log written there when it stops).
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { SignedRoot } from '../protocol/index.ts';
import { RACY_MS } from '../read-side/ack-file-memo.ts';
import { liveMinute, restoreLiveMinute } from './support/live-minute.ts';
import {
  keptFixture,
  loadAverage,
  median,
  once,
  type Cost,
  type OperatorFixture,
} from './operator.bench.ts';

const BIN = fileURLToPath(new URL('../bin/nixfleet.js', import.meta.url));
const RUNS = Number(process.env.OPERATOR_BENCH_RUNS ?? 3);
/** Which tables (VIEWS_BENCH_ROUNDS, comma-separated): frozen, minute (a minute later), live. */
const ROUNDS = (process.env.VIEWS_BENCH_ROUNDS ?? 'frozen,minute,live').split(',');
/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux). */
const USER_HZ = 100;

/** A view: its label and its arguments after the command's common ones. */
type View = [label: string, args: (f: OperatorFixture) => string[]];
const VIEWS: View[] = [
  ['status', () => ['status']],
  ['status --host H', (f) => ['status', '--host', f.sampleHost]],
  ['status --host H1 (first channel)', (f) => ['status', '--host', f.firstChannelHost]],
  ['trace --host H', (f) => ['trace', '--host', f.sampleHost]],
  ['trace --host H1 (first channel)', (f) => ['trace', '--host', f.firstChannelHost]],
];

/**
 * Node options for the servers only (VIEWS_BENCH_SERVER_NODE_ARGS, space-separated), e.g.
 * `--cpu-prof --cpu-prof-dir=DIR` to see where a served look's time goes.
 */
const SERVER_NODE_ARGS = (process.env.VIEWS_BENCH_SERVER_NODE_ARGS ?? '')
  .split(' ')
  .filter(Boolean);

/** Where each server's log is written when it stops (VIEWS_BENCH_SERVER_LOGS: a directory). */
const SERVER_LOGS = process.env.VIEWS_BENCH_SERVER_LOGS;

/** A running `nixfleet views serve`. */
class ViewServer {
  private constructor(
    private readonly proc: ChildProcess,
    /** Its log so far. */
    private readonly log: { text: string },
  ) {}

  /** `refresh`: its --refresh (default: none given, the server's own default); `bin`: whose server. */
  static async start(
    tree: string,
    cacheDir: string,
    refresh: string | null = '0',
    bin = BIN,
  ): Promise<ViewServer> {
    const proc = spawn(
      process.execPath,
      [
        ...SERVER_NODE_ARGS,
        bin,
        ...['views', 'serve', '--tree', tree, '--cache-dir', cacheDir],
        ...(refresh === null ? [] : ['--refresh', refresh]),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const log = { text: '' };
    await new Promise<void>((ready, fail) => {
      proc.stderr!.setEncoding('utf8').on('data', (c: string) => {
        log.text += c;
        if (log.text.includes('serving ')) ready();
      });
      proc.on('exit', (code) => fail(new Error(`views serve exited with ${code}: ${log.text}`)));
    });
    return new ViewServer(proc, log);
  }

  /** How many log lines so far match `re`. */
  logged(re: RegExp): number {
    return this.log.text.split('\n').filter((l) => re.test(l)).length;
  }

  /** CPU time so far (ms; user + system, every thread). */
  cpuMs(): number {
    const fields = readFileSync(`/proc/${this.proc.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    // After the command name: state is field 3, utime 14 and stime 15 (proc(5)), here 0-based from 3.
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / USER_HZ;
  }

  /** Peak resident set so far (MB). */
  peakRssMb(): number {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.proc.pid}/status`, 'utf8'));
    return Number(m![1]) / 1024;
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode === null) {
      const gone = new Promise((done) => this.proc.once('exit', done));
      this.proc.kill('SIGTERM');
      await gone;
    }
    if (SERVER_LOGS !== undefined)
      writeFileSync(join(SERVER_LOGS, `server-${this.proc.pid}.log`), this.log.text);
  }
}

/** One served look: the client's cost plus the server's CPU meanwhile. */
function servedOnce(server: ViewServer, args: string[]): Cost {
  const before = server.cpuMs();
  const client = once(args, [0]);
  return { ...client, cpuMs: client.cpuMs + server.cpuMs() - before };
}

type Samples = Map<string, Cost[]>;
const add = (samples: Samples, label: string, cost: Cost) =>
  samples.set(label, [...(samples.get(label) ?? []), cost]);

function printTable(samples: Samples): void {
  const floor = median(samples.get('node -e 0 (floor)')!.map((c) => c.cpuMs));
  console.log('| command | wall ms | CPU ms | peak RSS MB (client) | CPU / floor |');
  console.log('|---|---:|---:|---:|---:|');
  for (const [label, costs] of samples) {
    const cpu = median(costs.map((c) => c.cpuMs));
    console.log(
      `| ${label} | ${median(costs.map((c) => c.wallMs)).toFixed(0)} | ${cpu.toFixed(0)} | ${median(costs.map((c) => c.rssMb)).toFixed(0)} | ${(cpu / floor).toFixed(1)}x |`,
    );
  }
}

export default async function viewsServedBench(): Promise<void> {
  const keptIn = process.env.OPERATOR_BENCH_DIR;
  for (const hosts of (process.env.OPERATOR_BENCH_HOSTS ?? '10000').split(',').map(Number)) {
    const dir =
      keptIn === undefined
        ? mkdtempSync(join(tmpdir(), 'nixfleet-views-served-bench-'))
        : join(keptIn, String(hosts));
    try {
      const f = await keptFixture(dir, hosts, keptIn !== undefined);
      restoreLiveMinute(dir, f.tree);
      const caches = { oneShot: join(dir, 'cache-one-shot'), served: join(dir, 'cache-served') };
      // Each side's cache starts as the operator bench's warm one when the fixture has it (at 100,000
      // hosts a cold look verifies every ack: minutes); the looks below fill in what it lacks.
      for (const c of Object.values(caches)) {
        rmSync(c, { recursive: true, force: true });
        if (existsSync(join(dir, 'cache'))) cpSync(join(dir, 'cache'), c, { recursive: true });
      }
      const viewArgs = (view: View, cacheDir: string, now: string) => [
        BIN,
        ...view[1](f),
        '--tree',
        f.tree,
        '--root',
        f.rootFile,
        '--now',
        now,
        '--cache-dir',
        cacheDir,
      ];
      if (ROUNDS.includes('frozen')) await frozen(f, caches, viewArgs);
      if (ROUNDS.includes('minute')) await aMinuteLater(dir, f, caches, viewArgs);
      if (ROUNDS.includes('live')) await liveMinuteServed(dir, f, caches.served, viewArgs);
    } finally {
      if (keptIn === undefined) rmSync(dir, { recursive: true, force: true });
    }
  }
}

type Caches = { oneShot: string; served: string };
type ViewArgs = (view: View, cacheDir: string, now: string) => string[];

/** The frozen tree: each view looked at once by each side (caches filled), then RUNS times, interleaved. */
async function frozen(f: OperatorFixture, caches: Caches, viewArgs: ViewArgs): Promise<void> {
  const server = await ViewServer.start(f.tree, caches.served);
  const samples: Samples = new Map();
  try {
    for (const view of VIEWS) {
      once(viewArgs(view, caches.oneShot, f.now), [0]);
      servedOnce(server, viewArgs(view, caches.served, f.now));
    }
    for (let run = 0; run < RUNS; run++) {
      add(samples, 'node -e 0 (floor)', once(['-e', '0'], [0]));
      for (const view of VIEWS) {
        add(samples, `one-shot: ${view[0]}`, once(viewArgs(view, caches.oneShot, f.now), [0]));
        add(
          samples,
          `served: ${view[0]}`,
          servedOnce(server, viewArgs(view, caches.served, f.now)),
        );
      }
    }
    console.log(
      `\n${f.hosts} hosts, frozen tree (${f.now}), warm caches; median of ${RUNS} interleaved runs; the server's peak RSS ${server.peakRssMb().toFixed(0)} MB; load average at the end ${loadAverage()}`,
    );
    printTable(samples);
  } finally {
    await server.stop();
  }
}

/**
 * A minute later: per round, the tree and both caches put back as the frozen looks left them, a new
 * server that has looked at the frozen tree, the minute applied and aged past the racy margin, then each
 * view asked by each side, and once more of the server (after it has seen the minute).
 */
async function aMinuteLater(
  dir: string,
  f: OperatorFixture,
  caches: Caches,
  viewArgs: ViewArgs,
): Promise<void> {
  const root = JSON.parse(readFileSync(f.rootFile, 'utf8')) as SignedRoot;
  const minute = await liveMinute(dir, f.tree, root, f.now);
  const saved = Object.values(caches);
  for (const c of saved) cpSync(c, `${c}.look`, { recursive: true });
  const putBack = () => {
    for (const c of saved) {
      rmSync(c, { recursive: true, force: true });
      cpSync(`${c}.look`, c, { recursive: true });
    }
  };
  const samples: Samples = new Map();
  let peakRss = 0;
  try {
    for (let run = 0; run < RUNS; run++) {
      minute.restore();
      putBack();
      const server = await ViewServer.start(f.tree, caches.served);
      try {
        for (const view of VIEWS) servedOnce(server, viewArgs(view, caches.served, f.now));
        minute.apply();
        await sleep(RACY_MS + 100);
        add(samples, 'node -e 0 (floor)', once(['-e', '0'], [0]));
        for (const view of VIEWS) {
          const args = (c: string) => viewArgs(view, c, minute.now);
          add(samples, `one-shot: ${view[0]}`, once(args(caches.oneShot), [0]));
          add(
            samples,
            `served, no refresh yet: ${view[0]}`,
            servedOnce(server, args(caches.served)),
          );
          add(
            samples,
            `served, after a refresh: ${view[0]}`,
            servedOnce(server, args(caches.served)),
          );
        }
        peakRss = Math.max(peakRss, server.peakRssMb());
      } finally {
        await server.stop();
      }
    }
  } finally {
    minute.restore();
    putBack();
    for (const c of saved) rmSync(`${c}.look`, { recursive: true, force: true });
  }
  console.log(
    `\nA minute later (${minute.now}): ${minute.acks.size} of ${f.hosts} hosts post; median of ${RUNS} rounds, each a new server that looked at the frozen tree; the server's peak RSS ${peakRss.toFixed(0)} MB; load average at the end ${loadAverage()}`,
  );
  printTable(samples);
}

/** The views asked during the live minute: issue 10's targets. */
const LIVE_VIEWS = VIEWS.filter(([label]) =>
  ['status', 'status --host H', 'trace --host H'].includes(label),
);
/** Over how long the minute's files are written (VIEWS_BENCH_LIVE_SECONDS; default the minute's 60 s). */
const LIVE_SECONDS = Number(process.env.VIEWS_BENCH_LIVE_SECONDS ?? 60);
/** Writes per second during the stretch (each a share of the minute's hosts: log records, then files). */
const LIVE_WRITES_PER_SECOND = 4;
/** How often a view is asked during the stretch (the live views in turn). */
const ASK_EVERY_MS = 2000;
/** The code before (VIEWS_BENCH_BEFORE: a built checkout's bin/nixfleet.js): its rounds interleaved. */
const BEFORE = process.env.VIEWS_BENCH_BEFORE;

/**
 * The live minute as an operator meets it: per round and per side (the code before, when given, and
 * this one, interleaved), the tree and cache put back, a new server with its default --refresh that has
 * looked at the frozen tree, then the minute's 1,861 files written evenly over LIVE_SECONDS (the
 * fleet's rate) while a view is asked every ASK_EVERY_MS, and each view once more right after the last
 * write. Besides the requests: the server's CPU over the stretch that no request asked for (intake,
 * replays) and how many replays ran.
 */
async function liveMinuteServed(
  dir: string,
  f: OperatorFixture,
  cacheDir: string,
  viewArgs: ViewArgs,
): Promise<void> {
  const root = JSON.parse(readFileSync(f.rootFile, 'utf8')) as SignedRoot;
  const minute = await liveMinute(dir, f.tree, root, f.now);
  // The cache each round starts from: warm for the frozen tree (as the frozen table leaves it).
  for (const view of LIVE_VIEWS) once(viewArgs(view, cacheDir, f.now), [0]);
  const sides: [string, string][] = [
    ...(BEFORE ? [['before', BEFORE] as [string, string]] : []),
    ['after', BIN],
  ];
  cpSync(cacheDir, `${cacheDir}.live`, { recursive: true });
  const putBack = () => {
    rmSync(cacheDir, { recursive: true, force: true });
    cpSync(`${cacheDir}.live`, cacheDir, { recursive: true });
  };
  const samples: Samples = new Map();
  const background = new Map<string, { cpuMs: number[]; replays: number[] }>();
  try {
    for (let run = 0; run < RUNS; run++) {
      add(samples, 'node -e 0 (floor)', once(['-e', '0'], [0]));
      for (const [side, bin] of sides) {
        minute.restore();
        putBack();
        const b = background.get(side) ?? { cpuMs: [], replays: [] };
        background.set(side, b);
        const r = await liveRound(f, minute, cacheDir, bin, (view, now) => [
          bin,
          ...viewArgs(view, cacheDir, now).slice(1),
        ]);
        for (const [label, cost] of r.asked) add(samples, `${side}: ${label}`, cost);
        b.cpuMs.push(r.backgroundCpuMs);
        b.replays.push(r.replays);
      }
    }
  } finally {
    minute.restore();
    putBack();
    rmSync(`${cacheDir}.live`, { recursive: true, force: true });
  }
  console.log(
    `\nLive: the minute after ${f.now} (${minute.acks.size} of ${f.hosts} hosts post) written over ${LIVE_SECONDS} s, a view asked every ${ASK_EVERY_MS / 1000} s, each server with its default --refresh; ${RUNS} rounds per side, interleaved; load average at the end ${loadAverage()}`,
  );
  for (const [side, b] of background)
    console.log(
      `${side}: the server's CPU over the stretch besides the requests (intake, replays): median ${median(b.cpuMs).toFixed(0)} ms; replays per round: ${b.replays.join(', ')}`,
    );
  printLiveTable(samples);
}

type LiveArgs = (view: View, now: string) => string[];

/** One side's round of liveMinuteServed: what each request cost, and what the server did besides. */
async function liveRound(
  f: OperatorFixture,
  minute: Awaited<ReturnType<typeof liveMinute>>,
  cacheDir: string,
  bin: string,
  args: LiveArgs,
): Promise<{ asked: [string, Cost][]; backgroundCpuMs: number; replays: number }> {
  const server = await ViewServer.start(f.tree, cacheDir, null, bin);
  const asked: [string, Cost][] = [];
  let requestsCpuMs = 0;
  const ask = (label: string, view: View) => {
    const serverBefore = server.cpuMs();
    const cost = servedOnce(server, args(view, minute.now));
    requestsCpuMs += server.cpuMs() - serverBefore;
    asked.push([label, cost]);
  };
  try {
    for (const view of LIVE_VIEWS) servedOnce(server, args(view, f.now));
    const replaysBefore = server.logged(/refreshed /);
    const cpuBefore = server.cpuMs();
    requestsCpuMs = 0;
    const steps = minute.applyInSteps(LIVE_SECONDS * LIVE_WRITES_PER_SECOND);
    const start = performance.now();
    let written = 0;
    let asks = 0;
    while (written < steps.length) {
      const elapsed = performance.now() - start;
      const due = Math.min(steps.length, Math.floor((elapsed * LIVE_WRITES_PER_SECOND) / 1000) + 1);
      while (written < due) steps[written++]!();
      if (elapsed < (asks + 1) * ASK_EVERY_MS) {
        await sleep(10);
        continue;
      }
      const view = LIVE_VIEWS[asks++ % LIVE_VIEWS.length]!;
      ask(`during: ${view[0]}`, view);
    }
    const backgroundCpuMs = server.cpuMs() - cpuBefore - requestsCpuMs;
    const replays = server.logged(/refreshed /) - replaysBefore;
    for (const view of LIVE_VIEWS) ask(`right after: ${view[0]}`, view);
    return { asked, backgroundCpuMs, replays };
  } finally {
    await server.stop();
  }
}

/** The live rows: median and max wall (what the operator waits), median CPU and its ratio to the floor. */
function printLiveTable(samples: Samples): void {
  const floor = median(samples.get('node -e 0 (floor)')!.map((c) => c.cpuMs));
  console.log('| command | asks | wall ms (median) | wall ms (max) | CPU ms | CPU / floor |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const [label, costs] of samples) {
    const cpu = median(costs.map((c) => c.cpuMs));
    const walls = costs.map((c) => c.wallMs);
    console.log(
      `| ${label} | ${costs.length} | ${median(walls).toFixed(0)} | ${Math.max(...walls).toFixed(0)} | ${cpu.toFixed(0)} | ${(cpu / floor).toFixed(1)}x |`,
    );
  }
}
