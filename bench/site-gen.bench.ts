// Dashboard build time for a fleet mid-rollout (10,000 and 100,000 hosts): a tree from the real
// publisher, every host's latest ack in acks/hosts/ and the whole ack history in the endpoint's log.
// Each size is built in child processes (bench/support/site-gen-child.ts, so peak RSS is the build's):
// the first one-shot `site build` (an empty verified store), one into a new output with the store it
// saved (cold site, warm verification), the next one (the store and the site), then watch mode's start
// build and its rebuild after one new ack (ack cache + reused verification + the log's new records only
// + only the pages whose inputs changed rendered). SITE_GEN_BENCH_HOSTS=N[,M...] chooses the
// sizes (default 10000,100000); SITE_GEN_BENCH_DIR=DIR keeps the generated fleets there between runs.
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  closeSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { publishRelease } from '../publisher/publish.ts';
import { generateFleet } from '../tests/support/fleet-gen.ts';
import type { SigningKey } from '../protocol/keys.ts';
import { benchTrust } from './support/bench-trust.ts';
import { SCHEMA_VERSION, isoTime } from '../protocol/schemas/common.ts';
import { ackDigest, signAck } from '../protocol/acks.ts';
import { canonicalString } from '../protocol/canonical.ts';
import { envelopeBytes } from '../protocol/envelope.ts';
import { channelPlanPath } from '../protocol/layout.ts';
import { readChannelPlan } from '../protocol/verify/documents.ts';
import type { Ack } from '../protocol/schemas/ack.ts';
import { formatRecord } from '../protocol/ack-log.ts';
import type { SiteBuildResult } from '../site-gen/build.ts';

const MIN = 60_000;

interface NewAck {
  host: string;
  /** The envelope as acks/hosts/<host>.json holds it, and the ack log's record. */
  file: Uint8Array;
  record: Uint8Array;
}

/**
 * Writes each host's ack chain: wave 0 soaked, wave 1 soaking, wave 2 one in ten activating, the rest
 * waiting. Also signs, without writing it, the next ack of one waiting host (it starts at now + 1 s).
 */
function writeAcks(
  tree: string,
  plans: ReturnType<typeof readChannelPlan>['signed'][],
  hostKeys: Record<string, SigningKey>,
  now: number,
): { count: number; next: NewAck } {
  mkdirSync(join(tree, 'acks', 'hosts'), { recursive: true });
  mkdirSync(join(tree, '.ack-log'), { recursive: true });
  const log = openSync(join(tree, '.ack-log', 'acks.log'), 'w');
  let count = 0;
  let next: NewAck | null = null;
  try {
    for (const plan of plans) {
      for (const wave of plan.waves) {
        wave.hosts.forEach((host, i) => {
          const target = plan.hosts[host]!.target;
          const old = `/nix/store/${'0'.repeat(32)}-old`;
          const mine = { rolloutId: plan.rolloutId, target };
          const steps: [number, Partial<Ack>][] = [
            [now - 60 * MIN, { kind: 'heartbeat', current: old }],
          ];
          if (wave.index === 0) {
            const since = isoTime(now - 40 * MIN);
            steps.push(
              [now - 45 * MIN, { kind: 'started', ...mine, current: old }],
              [now - 44 * MIN, { kind: 'activated', ...mine, current: target }],
              [now - 40 * MIN, { kind: 'healthy', ...mine, current: target, healthySince: since }],
              [now - 30_000, { kind: 'heartbeat', ...mine, current: target, healthySince: since }],
            );
          } else if (wave.index === 1) {
            const since = isoTime(now - 5 * MIN);
            steps.push(
              [now - 8 * MIN, { kind: 'started', ...mine, current: old }],
              [now - 7 * MIN, { kind: 'activated', ...mine, current: target }],
              [now - 5 * MIN, { kind: 'healthy', ...mine, current: target, healthySince: since }],
            );
          } else if (wave.index === 2 && i % 10 === 0) {
            steps.push([now - MIN, { kind: 'started', ...mine, current: old }]);
          } else {
            steps.push([now - 2 * MIN, { kind: 'heartbeat', current: old }]);
          }
          let prev: string | null = null;
          let last: Uint8Array | null = null;
          steps.forEach(([at, fields], s) => {
            const ack: Ack = {
              type: 'ack',
              schemaVersion: SCHEMA_VERSION,
              fleet: 'generated',
              host,
              seq: s + 1,
              prev,
              time: isoTime(at),
              kind: 'heartbeat',
              releaseVersion: 1,
              rolloutId: null,
              target: null,
              current: null,
              healthySince: null,
              probes: [],
              reason: null,
              ...fields,
            };
            const signed = signAck(ack, hostKeys[host]!);
            prev = ackDigest(signed);
            writeSync(log, formatRecord({ digest: prev, canonical: canonicalString(signed) }));
            last = envelopeBytes(signed);
            count++;
          });
          writeFileSync(join(tree, 'acks', 'hosts', `${host}.json`), last!);
          if (next === null && wave.index === 2 && i % 10 === 1) {
            const ack: Ack = {
              type: 'ack',
              schemaVersion: SCHEMA_VERSION,
              fleet: 'generated',
              host,
              seq: steps.length + 1,
              prev,
              time: isoTime(now + 1000),
              kind: 'started',
              releaseVersion: 1,
              rolloutId: plan.rolloutId,
              target,
              current: old,
              healthySince: null,
              probes: [],
              reason: null,
            };
            const signed = signAck(ack, hostKeys[host]!);
            next = {
              host,
              file: envelopeBytes(signed),
              record: formatRecord({
                digest: ackDigest(signed),
                canonical: canonicalString(signed),
              }),
            };
          }
        });
      }
    }
  } finally {
    closeSync(log);
  }
  if (next === null) throw new Error('bench fleet has no waiting host in wave 2');
  return { count, next };
}

