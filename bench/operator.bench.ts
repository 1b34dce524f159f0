// `nixfleet status` / `nixfleet trace` as a user runs them: whole processes of the shipped binary
// (bin/nixfleet.js -> dist/) over a published tree and a realistic ack history, side by side with the
// floor (`node -e 0`) and `nixfleet verify` of the same tree (the full audit, every manifest).
// The fleet: generated (3 channels chained by edges, 4 waves each) and rolled out wave by wave, every
// host posting started, activated, healthy and a heartbeat per minute through its soak (jittered by
// host), all in the ack endpoint's log format and segments (DIR/.ack-log/), each host's latest ack in
// acks/hosts/ and the per-wave bundles in acks/channels/, as the endpoint keeps them. The last wave is
// mid-rollout: one host failed, a few never answered.
// Sizes: OPERATOR_BENCH_HOSTS (default 10000, comma-separated for several). OPERATOR_BENCH_KEEP=1 keeps
// the generated directories (printed) for profiling. OPERATOR_BENCH_DIR=DIR keeps each size's fixture in
// DIR/<hosts> and reuses it on the next run (100,000 hosts take ~8 minutes to sign). OPERATOR_BENCH_BEFORE
// =PATH (another checkout's bin/nixfleet.js, e.g. main's) adds its rows beside this one's, interleaved in
// the same runs, each with its own warm cache. OPERATOR_BENCH_COLD=0 leaves out the cold rows and verify
// (at 100,000 hosts each verifies ~10^5-10^6 signatures).
// The warm rows look at a frozen tree: a second look finds every file unchanged. A second table times
// the same views "a minute later" (liveBench): the fleet advanced by one minute of its own schedule
// between the look that filled the cache and the timed one, as an operator running `nixfleet status`
// every minute meets it; OPERATOR_BENCH_LIVE=0 leaves it out (it more than doubles the bench's time).
// The fixture's tree is put back as it was after it.
import { spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  closeSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { publishRelease } from '../publisher/publish.ts';
import { refreshTimestamp } from '../publisher/refresh.ts';
import { generateFleet } from '../tests/support/fleet-gen.ts';
import { benchTrust } from './support/bench-trust.ts';
import { isoTime } from '../protocol/schemas/common.ts';
import { canonicalString, sha256Digest } from '../protocol/canonical.ts';
import { formatRecord } from '../protocol/ack-log.ts';
import { ackLogDir, ackLogPath } from '../protocol/control-plane-dir.ts';
import { bundleJson } from '../control-plane/ack-publisher.ts';
import { loadVerifiedRelease } from '../read-side/load.ts';
import type { SignedRoot } from '../protocol/index.ts';
import { liveMinute, restoreLiveMinute } from './support/live-minute.ts';
import { cutAckLog } from './support/ack-segments.ts';
import { RACY_MS } from '../read-side/ack-file-memo.ts';
import {
  MIN,
  OPERATOR_FLEET_SEED,
  OPERATOR_FLEET_START,
  fixtureEnd,
  hostSchedule,
  scheduledAcks,
  waveSlots,
} from './support/operator-schedule.ts';

const BIN = fileURLToPath(new URL('../bin/nixfleet.js', import.meta.url));
const GNU_TIME = '/usr/bin/time';
const RUNS = Number(process.env.OPERATOR_BENCH_RUNS ?? 3);

export interface OperatorFixture {
  tree: string;
  rootFile: string;
  /** The instant the views are evaluated at (ISO): the end of the history. */
  now: string;
  hosts: number;
  records: number;
  logBytes: number;
  /**
   * A host of the last wave (the one with a failure and silent hosts), for --host views: the last
   * channel, so its view reads its channel's and the gating channel's acks (read-side/scope.ts).
   */
  sampleHost: string;
  /** A host of the first channel (gated by none): its view reads its own channel's acks. */
  firstChannelHost: string;
}

/** Publishes the fleet and writes its ack history into `dir` (tree at dir/tree, pinned root at dir/root.json). */
export async function buildOperatorFixture(dir: string, hosts: number): Promise<OperatorFixture> {
  const start = OPERATOR_FLEET_START;
  const { releaseKey, root } = benchTrust(start);
  const { fleet, hostKeys } = generateFleet({
    hosts,
    channels: 3,
    wavesPerChannel: 4,
    seed: OPERATOR_FLEET_SEED,
    chainChannels: true,
    soakSeconds: 300,
  });
  const tree = join(dir, 'tree');
  publishRelease({
    cacheCheck: 'skip',
    treeDir: tree,
    fleet,
    releaseKeys: [releaseKey],
    roots: [root],
    now: start,
  });
  const rootFile = join(dir, 'root.json');
  writeFileSync(rootFile, canonicalString(root));
  const release0 = await loadVerifiedRelease(tree, root, { now: start + MIN });

  // Every wave gets a 10-minute slot after the previous one (channels in edge order); the views look at
  // the fleet 4 minutes into the last slot (bench/support/operator-schedule.ts).
  const slots = waveSlots(release0.plans);
  const end = fixtureEnd(slots);
  mkdirSync(ackLogDir(tree), { recursive: true });
  const log = openSync(ackLogPath(tree), 'a');
  const latest = new Map<string, string>();
  let records = 0;
  let logBytes = 0;
  try {
    for (const slot of slots) {
      const chunks: Buffer[] = [];
      slot.hosts.forEach((host, i) => {
        const schedule = hostSchedule(slot, i, end);
        if (schedule === null) return;
        for (const ack of scheduledAcks(slot, host, schedule, 0, null, hostKeys[host])) {
          const canonical = canonicalString(ack);
          chunks.push(Buffer.from(formatRecord({ digest: sha256Digest(canonical), canonical })));
          records++;
          latest.set(host, canonical);
        }
      });
      const bytes = Buffer.concat(chunks);
      writeSync(log, bytes);
      logBytes += bytes.length;
    }
  } finally {
    closeSync(log);
  }
  // In the segments the endpoint would have rolled it into (the views re-hash the current one).
  cutAckLog(ackLogDir(tree));
  mkdirSync(join(tree, 'acks', 'hosts'), { recursive: true });
  for (const [host, canonical] of latest)
    writeFileSync(join(tree, 'acks', 'hosts', `${host}.json`), canonical);
  for (const { channel, wave, hosts: members } of slots) {
    mkdirSync(join(tree, 'acks', 'channels', channel), { recursive: true });
    writeFileSync(
      join(tree, 'acks', 'channels', channel, `wave-${wave}.json`),
      bundleJson('generated', channel, wave, isoTime(end), members, (h) => latest.get(h)),
    );
  }
  // The scheduled re-sign that keeps the tree fresh (it does not change any rollout).
  refreshTimestamp({ treeDir: tree, releaseKeys: [releaseKey], now: end - MIN });
  // The first host of the last wave, and of the first channel's first wave.
  const sampleHost = slots.at(-1)!.hosts[0]!;
  const firstChannelHost = slots[0]!.hosts[0]!;
  return {
    tree,
    rootFile,
    now: isoTime(end),
    hosts,
    records,
    logBytes,
    sampleHost,
    firstChannelHost,
  };
}

export interface Cost {
  wallMs: number;
  cpuMs: number;
  rssMb: number;
}

/** One whole process under GNU time: `%e %U %S %M` = wall s, user s, system s, peak RSS KB. */
export function once(args: string[], okCodes: readonly number[]): Cost {
  const r = spawnSync(GNU_TIME, ['-f', '%e %U %S %M', process.execPath, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
  });
  if (!okCodes.includes(r.status ?? -1))
    throw new Error(`node ${args.join(' ')} exited with ${r.status}: ${r.stderr}`);
  const [wall, user, sys, rssKb] = r.stderr.trim().split('\n').at(-1)!.split(' ').map(Number) as [
    number,
    number,
    number,
    number,
  ];
  return { wallMs: wall * 1000, cpuMs: (user + sys) * 1000, rssMb: rssKb / 1024 };
}

export const median = (xs: number[]): number =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

type Row = [label: string, args: string[], okCodes: number[]];

/** One binary's rows: its path, the prefix of its labels and its cache directory. */
type Binary = [bin: string, label: string, cacheDir: string];

const FLOOR: Row = ['node -e 0 (floor)', ['-e', '0'], [0]];

/** The warm rows a live fleet changes under (`status --problems` reads as `status` does). */
const LIVE_ROWS = new Set([
  'nixfleet status, warm cache',
  'nixfleet status --host H, warm',
  'nixfleet status --host H1 (first channel), warm',
  'nixfleet trace --host H, warm cache',
  'nixfleet trace --host H1 (first channel), warm',
]);

export default async function operatorBench(): Promise<void> {
  if (!existsSync(GNU_TIME)) {
    console.log(`skipped: ${GNU_TIME} (Debian package "time") is not installed`);
    return;
  }
  const before = process.env.OPERATOR_BENCH_BEFORE;
  const cold = process.env.OPERATOR_BENCH_COLD !== '0';
  const live = process.env.OPERATOR_BENCH_LIVE !== '0';
  const keptIn = process.env.OPERATOR_BENCH_DIR;
  for (const hosts of (process.env.OPERATOR_BENCH_HOSTS ?? '10000').split(',').map(Number)) {
    const dir =
      keptIn === undefined
        ? mkdtempSync(join(tmpdir(), 'nixfleet-operator-bench-'))
        : join(keptIn, String(hosts));
    try {
      const f = await keptFixture(dir, hosts, keptIn !== undefined);
      restoreLiveMinute(dir, f.tree); // a minute a killed run left applied
      // Each binary's warm rows reuse the cache its first run fills; cold rows verify every ack.
      const binaries: Binary[] =
        before === undefined
          ? [[BIN, '', join(dir, 'cache')]]
          : [
              [before, 'before: ', join(dir, 'cache-before')],
              [BIN, 'after: ', join(dir, 'cache')],
            ];
      // A killed run's saved caches (liveBench): the frozen rows' first runs refill the caches.
      for (const [, , cacheDir] of binaries)
        rmSync(`${cacheDir}.look`, { recursive: true, force: true });
      const rows = [FLOOR, ...interleaved(binaries.map((b) => operatorRows(f, ...b, cold)))];
      const frozen = frozenCosts(rows);
      console.log(
        `\n${hosts} hosts, 3 channels x 4 waves, ${f.records} acks in the log (${(f.logBytes / 1e6).toFixed(1)} MB); median of ${RUNS} interleaved runs; load average at the end ${loadAverage()}`,
      );
      printTable(rows, frozen);
      if (live) await liveBench(dir, f, rows, frozen);
      if (process.env.OPERATOR_BENCH_KEEP || keptIn !== undefined)
        console.log(
          `kept: ${dir} (host ${f.sampleHost}, first-channel host ${f.firstChannelHost}, now ${f.now})`,
        );
    } finally {
      if (!process.env.OPERATOR_BENCH_KEEP && keptIn === undefined)
        rmSync(dir, { recursive: true, force: true });
    }
  }
}

/** Row i of every binary's list, for each i: the binaries side by side, run after run. */
const interleaved = (lists: Row[][]): Row[] => lists[0]!.flatMap((_, i) => lists.map((l) => l[i]!));

export const loadAverage = (): string =>
  readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

/** The frozen tree: each warm row run once to fill its cache, then every row RUNS times, interleaved. */
function frozenCosts(rows: Row[]): Cost[][] {
  for (const [, args, ok] of rows) if (args.includes('--cache-dir')) once(args, ok);
  // Interleaved runs (a busy machine drifts), then the median of each.
  const costs = rows.map(() => [] as Cost[]);
  for (let run = 0; run < RUNS; run++)
    rows.forEach(([, args, ok], i) => costs[i]!.push(once(args, ok)));
  return costs;
}

/** The medians of `costs[i]` for each row, CPU as a multiple of the first row's (the floor). */
function printTable(rows: Row[], costs: Cost[][], frozenCpu?: (number | undefined)[]): void {
  const floor = median(costs[0]!.map((x) => x.cpuMs));
  const frozenColumn = frozenCpu === undefined ? '' : ' frozen: CPU ms |';
  console.log(`| command |${frozenColumn} wall ms | CPU ms | peak RSS MB | CPU / floor |`);
  console.log(`|---|${frozenCpu === undefined ? '' : '---:|'}---:|---:|---:|---:|`);
  rows.forEach(([label], i) => {
    const c = costs[i]!;
    const cpu = median(c.map((x) => x.cpuMs));
    const frozen = frozenCpu === undefined ? '' : ` ${frozenCpu[i]?.toFixed(0) ?? ''} |`;
    console.log(
      `| ${label} |${frozen} ${median(c.map((x) => x.wallMs)).toFixed(0)} | ${cpu.toFixed(0)} | ${median(c.map((x) => x.rssMb)).toFixed(0)} | ${(cpu / floor).toFixed(1)}x |`,
    );
  });
}

/**
 * The warm rows "a minute later": a look at the fleet one minute of its schedule after the previous
 * look, whose run left each binary's cache (bench/support/live-minute.ts). Every timed run sees the
 * same minute, the first after the fixture's `now`, over the same caches: those the frozen rows left
 * (a look at the fixture's `now`), saved first and put back in each round with the fixture's tree,
 * before the minute is applied and each row timed at `now` + 60 s, the binaries interleaved, once the
 * minute's files are older than the racy margin (as nearly all of a real minute's are). (Not a
 * look at the restored tree instead: the log cut back to its old length is a history no real log
 * has, and trace would verify it all again.) The tree and the caches are put back at the end (also
 * after a failure; a killed run's minute is undone by the next run).
 */
async function liveBench(dir: string, f: OperatorFixture, rows: Row[], frozen: Cost[][]) {
  const root = JSON.parse(readFileSync(f.rootFile, 'utf8')) as SignedRoot;
  const minute = await liveMinute(dir, f.tree, root, f.now);
  const picked = rows.flatMap((r, i) =>
    LIVE_ROWS.has(r[0].replace(/^(before|after): /, '')) ? [i] : [],
  );
  const liveRows: Row[] = [
    FLOOR,
    ...picked.map((i): Row => {
      const [label, args, ok] = rows[i]!;
      return [
        label.replace(/, warm( cache)?$/, ', warm, a minute later'),
        atNow(args, minute.now),
        ok,
      ];
    }),
  ];
  const caches = new Set(picked.map((i) => argAfter(rows[i]![1], '--cache-dir')));
  const putBack = (): void => {
    for (const c of caches) {
      rmSync(c, { recursive: true, force: true });
      cpSync(`${c}.look`, c, { recursive: true });
    }
  };
  for (const c of caches) cpSync(c, `${c}.look`, { recursive: true });
  const costs = liveRows.map(() => [] as Cost[]);
  try {
    for (let run = 0; run < RUNS; run++) {
      minute.restore();
      putBack();
      minute.apply();
      // The minute's acks arrive over a minute, so a look sees nearly all of them more than RACY_MS
      // old (a file that young is read again by the next look, not remembered): timed at once, every
      // one of the 1,861 files would be too young, a case an operator meets for ~2 s of each minute.
      await sleep(RACY_MS + 100);
      liveRows.forEach(([, args, ok], i) => costs[i]!.push(once(args, ok)));
    }
  } finally {
    minute.restore();
    putBack();
    for (const c of caches) rmSync(`${c}.look`, { recursive: true, force: true });
  }
  const posted = [...minute.acks.values()].reduce((n, a) => n + a.length, 0);
  console.log(
    `\nA minute later (${minute.now}): ${minute.acks.size} of ${f.hosts} hosts post ${posted} acks, ${minute.bundles.length} wave bundle(s) rewritten; median of ${RUNS} rounds, each the same first minute after the frozen tree, over the caches of a look at the frozen tree; load average at the end ${loadAverage()}; "frozen" is the same row's median above`,
  );
  printTable(liveRows, costs, [
    median(frozen[0]!.map((x) => x.cpuMs)),
    ...picked.map((i) => median(frozen[i]!.map((x) => x.cpuMs))),
  ]);
}

const argAfter = (args: string[], flag: string): string => args[args.indexOf(flag) + 1]!;

/** `args` with the instant after `--now` replaced by `now`. */
const atNow = (args: string[], now: string): string[] =>
  args.map((a, i) => (args[i - 1] === '--now' ? now : a));

/**
 * The fixture of `hosts` in `dir`: the one kept there by an earlier run (`reuse`), or a new one. A kept
 * fixture's tree and root are the ones in `dir`, wherever it was generated (a copy of a kept fixture
 * is read, and advanced by the live rows, where it is, not where its fixture.json was written).
 */
export async function keptFixture(
  dir: string,
  hosts: number,
  reuse: boolean,
): Promise<OperatorFixture> {
  const file = join(dir, 'fixture.json');
  if (reuse && existsSync(file)) {
    const kept = JSON.parse(readFileSync(file, 'utf8')) as OperatorFixture;
    const tree = join(dir, 'tree');
    // Kept from before the log was written in segments (or before the segment size changed).
    restoreLiveMinute(dir, tree);
    cutAckLog(ackLogDir(tree));
    return { ...kept, tree, rootFile: join(dir, 'root.json') };
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const f = await buildOperatorFixture(dir, hosts);
  writeFileSync(file, JSON.stringify(f));
  return f;
}

/** The rows of one binary (`label` prefixes each), its warm rows on `cacheDir`. */
function operatorRows(
  f: OperatorFixture,
  bin: string,
  label: string,
  cacheDir: string,
  cold: boolean,
): Row[] {
  const common = ['--tree', f.tree, '--root', f.rootFile, '--now', f.now];
  const warm = [...common, '--cache-dir', cacheDir];
  const rows: Row[] = [
    [
      'nixfleet verify (every manifest)',
      [bin, 'verify', f.tree, '--root', f.rootFile, '--now', f.now],
      [0],
    ],
    ['nixfleet status, cold (--no-cache)', [bin, 'status', ...common, '--no-cache'], [0]],
    ['nixfleet status, warm cache', [bin, 'status', ...warm], [0]],
    ['nixfleet status --problems, warm', [bin, 'status', ...warm, '--problems'], [0]],
    ['nixfleet status --host H, warm', [bin, 'status', ...warm, '--host', f.sampleHost], [0]],
    [
      'nixfleet status --host H1 (first channel), warm',
      [bin, 'status', ...warm, '--host', f.firstChannelHost],
      [0],
    ],
    [
      'nixfleet trace --host H, cold (--no-cache)',
      [bin, 'trace', ...common, '--no-cache', '--host', f.sampleHost],
      [0],
    ],
    ['nixfleet trace --host H, warm cache', [bin, 'trace', ...warm, '--host', f.sampleHost], [0]],
    [
      'nixfleet trace --host H1 (first channel), warm',
      [bin, 'trace', ...warm, '--host', f.firstChannelHost],
      [0],
    ],
  ];
  return rows
    .filter(([name]) => cold || !/cold|verify/.test(name))
    .map(([name, args, ok]) => [`${label}${name}`, args, ok]);
}
