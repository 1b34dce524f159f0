// Small builders for reconciler inputs: plans, manifests, budgets, acks as plain objects (no
// signatures: the reconciler consumes already-verified documents). Used by the simulator, the tests,
// the fixtures and the benchmark.
import { createHash } from 'node:crypto';
import {
  type ChannelPlan,
  type DisruptionBudgets,
  type HostManifest,
  type MaintenanceWindow,
  type Threshold,
  type RebootPolicy,
  type DeferredHosts,
  type Revocations,
  type Ack,
  type AckKind,
  type ChannelCompliance,
  type ControlEvidence,
  type StaticControlResult,
  isoTime,
} from '../../protocol/index.ts';

const NIX_BASE32 = '0123456789abcdfghijklmnpqrsvwxyz';

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

export function digestOf(text: string): string {
  return 'sha256:' + sha256(text).toString('hex');
}

/** A syntactically valid, deterministic store path for `name`. */
export function storePath(name: string): string {
  const h = sha256(name);
  let s = '';
  for (let i = 0; i < 32; i++) s += NIX_BASE32[h[i]! % 32];
  return `/nix/store/${s}-${name.replace(/[^A-Za-z0-9+\-._?=]/g, '-')}`;
}

export function hostKeyOf(host: string): string {
  // Stryker disable next-line StringLiteral: a domain prefix only: with any fixed prefix (or none) every host still gets its own deterministic key (base64, unlike any other hash the builders print)
  return sha256('host-key/' + host).toString('base64');
}

export interface WaveSpec {
  hosts: string[];
  soakSeconds?: number;
  failureThreshold?: Threshold;
  offlineExcuseLimit?: number;
}

export interface ChannelSpec {
  name: string;
  waves: WaveSpec[];
  gatedBy?: string[];
  hostEdges?: { before: string; after: string }[];
  onFailure?: 'halt' | 'rollback-and-halt';
  heartbeatSeconds?: number;
  offlineWindowSeconds?: number;
  confirmDeadlineSeconds?: number;
  signingIntervalSeconds?: number;
  maintenanceWindows?: MaintenanceWindow[];
  reboot?: RebootPolicy;
  deferredHosts?: DeferredHosts;
  /** Compliance of the channel (plan and manifests); `static`: each host's static results (default none). */
  compliance?: ChannelCompliance & { static?: Record<string, StaticControlResult[]> };
}

export interface FleetSpec {
  fleet?: string;
  releaseVersion?: number;
  /** ms */
  issuedAt?: number;
  /** Names the targets: target of host h is storePath(`nixos-system-${h}-${release}`). */
  release?: string;
  channels: ChannelSpec[];
  budgets?: { id: string; hosts: string[]; maxInFlight: number }[];
}

export interface BuiltFleet {
  plans: Record<string, ChannelPlan>;
  manifests: Record<string, HostManifest>;
  budgets: DisruptionBudgets;
  revocations: Revocations;
  targets: Record<string, string>;
  /** The closure each host ran before this release. */
  previous: Record<string, string>;
}

const fileRef = (path: string) => ({ path, digest: digestOf(path), length: 1 });

/** What every document of one built release shares. */
interface ReleaseHeader {
  fleet: string;
  releaseVersion: number;
  issuedAt: string;
}

export function buildFleet(spec: FleetSpec): BuiltFleet {
  const releaseVersion = spec.releaseVersion ?? 1;
  const header: ReleaseHeader = {
    fleet: spec.fleet ?? 'sim',
    releaseVersion,
    issuedAt: isoTime(spec.issuedAt ?? Date.UTC(2026, 0, 1)),
  };
  const release = spec.release ?? `r${releaseVersion}`;
  const plans: Record<string, ChannelPlan> = {};
  const manifests: Record<string, HostManifest> = {};
  const targets: Record<string, string> = {};
  const previous: Record<string, string> = {};
  for (const ch of spec.channels) {
    const plan = channelPlan(ch, header, release);
    plans[ch.name] = plan;
    for (const [h, entry] of Object.entries(plan.hosts)) {
      targets[h] = entry.target;
      previous[h] = storePath(`nixos-system-${h}-previous`);
      manifests[h] = hostManifest(h, plan, ch, header);
    }
  }
  const budgets = disruptionBudgets(spec.budgets ?? [], header);
  const revocations: Revocations = {
    type: 'revocations',
    schemaVersion: 1,
    fleet: header.fleet,
    version: 1,
    issuedAt: header.issuedAt,
    hosts: [],
    closures: [],
  };
  return { plans, manifests, budgets, revocations, targets, previous };
}