function du(dir: string): number {
  return Number(execFileSync('du', ['-sb', '-L', dir], { encoding: 'utf8' }).split('\t')[0]);
}

export interface ChildReport {
  warm: SiteBuildResult;
  warmMaxRssMb: number;
  watchStart: SiteBuildResult;
  oneAck: SiteBuildResult;
  maxRssMb: number;
  /** CPU time (user + system, every thread) of each build of the phase. */
  cpuMs: number[];
}

interface Fixture {
  dir: string;
  tree: string;
  now: number;
  acks: number;
  nextHost: string;
  setupMs: { publish: number; acks: number } | null;
}

const FIXTURE_FILE = 'fixture.json';

/**
 * The fleet, its tree and its acks in `dir` (made once: SITE_GEN_BENCH_DIR keeps it between runs, the
 * setup takes longer than the builds). The ack log and the host file the run appends to are restored
 * from pristine copies before every run, and the site is removed, so every run starts cold.
 */
function fixture(dir: string, hosts: number): Fixture {
  const tree = join(dir, 'tree');
  const made = join(dir, FIXTURE_FILE);
  if (existsSync(made)) {
    const f = JSON.parse(readFileSync(made, 'utf8')) as Fixture;
    copyFileSync(join(dir, 'acks.log.orig'), join(tree, '.ack-log', 'acks.log'));
    copyFileSync(join(dir, 'host-ack.orig'), join(tree, 'acks', 'hosts', `${f.nextHost}.json`));
    return { ...f, setupMs: null };
  }
  const now = Date.parse('2030-01-01T01:00:00Z');
  const { releaseKey, root } = benchTrust(now);
  const { fleet, hostKeys } = generateFleet({
    hosts,
    channels: 3,
    wavesPerChannel: 4,
    seed: 'site-gen-bench',
    budgetPct: 10,
    chainChannels: true,
    soakSeconds: 600,
  });
  const t0 = performance.now();
  publishRelease({
    cacheCheck: 'skip',
    treeDir: tree,
    fleet,
    releaseKeys: [releaseKey],
    roots: [root],
    now: now - 50 * MIN,
  });
  const plans = ['ch-0', 'ch-1', 'ch-2'].map(
    (c) => readChannelPlan(readFileSync(join(tree, channelPlanPath(1, c))), c).signed,
  );
  const t1 = performance.now();
  const { count: acks, next } = writeAcks(tree, plans, hostKeys, now);
  const t2 = performance.now();
  writeFileSync(join(dir, 'root.json'), envelopeBytes(root));
  writeFileSync(join(dir, 'next-ack.json'), next.file);
  writeFileSync(join(dir, 'next-ack.record'), next.record);
  copyFileSync(join(tree, '.ack-log', 'acks.log'), join(dir, 'acks.log.orig'));
  copyFileSync(join(tree, 'acks', 'hosts', `${next.host}.json`), join(dir, 'host-ack.orig'));
  const f: Fixture = { dir, tree, now, acks, nextHost: next.host, setupMs: null };
  writeFileSync(made, JSON.stringify(f));
  return { ...f, setupMs: { publish: t1 - t0, acks: t2 - t1 } };
}

