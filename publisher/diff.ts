// What a publish changes against the tree's current release, per channel: targets per host, whether
// the channel's rollout restarts (its rolloutId changes), and the plan settings that changed. Used by
// `nixfleet publish` to say "no change" for an identical fleet and by `--dry-run` to show the diff
// without writing. Both sides are compared as signed plan documents (the new ones as the builder
// signed them, the very objects it serialised), so what is compared is exactly what agents would see.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  readEnvelope,
  LIMITS,
  type FileRef,
  ChannelPlan,
  DisruptionBudgets,
  ReleaseIndex,
  type ReleaseIndexHead,
  type Timestamp,
  requireFileRef,
} from '../protocol/index.ts';
import { canonicalJsonData } from './jcs.ts';

export interface TargetChange {
  host: string;
  /** null: the host was not in this channel before / is not any more. */
  from: string | null;
  to: string | null;
}

export interface ChannelDiff {
  channel: string;
  change: 'added' | 'removed' | 'changed' | 'unchanged';
  rolloutId: { from: string | null; to: string | null };
  /** A new rolloutId: the channel's rollout (and its soaks) starts over. */
  restartsRollout: boolean;
  targets: TargetChange[];
  /** Other plan settings that differ, e.g. "waves", "heartbeatSeconds 30 -> 60". */
  settings: string[];
}

export interface ReleaseDiff {
  /** The release the tree's timestamp names (null: none yet). */
  currentVersion: number | null;
  /** Same fleet JSON (fleetDigest) under the same trust root version: publishing would change nothing. */
  identical: boolean;
  channels: ChannelDiff[];
  budgets: string[];
}

/**
 * A release's index, channel plans (by channel) and disruption budgets. The index's host entries are
 * not used (the publisher's previous release reads them without their schema: verifyReleaseIndexHead).
 */
export interface ReleaseDocuments {
  index: ReleaseIndexHead;
  plans: Map<string, ChannelPlan>;
  budgets: DisruptionBudgets;
}

function readBound(treeDir: string, ref: FileRef): Uint8Array {
  const path = join(treeDir, ref.path);
  if (!existsSync(path)) throw new Error(`${ref.path} is named by timestamp.json but missing`);
  const bytes = new Uint8Array(readFileSync(path));
  requireFileRef(bytes, ref, ref.path, 'timestamp.json');
  return bytes;
}

/** The tree's current release as the timestamp binds it (digests checked; signatures are the verifier's job). */
export function readCurrentRelease(treeDir: string, ts: Timestamp): ReleaseDocuments {
  const index = readEnvelope(readBound(treeDir, ts.release.index), ReleaseIndex, {
    file: ts.release.index.path,
    maxBytes: LIMITS.releaseIndex,
    expectType: 'release',
  }).signed;
  const plans = new Map<string, ChannelPlan>();
  for (const [channel, entry] of Object.entries(index.channels)) {
    plans.set(
      channel,
      readEnvelope(readBound(treeDir, entry.plan), ChannelPlan, {
        file: entry.plan.path,
        maxBytes: LIMITS.channelPlan,
        expectType: 'channel-plan',
      }).signed,
    );
  }
  const budgets = readEnvelope(readBound(treeDir, index.budgets), DisruptionBudgets, {
    file: index.budgets.path,
    maxBytes: LIMITS.budgets,
    expectType: 'disruption-budgets',
  }).signed;
  return { index, plans, budgets };
}

const TIMING = [
  'freshnessSeconds',
  'signingIntervalSeconds',
  'confirmDeadlineSeconds',
  'heartbeatSeconds',
  'offlineWindowSeconds',
] as const;

function same(a: unknown, b: unknown): boolean {
  return canonicalJsonData(a) === canonicalJsonData(b);
}

function planSettings(a: ChannelPlan, b: ChannelPlan): string[] {
  const out: string[] = [];
  if (a.strategy !== b.strategy) out.push(`strategy ${a.strategy} -> ${b.strategy}`);
  if (a.onFailure !== b.onFailure) out.push(`onFailure ${a.onFailure} -> ${b.onFailure}`);
  for (const k of TIMING) if (a[k] !== b[k]) out.push(`${k} ${a[k]} -> ${b[k]}`);
  if (!same(a.maintenanceWindows, b.maintenanceWindows)) out.push('maintenanceWindows');
  if (!same(a.waves, b.waves))
    out.push(
      `waves (${a.waves.map((w) => w.hosts.length).join('/')} -> ${b.waves.map((w) => w.hosts.length).join('/')} hosts)`,
    );
  if (!same(a.hostEdges, b.hostEdges)) out.push('hostEdges');
  if (!same(a.gatedBy, b.gatedBy))
    out.push(`gatedBy [${a.gatedBy.join(', ')}] -> [${b.gatedBy.join(', ')}]`);
  const rekeyed = Object.keys(b.hosts).filter(
    (h) => a.hosts[h] !== undefined && a.hosts[h]!.hostKey !== b.hosts[h]!.hostKey,
  );
  if (rekeyed.length) out.push(`host keys of ${rekeyed.join(', ')}`);
  return out;
}

