// End-to-end test helper: what happened during a rollout, read from the signed record only.
//   - the rollout timeline of every host, from the ack endpoint's append-only log (every accepted ack,
//     signed by the host with its own clock): when it started, when its acks first proved the wave's
//     soak, when it failed;
//   - the reconciler's fleetView over the installed release and the acks the control plane publishes
//     (the same pure function every agent and the dashboard run).
// Ack times have second precision; "soaked at T" means the host signed an ack at T whose healthySince
// is at least soakSeconds earlier and earlier than T (a later ack than the health's start, a soak of 0
// included: reconciler/phase.ts), which is exactly what a peer needs to see before it may move on.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { verifyAckSignature, type SignedAck } from '../../protocol/acks.ts';
import { budgetsPath, channelPlanPath, TIMESTAMP_PATH } from '../../protocol/layout.ts';
import type { Ack } from '../../protocol/schemas/ack.ts';
import type { ChannelPlan, DisruptionBudgets } from '../../protocol/schemas/release.ts';
import {
  readBudgets,
  readChannelPlan,
  readRevocations,
  readTimestamp,
} from '../../protocol/verify/documents.ts';
import { fleetView, latestAcks } from '../../reconciler/index.ts';
import type { FleetView } from '../../reconciler/types.ts';

export interface InstalledRelease {
  version: number;
  plans: Record<string, ChannelPlan>;
  budgets: DisruptionBudgets;
  revocations: ReturnType<typeof readRevocations>['signed'];
}

/** The release installed in a control plane tree dir (DIR/current). */
export function installedRelease(cpDir: string): InstalledRelease {
  const root = join(cpDir, 'current');
  const ts = readTimestamp(readFileSync(join(root, TIMESTAMP_PATH)), TIMESTAMP_PATH).signed;
  const v = ts.release.version;
  const plans: Record<string, ChannelPlan> = {};
  for (const f of readdirSync(join(root, 'releases', String(v), 'channels'))) {
    const ch = f.replace(/\.json$/, '');
    plans[ch] = readChannelPlan(
      readFileSync(join(root, channelPlanPath(v, ch))),
      channelPlanPath(v, ch),
    ).signed;
  }
  return {
    version: v,
    plans,
    budgets: readBudgets(readFileSync(join(root, budgetsPath(v))), budgetsPath(v)).signed,
    revocations: readRevocations(
      readFileSync(join(root, ts.revocations.file.path)),
      ts.revocations.file.path,
    ).signed,
  };
}

/** fleetView over the installed release and the published acks (each verified against its signed host key). */
export function currentFleetView(
  cpDir: string,
  published: SignedAck[],
  now = Date.now(),
): FleetView {
  const rel = installedRelease(cpDir);
  const keys = new Map<string, string>();
  for (const p of Object.values(rel.plans))
    for (const [h, e] of Object.entries(p.hosts)) keys.set(h, e.hostKey);
  const acks: Ack[] = [];
  for (const a of published) {
    const key = keys.get(a.signed.host);
    if (!key) continue;
    verifyAckSignature(a, a.signed.host, key);
    acks.push(a.signed);
  }
  return fleetView({
    now,
    plans: rel.plans,
    budgets: rel.budgets,
    revocations: rel.revocations,
    acks: latestAcks(acks),
  });
}

export interface HostTimeline {
  host: string;
  channel: string;
  wave: number;
  target: string;
  /** ms of the first `started` ack of this rollout; null: never started. */
  started: number | null;
  /** ms of the first ack that proves the wave's soak on the target. */
  soaked: number | null;
  /** ms of the first failed / rolled-back ack of this rollout. */
  failed: number | null;
}

export function rolloutTimeline(
  plans: Record<string, ChannelPlan>,
  acks: Ack[],
): Map<string, HostTimeline> {
  const out = new Map<string, HostTimeline>();
  for (const plan of Object.values(plans)) {
    for (const [host, entry] of Object.entries(plan.hosts)) {
      const soak = plan.waves[entry.wave]!.soakSeconds;
      const mine = acks.filter(
        (a) => a.host === host && a.rolloutId === plan.rolloutId && a.target === entry.target,
      );
      const first = (pred: (a: Ack) => boolean) => {
        const a = mine.find(pred);
        return a ? Date.parse(a.time) : null;
      };
      out.set(host, {
        host,
        channel: plan.channel,
        wave: entry.wave,
        target: entry.target,
        started: first((a) => a.kind === 'started'),
        soaked: first(
          (a) =>
            (a.kind === 'healthy' || a.kind === 'heartbeat') &&
            a.current === entry.target &&
            a.healthySince !== null &&
            Date.parse(a.time) > Date.parse(a.healthySince) &&
            Date.parse(a.time) - Date.parse(a.healthySince) >= soak * 1000,
        ),
        failed: first((a) => a.kind === 'failed' || a.kind === 'rolled-back'),
      });
    }
  }
  return out;
}

/** When every host of the wave was proven soaked (null: not all were). */
export function waveSoakedAt(
  timeline: Map<string, HostTimeline>,
  channel: string,
  wave: number,
): number | null {
  let at = 0;
  for (const t of timeline.values()) {
    if (t.channel !== channel || t.wave !== wave) continue;
    if (t.soaked === null) return null;
    at = Math.max(at, t.soaked);
  }
  return at;
}

/**
 * The largest number of hosts in flight at once: a host holds a slot from its start until it is proven
 * soaked or fails (half-open: a host may start in the very second another one's soak was proven).
 */
export function maxInFlight(
  timeline: Map<string, HostTimeline>,
  hosts: string[],
): { max: number; at: number | null; who: string[] } {
  const spans = hosts
    .map((h) => timeline.get(h))
    .filter((t): t is HostTimeline => !!t && t.started !== null)
    .map((t) => ({
      host: t.host,
      from: t.started!,
      to: Math.min(t.soaked ?? Infinity, t.failed ?? Infinity),
    }));
  let best = { max: 0, at: null as number | null, who: [] as string[] };
  for (const s of spans) {
    const who = spans.filter((o) => o.from <= s.from && s.from < o.to).map((o) => o.host);
    if (who.length > best.max) best = { max: who.length, at: s.from, who };
  }
  return best;
}

export function describeTimeline(timeline: Map<string, HostTimeline>): string {
  const t0 = Math.min(...[...timeline.values()].map((t) => t.started ?? Infinity));
  const rel = (ms: number | null) => (ms === null ? '-' : `+${(ms - t0) / 1000}s`);
  return [...timeline.values()]
    .sort((a, b) => (a.channel + a.wave).localeCompare(b.channel + b.wave))
    .map(
      (t) =>
        `${t.channel}/${t.wave} ${t.host}: started ${rel(t.started)} soaked ${rel(t.soaked)} failed ${rel(t.failed)}`,
    )
    .join('\n');
}
