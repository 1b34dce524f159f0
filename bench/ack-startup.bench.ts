// Ack endpoint start-up with a long log (issue 10, section 5): 1,000,000 signed acks (10,000 hosts x 100,
// each host's own hash chain, interleaved as they would arrive). Start-up without a snapshot replays
// every record (checksum + parse of each); with one it reads the snapshot (every host's head, floor
// and held runs) and only the records after it. Rows: in-process AckService.open + setView, and the
// endpoint process (`nixfleet cp serve --acks-only`, compiled CLI) from spawn until it listens, beside
// the floors `node -e 0` and reading the log file once. The generated tree + log are cached under
// .bench/ (signing 1,000,000 acks takes a minute). ACK_STARTUP_HOSTS, ACK_STARTUP_PER_HOST change the size.
// Segmented rows: the same log cut into the endpoint's segments (8 MiB) at record boundaries, as the endpoint rolls
// it, with the snapshot's position moved into its segment: start-up reads the snapshot and the
// segments from its one on, whatever the number of older segments.
import { spawn, execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  openSync,
  writeSync,
  closeSync,
  readFileSync,
  rmSync,
  statSync,
  cpSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadavg } from 'node:os';
import {
  fixtureHosts,
  fixtureKeys,
  writeTree,
  AckChain,
} from '../tests/control-plane/tree-fixture.ts';
import { AckService } from '../control-plane/ack-service.ts';
import { ACK_SNAPSHOT_FILE, readAckSnapshot, writeAckSnapshot } from '../control-plane/ack-log.ts';
import { loadReleaseView } from '../control-plane/release-view.ts';
import { segmentBounds } from './support/ack-segments.ts';
import { ACK_LOG_FILE, ackSegmentName, formatRecord } from '../protocol/ack-log.ts';
import { canonicalString, sha256Digest } from '../protocol/canonical.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin', 'nixfleet.js');
const HOSTS = Number(process.env.ACK_STARTUP_HOSTS ?? 10_000);
const PER_HOST = Number(process.env.ACK_STARTUP_PER_HOST ?? 100);

/** The tree and a log of HOSTS x PER_HOST acks, generated once into .bench/. */
async function fixture(): Promise<{ dir: string; tree: string; log: string }> {
  const dir = join(ROOT, '.bench', `ack-startup-${HOSTS}x${PER_HOST}`);
  const tree = join(dir, 'tree');
  const log = join(dir, 'log');
  if (existsSync(join(dir, 'done'))) return { dir, tree, log };
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(log, { recursive: true });
  const hosts = fixtureHosts(
    Object.fromEntries(Array.from({ length: HOSTS }, (_, i) => [`h${i}`, { wave: i % 4 }])),
  );
  writeTree(tree, { keys: fixtureKeys(Date.now()), hosts, version: 1, nowMs: Date.now() });
  const chains = hosts.map((h) => new AckChain(h));
  const fd = openSync(join(log, ACK_LOG_FILE), 'w');
  try {
    for (let k = 0; k < PER_HOST; k++) {
      const lines: Buffer[] = [];
      for (const c of chains) {
        const canonical = canonicalString(c.next());
        lines.push(formatRecord({ digest: sha256Digest(canonical), canonical }));
      }
      writeSync(fd, Buffer.concat(lines));
    }
  } finally {
    closeSync(fd);
  }
  // The snapshot, written the endpoint's way: after a full replay, one more accepted ack with
  // snapshotEvery = 1 makes it write one at the next idle point.
  const svc = await AckService.open({
    logDir: log,
    publishRoot: join(dir, 'pub'),
    rateLimit: false,
    snapshotEvery: 1,
    // One segment for the whole log, as before segments: segment() below cuts it as the endpoint
    // would have, and moves the snapshot's position (in segment 0) into the segment it falls in. At
    // the default size the open log would roll at this ack and the snapshot would name a segment 1
    // that the cut then replaces.
    segmentBytes: 2 ** 40,
  });
  svc.setView(loadReleaseView(tree));
  const extra = chains[0]!.next();
  const r = await svc.submit(Buffer.from(JSON.stringify(extra)), {
    cn: extra.signed.host,
    ou: 'agent',
    serial: null,
  });
  // The snapshot is written at the idle point after the append, which a close right away would
  // overtake (a closed log calls no onIdle).
  for (let waited = 0; r.status === 201 && waited < 120_000; waited += 100) {
    if (existsSync(join(log, ACK_SNAPSHOT_FILE))) break;
    await new Promise((done) => setTimeout(done, 100));
  }
  await svc.close();
  if (r.status !== 201 || !existsSync(join(log, ACK_SNAPSHOT_FILE)))
    throw new Error(`could not make the snapshot: ${JSON.stringify(r.body)}`);
  execFileSync('touch', [join(dir, 'done')]);
  return { dir, tree, log };
}

/**
 * Cuts the single-file log in `dir` into segments as the endpoint rolls it (a segment ends with the
 * record that takes it past DEFAULT_SEGMENT_BYTES) and moves the snapshot's position into its
 * segment. Returns the number of segments.
 */
function segment(dir: string): number {
  const file = join(dir, ACK_LOG_FILE);
  const bytes = readFileSync(file);
  const { snapshot } = readAckSnapshot(dir);
  const bounds = segmentBounds(bytes);
  for (const [index, { start, end }] of bounds.entries()) {
    writeFileSync(join(dir, ackSegmentName(index)), bytes.subarray(start, end));
    if (
      snapshot &&
      snapshot.at.segment === 0 &&
      snapshot.at.bytes > start &&
      snapshot.at.bytes <= end
    )
      snapshot.at = { ...snapshot.at, segment: index, bytes: snapshot.at.bytes - start };
  }
  if (snapshot) writeAckSnapshot(dir, snapshot);
  return bounds.length;
}