async function benchSize(hosts: number): Promise<void> {
  const keep = process.env.SITE_GEN_BENCH_DIR;
  const dir = keep
    ? join(keep, String(hosts))
    : mkdtempSync(join(tmpdir(), 'nixfleet-site-bench-'));
  mkdirSync(dir, { recursive: true });
  try {
    const fx = fixture(dir, hosts);
    const { tree, now, acks } = fx;
    for (const p of ['site', '.site.builds', 'site-cold-site', '.site-cold-site.builds', 'cache'])
      rmSync(join(dir, p), { recursive: true, force: true });
    // A heap limit given to the bench (100k hosts need more than the default) applies to the child too.
    const heap = process.execArgv.filter((a) => a.startsWith('--max-old-space-size'));
    const child = (phase: 'first' | 'cold-site' | 'rest') => {
      const c = spawnSync(
        process.execPath,
        [
          ...heap,
          '--import',
          'tsx',
          fileURLToPath(new URL('./support/site-gen-child.ts', import.meta.url)),
          phase,
          tree,
          join(dir, 'root.json'),
          join(dir, 'site'),
          String(now),
          fx.nextHost,
          join(dir, 'next-ack.json'),
          join(dir, 'next-ack.record'),
          join(dir, 'cache'),
        ],
        {
          encoding: 'utf8',
          maxBuffer: 64 * 1024 * 1024,
          cwd: fileURLToPath(new URL('..', import.meta.url)),
        },
      );
      if (c.status !== 0) throw new Error(`site-gen bench child failed (${c.status}): ${c.stderr}`);
      return JSON.parse(c.stdout) as unknown;
    };
    type OneBuild = { first: SiteBuildResult; maxRssMb: number; cpuMs: number[] };
    const first = child('first') as OneBuild;
    const coldSite = child('cold-site') as OneBuild;
    const rest = child('rest') as ChildReport;
    const r = {
      ...rest,
      cold: first.first,
      coldMaxRssMb: first.maxRssMb,
      coldSite: coldSite.first,
      coldSiteMaxRssMb: coldSite.maxRssMb,
      cpuMs: [...first.cpuMs, ...coldSite.cpuMs, ...rest.cpuMs],
    };
    const runs = [r.cold, r.coldSite, r.warm, r.watchStart, r.oneAck];
    for (const b of runs)
      if (b.status !== 'verified' || b.acks.rejected !== 0)
        throw new Error(`bench site did not build cleanly: ${JSON.stringify(b.failure)}`);
    const fmt = (k: keyof SiteBuildResult['timingsMs']) =>
      runs.map((x) => x.timingsMs[k].toFixed(0)).join(' / ');
    const kb = (n: number) => `${(n / 1e3).toFixed(0)} kB`;
    console.log(`\n### ${hosts} hosts\n`);
    console.log(
      '| what | first `site build` (empty store, no site) / `site build` into a new output (the store: cold site, warm verification) / next `site build` (the store and the site) / watch start / watch after one new ack |',
    );
    console.log('|---|---|');
    console.log(
      `| hosts / acks (log records) / latest-ack files | ${hosts} / ${acks} / ${hosts} |`,
    );
    console.log(
      `| setup: publish / sign+write acks (not measured below) | ${fx.setupMs === null ? 'kept fixture' : `${fx.setupMs.publish.toFixed(0)} / ${fx.setupMs.acks.toFixed(0)} ms`} |`,
    );
    console.log(`| buildSite total (wall) | ${fmt('total')} ms |`);
    console.log(
      `| CPU time of the build (user + system, all threads) | ${r.cpuMs.map((c) => c.toFixed(0)).join(' / ')} ms |`,
    );
    console.log(
      `| - verify tree (verifyTree + bound documents; reused after an ack) | ${fmt('verify')} ms |`,
    );
    console.log(`| - read + verify acks (files + log) | ${fmt('acks')} ms |`);
    console.log(`| - fleet view + timelines + every page's inputs | ${fmt('model')} ms |`);
    console.log(`| - render pages (those whose inputs changed) | ${fmt('render')} ms |`);
    console.log(`| - write changed pages, link the rest, atomic swap | ${fmt('write')} ms |`);
    console.log(
      `| pages / rendered / written | ${runs.map((x) => `${x.pages} / ${x.rendered} / ${x.written}`).join('; ')} |`,
    );
    console.log(
      `| bytes: site / written | ${runs.map((x) => `${(x.bytes / 1e6).toFixed(1)} / ${(x.bytesWritten / 1e6).toFixed(2)} MB`).join('; ')} |`,
    );
    console.log(
      `| peak RSS: first build's process / cold-site build's process / next build's process after it, after the watch builds | ${r.coldMaxRssMb.toFixed(0)} / ${r.coldSiteMaxRssMb.toFixed(0)} / ${r.warmMaxRssMb.toFixed(0)}, ${r.maxRssMb.toFixed(0)} MB |`,
    );
    console.log(
      `| largest page | ${r.cold.largestPage?.path} ${kb(r.cold.largestPage?.bytes ?? 0)} |`,
    );
    console.log(
      `| index.html / hosts.html / one list page / one channel page / one host detail page (largest) | ${kb(statSync(join(dir, 'site', 'index.html')).size)} / ${kb(statSync(join(dir, 'site', 'hosts.html')).size)} / ${kb(statSync(join(dir, 'site', 'lists', 'all_2.html')).size)} / ${kb(statSync(join(dir, 'site', 'channels', 'ch-0.html')).size)} / ${kb(Math.max(...readdirSync(join(dir, 'site', 'hosts')).map((f) => statSync(join(dir, 'site', 'hosts', f)).size)))} |`,
    );
    console.log(
      `| on disk (du, both kept builds share unchanged pages) | ${(du(join(dir, 'site')) / 1e6).toFixed(1)} MB |`,
    );
    console.log(
      `| machine load average (1 min) | ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} cores |`,
    );
  } finally {
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
}

export default async function siteGenBench(): Promise<void> {
  const sizes = (process.env.SITE_GEN_BENCH_HOSTS ?? '10000,100000').split(',').map(Number);
  for (const hosts of sizes) await benchSize(hosts);
}