function targetChanges(a: ChannelPlan | undefined, b: ChannelPlan | undefined): TargetChange[] {
  const hosts = [
    ...new Set([...Object.keys(a?.hosts ?? {}), ...Object.keys(b?.hosts ?? {})]),
  ].sort();
  const out: TargetChange[] = [];
  for (const host of hosts) {
    const from = a?.hosts[host]?.target ?? null;
    const to = b?.hosts[host]?.target ?? null;
    if (from !== to) out.push({ host, from, to });
  }
  return out;
}

/** Compares the new release (its plans and budgets as signed in memory) with the current one. */
export function diffRelease(
  current: ReleaseDocuments | null,
  built: { plans: ReadonlyMap<string, ChannelPlan>; budgets: DisruptionBudgets },
  next: { fleetDigest: string; rootVersion: number },
): ReleaseDiff {
  const newPlans = built.plans;
  const newBudgets = built.budgets;
  const channels: ChannelDiff[] = [];
  const names = [...new Set([...(current?.plans.keys() ?? []), ...newPlans.keys()])].sort();
  for (const channel of names) {
    const a = current?.plans.get(channel);
    const b = newPlans.get(channel);
    const targets = targetChanges(a, b);
    const settings = a && b ? planSettings(a, b) : [];
    const change = !a
      ? 'added'
      : !b
        ? 'removed'
        : targets.length || settings.length || a.rolloutId !== b.rolloutId
          ? 'changed'
          : 'unchanged';
    channels.push({
      channel,
      change,
      rolloutId: { from: a?.rolloutId ?? null, to: b?.rolloutId ?? null },
      restartsRollout: !!b && a?.rolloutId !== b.rolloutId,
      targets,
      settings,
    });
  }
  const budgets: string[] = [];
  const oldB = new Map((current?.budgets.budgets ?? []).map((x) => [x.id, x]));
  const newB = new Map(newBudgets.budgets.map((x) => [x.id, x]));
  for (const id of [...new Set([...oldB.keys(), ...newB.keys()])].sort()) {
    const x = oldB.get(id),
      y = newB.get(id);
    if (!x) budgets.push(`budget ${id} added (max ${y!.maxInFlight})`);
    else if (!y) budgets.push(`budget ${id} removed`);
    else if (!same(x, y))
      budgets.push(
        `budget ${id}: max ${x.maxInFlight} -> ${y.maxInFlight}, ${x.hosts.length} -> ${y.hosts.length} hosts`,
      );
  }
  const identical =
    current !== null &&
    current.index.fleetDigest === next.fleetDigest &&
    current.index.rootVersion === next.rootVersion;
  return { currentVersion: current?.index.version ?? null, identical, channels, budgets };
}

/** Human lines: one per channel that changes, and its host targets (at most `maxHosts` each). */
export function describeDiff(d: ReleaseDiff, maxHosts = 20): string[] {
  const lines: string[] = [];
  for (const c of d.channels) {
    if (c.change === 'unchanged') {
      lines.push(
        `  channel ${c.channel}: unchanged (rollout ${c.rolloutId.to?.slice(0, 19)} continues)`,
      );
      continue;
    }
    const restart =
      c.change === 'changed'
        ? c.restartsRollout
          ? ', new rollout'
          : ', same rollout (soaks kept)'
        : '';
    const targets = c.targets.length ? `, ${c.targets.length} target change(s)` : '';
    const settings = c.settings.length ? `; ${c.settings.join('; ')}` : '';
    lines.push(`  channel ${c.channel}: ${c.change}${restart}${targets}${settings}`);
    for (const t of c.targets.slice(0, maxHosts))
      lines.push(`    ${t.host}: ${t.from ?? '(not in channel)'} -> ${t.to ?? '(not in channel)'}`);
    if (c.targets.length > maxHosts) lines.push(`    ... and ${c.targets.length - maxHosts} more`);
  }
  for (const b of d.budgets) lines.push(`  ${b}`);
  return lines;
}