/** A channel's plan: its waves and hosts (target of h: `nixos-system-${h}-${release}`), its policy. */
function channelPlan(ch: ChannelSpec, header: ReleaseHeader, release: string): ChannelPlan {
  const hosts: ChannelPlan['hosts'] = {};
  const waves = ch.waves.map((w, index) => {
    for (const h of w.hosts)
      hosts[h] = {
        target: storePath(`nixos-system-${h}-${release}`),
        hostKey: hostKeyOf(h),
        wave: index,
      };
    return {
      index,
      soakSeconds: w.soakSeconds ?? 600,
      failureThreshold: w.failureThreshold ?? { count: 0 },
      offlineExcuseLimit: w.offlineExcuseLimit ?? 0,
      hosts: w.hosts,
    };
  });
  const body = {
    channel: ch.name,
    onFailure: ch.onFailure ?? 'halt',
    waves,
    hosts,
    hostEdges: ch.hostEdges ?? [],
    gatedBy: ch.gatedBy ?? [],
    maintenanceWindows: ch.maintenanceWindows ?? [],
    // Only when not the default, as in publisher/rollout-id.ts (keeps the fixtures' ids stable).
    ...(ch.deferredHosts !== undefined && ch.deferredHosts !== 'hold'
      ? { deferredHosts: ch.deferredHosts }
      : {}),
  };
  return {
    type: 'channel-plan',
    schemaVersion: 1,
    ...header,
    channel: ch.name,
    // Content-addressed: the same targets and policy give the same id, whatever the signing time.
    rolloutId: digestOf(JSON.stringify(body)),
    strategy: 'staged',
    onFailure: body.onFailure,
    freshnessSeconds: 3600,
    signingIntervalSeconds: ch.signingIntervalSeconds ?? 600,
    confirmDeadlineSeconds: ch.confirmDeadlineSeconds ?? 300,
    heartbeatSeconds: ch.heartbeatSeconds ?? 60,
    offlineWindowSeconds: ch.offlineWindowSeconds ?? 900,
    maintenanceWindows: body.maintenanceWindows,
    reboot: ch.reboot ?? 'never',
    deferredHosts: ch.deferredHosts ?? 'hold',
    waves,
    hosts,
    hostEdges: body.hostEdges,
    gatedBy: body.gatedBy,
    ...(ch.compliance
      ? {
          compliance: {
            mode: ch.compliance.mode,
            frameworks: ch.compliance.frameworks,
            runtime: ch.compliance.runtime,
          },
        }
      : {}),
  };
}

/** Host `h`'s manifest in `plan`, pointing at the release's plan and budget files. */
function hostManifest(
  h: string,
  plan: ChannelPlan,
  ch: ChannelSpec,
  header: ReleaseHeader,
): HostManifest {
  const entry = plan.hosts[h]!;
  const dir = `releases/${header.releaseVersion}`;
  return {
    type: 'host-manifest',
    schemaVersion: 1,
    ...header,
    host: h,
    system: 'x86_64-linux',
    machineId: null,
    hostKey: entry.hostKey,
    channel: ch.name,
    wave: entry.wave,
    target: entry.target,
    rolloutId: plan.rolloutId,
    plan: fileRef(`${dir}/channels/${ch.name}.json`),
    gatingPlans: plan.gatedBy.map((g) => ({
      channel: g,
      plan: fileRef(`${dir}/channels/${g}.json`),
    })),
    budgets: fileRef(`${dir}/budgets.json`),
    probes: [],
    healthyPassesRequired: 1,
    confirmDeadlineSeconds: ch.confirmDeadlineSeconds ?? 300,
    cacheUrl: null,
    ...(ch.compliance
      ? {
          compliance: {
            mode: ch.compliance.mode,
            frameworks: ch.compliance.frameworks,
            static: ch.compliance.static?.[h] ?? [],
            runtime: ch.compliance.runtime,
          },
        }
      : {}),
  };
}

function disruptionBudgets(
  specs: NonNullable<FleetSpec['budgets']>,
  header: ReleaseHeader,
): DisruptionBudgets {
  return {
    type: 'disruption-budgets',
    schemaVersion: 1,
    ...header,
    budgets: specs.map((b) => ({
      id: b.id,
      selector: { hosts: b.hosts.length > 0 ? b.hosts : ['none'] },
      maxInFlight: b.maxInFlight,
      maxInFlightPct: null,
      hosts: b.hosts,
    })),
  };
}

export interface AckSpec {
  /** ms */
  time: number;
  seq?: number;
  rolloutId?: string | null;
  target?: string | null;
  current?: string | null;
  /** ms */
  healthySince?: number | null;
  reason?: string | null;
  releaseVersion?: number;
  fleet?: string;
  evidence?: ControlEvidence[];
}

/** An ack's signed part. The prev digest is a placeholder: chains are checked before the reconciler. */
export function makeAck(host: string, kind: AckKind, s: AckSpec): Ack {
  const seq = s.seq ?? 1;
  return {
    type: 'ack',
    schemaVersion: 1,
    fleet: s.fleet ?? 'sim',
    host,
    seq,
    prev: seq === 1 ? null : digestOf(`${host}/${seq - 1}`),
    time: isoTime(s.time),
    kind,
    releaseVersion: s.releaseVersion ?? 1,
    rolloutId: s.rolloutId ?? null,
    target: s.target ?? null,
    current: s.current ?? null,
    healthySince:
      s.healthySince === undefined || s.healthySince === null ? null : isoTime(s.healthySince),
    probes: [],
    reason: s.reason ?? null,
    ...(s.evidence ? { evidence: s.evidence } : {}),
  };
}

/** Acks describing a host's state in its rollout, for hand-written scenarios. */
export function ackFor(
  f: BuiltFleet,
  host: string,
  kind: AckKind,
  time: number,
  extra: Partial<AckSpec> = {},
): Ack {
  const m = f.manifests[host]!;
  const onTarget =
    kind === 'activated' ||
    kind === 'healthy' ||
    (kind === 'heartbeat' && extra.healthySince !== undefined && extra.healthySince !== null);
  return makeAck(host, kind, {
    time,
    rolloutId: m.rolloutId,
    target: m.target,
    current: onTarget ? m.target : f.previous[host]!,
    ...extra,
  });
}
