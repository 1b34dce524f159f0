// `nixfleet status` / `nixfleet trace` building blocks over a published tree and a full ack history:
// a generated fleet (3 channels chained by edges, 4 waves each) rolled out wave by wave, every host
// posting started, activated, healthy and a heartbeat per minute through its soak (jittered by host),
// all in the ack endpoint's log format. Sizes: OPERATOR_BENCH_HOSTS (default 1000).
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { publishRelease } from '../publisher/publish.ts';
import { refreshTimestamp } from '../publisher/refresh.ts';
import { generateFleet } from '../tests/support/fleet-gen.ts';
import { benchTrust } from './support/bench-trust.ts';
import { isoTime } from '../protocol/schemas/common.ts';
import { ackDigest, signAck, type SignedAck } from '../protocol/acks.ts';
import { canonicalString, sha256Digest } from '../protocol/canonical.ts';
import { formatRecord } from '../protocol/ack-log.ts';
import { ackTrustOf, acksDirOf, fleetInputOf, loadVerifiedRelease, readAckLog, readTreeAcks } from '../operator/load.ts';
import { fleetView } from '../reconciler/index.ts';
import { renderStatus, statusReport } from '../operator/status.ts';
import { loadAckHistory, renderTrace, traceReport } from '../operator/trace.ts';

const MIN = 60_000;

async function timedAsync<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - t0 };
}

function timed<T>(fn: () => T): { value: T; ms: number } {
  const t = performance.now();
  const value = fn();
  return { value, ms: performance.now() - t };
}

