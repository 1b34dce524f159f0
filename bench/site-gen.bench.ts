// Dashboard build time for a 10,000-host fleet mid-rollout: a tree from the real publisher, every host's
// latest ack in acks/hosts/ and the whole ack history in the endpoint's log. Measures buildSite end to
// end (verify the tree, verify every ack, fleet view, render every page, install atomically) and the
// size of what it writes. SITE_GEN_BENCH_HOSTS=N changes the size.
import { mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
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
import { buildSite } from '../site-gen/build.ts';
import { AckCache } from '../operator/load.ts';

const MIN = 60_000;

/** Writes each host's ack chain: wave 0 soaked, wave 1 soaking, wave 2 one in ten activating, the rest waiting. */
function writeAcks(tree: string, plans: ReturnType<typeof readChannelPlan>['signed'][], hostKeys: Record<string, SigningKey>, now: number): number {
  mkdirSync(join(tree, 'acks', 'hosts'), { recursive: true });
  mkdirSync(join(tree, '.ack-log'), { recursive: true });
  const log = openSync(join(tree, '.ack-log', 'acks.log'), 'w');
  let count = 0;
  try {
    for (const plan of plans) {
      for (const wave of plan.waves) {
        wave.hosts.forEach((host, i) => {
          const target = plan.hosts[host]!.target;
          const old = `/nix/store/${'0'.repeat(32)}-old`;
          const mine = { rolloutId: plan.rolloutId, target };
          const steps: [number, Partial<Ack>][] = [[now - 60 * MIN, { kind: 'heartbeat', current: old }]];
          if (wave.index === 0) {
            const since = isoTime(now - 40 * MIN);
            steps.push([now - 45 * MIN, { kind: 'started', ...mine, current: old }], [now - 44 * MIN, { kind: 'activated', ...mine, current: target }],
              [now - 40 * MIN, { kind: 'healthy', ...mine, current: target, healthySince: since }], [now - 30_000, { kind: 'heartbeat', ...mine, current: target, healthySince: since }]);
          } else if (wave.index === 1) {
            const since = isoTime(now - 5 * MIN);
            steps.push([now - 8 * MIN, { kind: 'started', ...mine, current: old }], [now - 7 * MIN, { kind: 'activated', ...mine, current: target }],
              [now - 5 * MIN, { kind: 'healthy', ...mine, current: target, healthySince: since }]);
          } else if (wave.index === 2 && i % 10 === 0) {
            steps.push([now - MIN, { kind: 'started', ...mine, current: old }]);
          } else {
            steps.push([now - 2 * MIN, { kind: 'heartbeat', current: old }]);
          }
          let prev: string | null = null;
          let last: Uint8Array | null = null;
          steps.forEach(([at, fields], s) => {
            const ack: Ack = {
              type: 'ack', schemaVersion: SCHEMA_VERSION, fleet: 'generated', host, seq: s + 1, prev, time: isoTime(at), kind: 'heartbeat',
              releaseVersion: 1, rolloutId: null, target: null, current: null, healthySince: null, probes: [], reason: null, ...fields,
            };
            const signed = signAck(ack, hostKeys[host]!);
            prev = ackDigest(signed);
            writeSync(log, formatRecord({ digest: prev, canonical: canonicalString(signed) }));
            last = envelopeBytes(signed);
            count++;
          });
          writeFileSync(join(tree, 'acks', 'hosts', `${host}.json`), last!);
        });
      }
    }
  } finally {
    closeSync(log);
  }
  return count;
}

function du(dir: string): number {
  return Number(execFileSync('du', ['-sb', '-L', dir], { encoding: 'utf8' }).split('\t')[0]);
}

export default async function siteGenBench(): Promise<void> {
  const hosts = Number(process.env.SITE_GEN_BENCH_HOSTS ?? 10_000);
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-site-bench-'));
  try {
    const now = Date.parse('2030-01-01T01:00:00Z');
    const { releaseKey, root } = benchTrust(now);
    const { fleet, hostKeys } = generateFleet({ hosts, channels: 3, wavesPerChannel: 4, seed: 'site-gen-bench', budgetPct: 10, chainChannels: true, soakSeconds: 600 });
    const tree = join(dir, 'tree');
    const t0 = performance.now();
    publishRelease({ cacheCheck: 'skip', treeDir: tree, fleet, releaseKeys: [releaseKey], roots: [root], now: now - 50 * MIN });
    const plans = ['ch-0', 'ch-1', 'ch-2'].map((c) => readChannelPlan(readFileSync(join(tree, channelPlanPath(1, c))), c).signed);
    const t1 = performance.now();
    const acks = writeAcks(tree, plans, hostKeys, now);
    const t2 = performance.now();

    const out = join(dir, 'site');
    const runs: Awaited<ReturnType<typeof buildSite>>[] = [];
    const cpu: number[] = [];
    // Run 1 is a one-shot `site build`; runs 2-3 reuse the ack cache as `site watch` does between builds.
    const ackCache = new AckCache();
    for (let i = 0; i < 3; i++) {
      const c = process.cpuUsage();
      runs.push(await buildSite({ treeDir: tree, pinnedRoot: root, outDir: out, now: now + i * 1000, ackCache }));
      const used = process.cpuUsage(c);
      cpu.push((used.user + used.system) / 1000);
    }
    const last = runs[runs.length - 1]!;
    if (last.status !== 'verified' || last.acks.rejected !== 0) throw new Error(`bench site did not build cleanly: ${JSON.stringify(last.failure)}`);
    const fmt = (k: keyof (typeof last)['timingsMs']) => runs.map((r) => r.timingsMs[k].toFixed(0)).join(' / ');
    console.log('| what | figure |');
    console.log('|---|---|');
    console.log(`| hosts / acks (log records) / latest-ack files | ${hosts} / ${acks} / ${hosts} |`);
    console.log(`| setup: publish / sign+write acks (not measured below) | ${(t1 - t0).toFixed(0)} / ${(t2 - t1).toFixed(0)} ms |`);
    console.log(`| buildSite total: cold / watch-mode rebuild x2 | ${fmt('total')} ms |`);
    console.log(`| - verify tree (verifyTree + bound documents) | ${fmt('verify')} ms |`);
    console.log(`| - read + verify acks (files + log) | ${fmt('acks')} ms |`);
    console.log(`| - fleet view + timelines | ${fmt('model')} ms |`);
    console.log(`| - render pages | ${fmt('render')} ms |`);
    console.log(`| - write + atomic swap | ${fmt('write')} ms |`);
    console.log(`| CPU time (all threads), 3 runs | ${cpu.map((c) => c.toFixed(0)).join(' / ')} ms |`);
    console.log(`| pages / bytes written | ${last.pages} / ${(last.bytes / 1e6).toFixed(1)} MB (on disk ${(du(out) / 1e6).toFixed(1)} MB) |`);
    console.log(`| index.html / hosts.html / one channel page | ${(statSync(join(out, 'index.html')).size / 1e3).toFixed(0)} kB / ${(statSync(join(out, 'hosts.html')).size / 1e6).toFixed(1)} MB / ${(statSync(join(out, 'channels', 'ch-0.html')).size / 1e6).toFixed(2)} MB |`);
    console.log(`| machine load average (1 min) | ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} cores |`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