/** CPU seconds (user + sys) and peak RSS (MB) of a live process. */
function procUsage(pid: number): { cpuMs: number; hwmMb: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { cpuMs: (Number(f[11]) + Number(f[12])) * 10, hwmMb: hwm / 1024 };
}

/** Spawns the endpoint and measures until it listens (its first stdout line). */
async function endpointStartup(
  tree: string,
  log: string,
): Promise<{ wallMs: number; cpuMs: number; hwmMb: number; opened: string }> {
  const t0 = performance.now();
  const child = spawn(
    process.execPath,
    [
      BIN,
      'cp',
      'serve',
      '--acks-only',
      '--tree',
      tree,
      '--acks-log',
      log,
      '--port',
      '0',
      '--rate-limit',
      'off',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  try {
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('\n')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`cp serve exited ${code}: ${err}`)));
    });
    const wallMs = performance.now() - t0;
    const u = procUsage(child.pid!);
    const opened = err.split('\n').find((l) => l.includes('ack-log-opened')) ?? '';
    return { wallMs, ...u, opened };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
  }
}

function childCpu(args: string[]): { wallMs: number; cpuMs: number; rssMb: number } {
  const out = join(ROOT, '.bench', 'time.txt');
  const t0 = performance.now();
  execFileSync('/usr/bin/time', ['-o', out, '-f', '%U %S %M', process.execPath, ...args]);
  const wallMs = performance.now() - t0;
  const [u, s, m] = readFileSync(out, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  return { wallMs, cpuMs: (u! + s!) * 1000, rssMb: m! / 1024 };
}

export default async function bench(): Promise<void> {
  const tGen = performance.now();
  const f = await fixture();
  const genS = (performance.now() - tGen) / 1000;
  const logFile = join(f.log, ACK_LOG_FILE);
  const logMb = statSync(logFile).size / 1e6;
  // Each scenario starts from a copy of the log dir (the endpoint appends and writes snapshots).
  const work = join(f.dir, 'run');
  let segments = 1;
  const fresh = (withSnapshot: boolean, segmented = false) => {
    rmSync(work, { recursive: true, force: true });
    cpSync(f.log, work, { recursive: true });
    if (!withSnapshot) rmSync(join(work, ACK_SNAPSHOT_FILE), { force: true });
    if (segmented) segments = segment(work);
    return work;
  };
  const rows: string[][] = [];
  const view = loadReleaseView(f.tree);

  const inProcess = async (label: string, withSnapshot: boolean, segmented = false) => {
    const dir = fresh(withSnapshot, segmented);
    global.gc?.();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const svc = await AckService.open({
      logDir: dir,
      publishRoot: join(f.dir, 'pub'),
      rateLimit: false,
      snapshotEvery: 0,
    });
    const tOpen = performance.now() - t0;
    svc.setView(view);
    const total = performance.now() - t0;
    const cpu = process.cpuUsage(c0);
    rows.push([
      label,
      total.toFixed(0),
      ((cpu.user + cpu.system) / 1000).toFixed(0),
      '',
      `open ${tOpen.toFixed(0)} ms; ${svc.startup.snapshotHeads} heads from the snapshot, ${svc.startup.replayed.toLocaleString('en')} records replayed, ${svc.startup.segmentsRead} of ${segmented ? segments : 1} segment(s) read`,
    ]);
    await svc.close();
  };
  const floor = childCpu(['-e', '0']);
  rows.push([
    'floor: node -e 0',
    floor.wallMs.toFixed(0),
    floor.cpuMs.toFixed(0),
    floor.rssMb.toFixed(0),
    '',
  ]);
  const read = childCpu(['-e', `require('fs').readFileSync(${JSON.stringify(logFile)})`]);
  rows.push([
    `floor: read acks.log once (${logMb.toFixed(0)} MB)`,
    read.wallMs.toFixed(0),
    read.cpuMs.toFixed(0),
    read.rssMb.toFixed(0),
    '',
  ]);
  for (const [withSnapshot, segmented] of [
    [false, false],
    [true, false],
    [true, true],
  ] as const) {
    const dir = fresh(withSnapshot, segmented);
    const r = await endpointStartup(f.tree, dir);
    const o = /"snapshotHeads":(\d+),"replayed":(\d+)/.exec(r.opened);
    rows.push([
      `cp serve --acks-only until listening, ${withSnapshot ? 'snapshot' : 'full replay'}${segmented ? `, ${segments} segments` : ''}`,
      r.wallMs.toFixed(0),
      r.cpuMs.toFixed(0),
      r.hwmMb.toFixed(0),
      o
        ? `${o[1]} heads from the snapshot, ${Number(o[2]).toLocaleString('en')} records replayed`
        : r.opened,
    ]);
  }
  await inProcess('in-process AckService.open + setView, full replay', false);
  await inProcess('in-process AckService.open + setView, snapshot', true);
  await inProcess('in-process, full replay, 8 MiB segments', false, true);
  await inProcess('in-process, snapshot, 8 MiB segments', true, true);
  rmSync(work, { recursive: true, force: true });

  console.log(
    `${HOSTS.toLocaleString('en')} hosts x ${PER_HOST} acks = ${(HOSTS * PER_HOST).toLocaleString('en')} acks, log ${logMb.toFixed(0)} MB (fixture ${genS < 5 ? 'cached' : `generated in ${genS.toFixed(0)} s`}); load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
  console.log('| start-up | wall ms | CPU ms | peak RSS MB | detail |\n|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
}