export default async function operatorBench(): Promise<void> {
  const hosts = Number(process.env.OPERATOR_BENCH_HOSTS ?? 1000);
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-operator-bench-'));
  try {
    const start = Date.parse('2030-01-01T00:00:00Z');
    const { releaseKey, root } = benchTrust(start);
    const { fleet, hostKeys } = generateFleet({ hosts, channels: 3, wavesPerChannel: 4, seed: 'operator-bench', chainChannels: true, soakSeconds: 300 });
    const tree = join(dir, 'tree');
    publishRelease({ cacheCheck: 'skip', treeDir: tree, fleet, releaseKeys: [releaseKey], roots: [root], now: start });
    const release0 = await loadVerifiedRelease(tree, root, { now: start + MIN });

    // Every wave gets a 10-minute slot after the previous one (channels in edge order).
    const logFile = join(dir, 'acks.log');
    const latest = new Map<string, SignedAck>();
    let slot = 0;
    let records = 0;
    const slots = Object.values(release0.plans).reduce((n, p) => n + p.waves.length, 0);
    const end = start + 2 * MIN + slots * 10 * MIN;
    const chunks: Buffer[] = [];
    for (const ch of Object.keys(release0.plans).sort()) {
      const plan = release0.plans[ch]!;
      for (const w of plan.waves) {
        const t0 = start + 2 * MIN + slot++ * 10 * MIN;
        w.hosts.forEach((host, i) => {
          const entry = plan.hosts[host]!;
          const j = (i % 30) * 1000;
          const healthyAt = t0 + MIN + j;
          const steps: { kind: 'started' | 'activated' | 'healthy' | 'heartbeat'; at: number }[] = [
            { kind: 'started', at: t0 + j }, { kind: 'activated', at: t0 + 30_000 + j }, { kind: 'healthy', at: healthyAt },
          ];
          for (let t = healthyAt + MIN; t <= healthyAt + 7 * MIN; t += MIN) steps.push({ kind: 'heartbeat', at: t });
          // A last heartbeat just before the end, so a finished wave still shows fresh soak proof.
          if (healthyAt + 7 * MIN < end - 2 * MIN) steps.push({ kind: 'heartbeat', at: end - 30_000 - j });
          let prev: string | null = null;
          steps.forEach((s, n) => {
            const ack = signAck({
              type: 'ack', schemaVersion: 1, fleet: 'generated', host, seq: n + 1, prev, time: isoTime(s.at), kind: s.kind,
              releaseVersion: plan.releaseVersion, rolloutId: plan.rolloutId, target: entry.target,
              current: s.kind === 'started' ? null : entry.target, healthySince: s.kind === 'healthy' || s.kind === 'heartbeat' ? isoTime(healthyAt) : null,
              probes: [], reason: null,
            }, hostKeys[host]!);
            prev = ackDigest(ack);
            const canonical = canonicalString(ack);
            chunks.push(formatRecord({ digest: sha256Digest(canonical), canonical }));
            records++;
            latest.set(host, ack);
          });
        });
      }
    }
    appendFileSync(logFile, Buffer.concat(chunks));
    mkdirSync(join(tree, 'acks', 'hosts'), { recursive: true });
    for (const [host, ack] of latest) writeFileSync(join(tree, 'acks', 'hosts', `${host}.json`), canonicalString(ack));
    // The scheduled re-sign that keeps the tree fresh (it does not change any rollout).
    refreshTimestamp({ treeDir: tree, releaseKeys: [releaseKey], now: end - MIN });

    const load = await timedAsync(() => loadVerifiedRelease(tree, root, { now: end }));
    const release = load.value;
    const treeAcks = timed(() => readTreeAcks(acksDirOf(tree), ackTrustOf(release)));
    const view = timed(() => fleetView(fleetInputOf(release, treeAcks.value.acks, end)));
    const render = timed(() => renderStatus(statusReport({ release, stale: null, acks: treeAcks.value, input: fleetInputOf(release, treeAcks.value.acks, end), view: view.value })));
    const log = timed(() => readAckLog(logFile, ackTrustOf(release)));
    const history = timed(() => loadAckHistory(tree, release, logFile));
    const traceCh = timed(() => traceReport(release, history.value, { channel: 'ch-1' }, { now: end }));
    const traceHost = timed(() => traceReport(release, history.value, { host: release.plans['ch-2']!.waves[3]!.hosts[0]! }, { now: end }));
    const traceText = timed(() => renderTrace(traceCh.value));

    const complete = view.value.channels.filter((c) => c.state === 'complete').length;
    console.log(`fleet: ${hosts} hosts, 3 channels x 4 waves, ${records} acks in the log (${(Buffer.concat(chunks).length / 1e6).toFixed(1)} MB), ${complete}/3 channels complete at the end`);
    console.log('| step | ms |');
    console.log('|---|---:|');
    console.log(`| loadVerifiedRelease (verifyTree + bound re-read) | ${load.ms.toFixed(0)} |`);
    console.log(`| readTreeAcks (${treeAcks.value.acks.length} latest acks, verified) | ${treeAcks.ms.toFixed(0)} |`);
    console.log(`| fleetView | ${view.ms.toFixed(0)} |`);
    console.log(`| status report + text (${render.value.split('\n').length} lines) | ${render.ms.toFixed(0)} |`);
    console.log(`| readAckLog (${log.value.acks.length} acks verified) | ${log.ms.toFixed(0)} |`);
    console.log(`| trace channel ch-1 (${traceCh.value.hosts.length} hosts, ${traceCh.value.entries.length} entries, ${traceCh.value.from}..${traceCh.value.until}) | ${traceCh.ms.toFixed(0)} |`);
    console.log(`| trace one host | ${traceHost.ms.toFixed(0)} |`);
    console.log(`| trace text | ${traceText.ms.toFixed(0)} |`);
    const statusTotal = load.ms + treeAcks.ms + view.ms + render.ms;
    const traceTotal = load.ms + history.ms + traceCh.ms + traceText.ms;
    console.log(`\nnixfleet status total ~${statusTotal.toFixed(0)} ms; nixfleet trace --channel (log + tree acks) total ~${traceTotal.toFixed(0)} ms (excluding process start)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
