// The fleet JSON format: what `mkFleet` emits and what `nixfleet publish` / `validate` read. This schema
// checks shapes and single-field values; everything that relates two parts of the fleet (references,
// cycles, duplicates, coverage of waves) is checked by ./validate.ts so that all violations are reported
// together. Unknown fields are rejected everywhere: a typo must not silently become a default.
import { z } from 'zod';
import {
  Name,
  FleetName,
  HostName,
  ChannelName,
  StorePath,
  NonNegativeInt,
  PositiveInt,
  IsoTime,
  Selector,
  Tag,
  Probe,
  Strategy,
  OnFailure,
  Threshold,
  MaintenanceWindow,
  RebootPolicy,
  DeferredHosts,
  ComplianceId,
  ComplianceMode,
  cacheUrlTrustOverride,
  trustOverrideReason,
} from '../protocol/index.ts';
import { parseHostKey } from './host-key.ts';

export const PolicyName = Name;

/**
 * An attribute path into a NixOS configuration's `config` (`services.openssh.settings.PasswordAuthentication`):
 * dot-separated Nix identifiers, so that `lib.attrByPath` in mkHost reads exactly the option named.
 */
export const FactPath = z
  .string()
  .max(256)
  .regex(
    /^[A-Za-z_][A-Za-z0-9_'-]*(\.[A-Za-z_][A-Za-z0-9_'-]*){0,31}$/,
    'must be an attribute path like services.openssh.enable (dot-separated identifiers)',
  );

/**
 * What a static control expects of its fact. A small set an auditor reads at a glance: an exact value,
 * one of a list, or merely set (not absent, not null). A fact that is not set fails equals and oneOf too.
 */
export const StaticExpect = z.union([
  z.strictObject({ equals: z.json() }),
  z.strictObject({ oneOf: z.array(z.json()).min(1).max(64) }),
  z.strictObject({ present: z.literal(true) }),
]);
export type StaticExpect = z.infer<typeof StaticExpect>;

const ControlDescription = z.string().min(1).max(512);

/**
 * A control: `static` is evaluated by CI from the host's configuration facts (validate/publish);
 * `runtime` is a command the agent runs after activation, with the health probes (argv, no shell).
 */
export const ComplianceControl = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('static'),
    description: ControlDescription,
    fact: FactPath,
    expect: StaticExpect,
  }),
  z.strictObject({
    kind: z.literal('runtime'),
    description: ControlDescription,
    argv: z.array(z.string().max(4096)).min(1).max(64),
    expectExit: z.number().int().min(0).max(255),
    timeoutMs: z.number().int().min(1).max(600_000),
  }),
]);
export type ComplianceControl = z.infer<typeof ComplianceControl>;

export const ComplianceFramework = z.strictObject({
  description: ControlDescription,
  controls: z.record(ComplianceId, ComplianceControl),
});
export type ComplianceFramework = z.infer<typeof ComplianceFramework>;

/** A channel's compliance: the frameworks its hosts must meet, and what a failure does. */
export const ChannelComplianceSpec = z.strictObject({
  frameworks: z.array(ComplianceId).min(1).max(32),
  mode: ComplianceMode,
});

const Percent = z
  .number()
  .int()
  .min(1, 'must be between 1 and 100')
  .max(100, 'must be between 1 and 100');

export const FleetHost = z.strictObject({
  /** Nix system double, e.g. x86_64-linux. */
  system: z.string().regex(/^[a-z0-9_]+-[a-z0-9_]+$/, 'must be a Nix system like x86_64-linux'),
  tags: z.array(Tag).max(64).default([]),
  channel: ChannelName,
  /** The closure this host should run (the NixOS system's toplevel store path). */
  target: StorePath,
  /** Base64 of the raw 32-byte Ed25519 key, or an OpenSSH "ssh-ed25519 AAAA... comment" line. */
  hostKey: z
    .string()
    .max(1024)
    .superRefine((text, ctx) => {
      const r = parseHostKey(text);
      if (!r.ok) ctx.addIssue({ code: 'custom', message: r.reason });
    }),
  machineId: z
    .string()
    .regex(/^[0-9a-f]{32}$/, 'must be 32 lowercase hex digits (/etc/machine-id)')
    .optional(),
  /** Configuration facts static controls read (mkHost fills them from `nixosConfiguration.config`). */
  facts: z.record(FactPath, z.json()).optional(),
});
export type FleetHost = z.infer<typeof FleetHost>;

/**
 * Channel timings a fleet may leave out (nix/lib/schema.nix has the same numbers; the fixture tests keep
 * them in parity). Each default carries its reason.
 */
export const CHANNEL_DEFAULTS = {
  /** CI's scheduled `nixfleet refresh` runs hourly (docs/ci.md). */
  signingIntervalSeconds: 3600,
  /** Six missed hourly re-signs before hosts treat the release as stale: a broken CI job has hours to be noticed. */
  freshnessSeconds: 6 * 3600,
  /** An activation has 5 minutes to report healthy before it is presumed failed (and rolled back). */
  confirmDeadlineSeconds: 300,
  /**
   * A converged host re-signs its health every 5 minutes, every fifth run of its 60 s timer: a signed
   * ack per run (60 s) is what one ack endpoint cannot take at 100,000 hosts (docs/benchmarks.md
   * "capacity"). Rollouts do not wait for it: a soak's proof is posted at the first run after the soak
   * (agent/cycle.ts soakProofDue); only a dead host's health turns "unknown" later (3 heartbeats: 15 min).
   */
  heartbeatSeconds: 300,
  /** Three missed presence heartbeats (a waiting host posts one every window/3 = 5 min) before offline. */
  offlineWindowSeconds: 900,
} as const;

export const FleetChannel = z.strictObject({
  policy: PolicyName,
  /** A release older than this (since its timestamp was signed) is stale for the channel's hosts. */
  freshnessSeconds: PositiveInt.default(CHANNEL_DEFAULTS.freshnessSeconds),
  /** How often CI re-signs the timestamp (`nixfleet refresh`). */
  signingIntervalSeconds: PositiveInt.default(CHANNEL_DEFAULTS.signingIntervalSeconds),
  confirmDeadlineSeconds: PositiveInt.default(CHANNEL_DEFAULTS.confirmDeadlineSeconds),
  heartbeatSeconds: PositiveInt.default(CHANNEL_DEFAULTS.heartbeatSeconds),
  offlineWindowSeconds: PositiveInt.default(CHANNEL_DEFAULTS.offlineWindowSeconds),
  maintenanceWindows: z.array(MaintenanceWindow).max(32).default([]),
  /** When a host whose closure needs a reboot may reboot into it (protocol/schemas/release.ts). */
  reboot: RebootPolicy.default('never'),
  compliance: ChannelComplianceSpec.optional(),
});
export type FleetChannel = z.infer<typeof FleetChannel>;

/**
 * One wave. Membership: `selector` (hosts of the channel matching it), `count` (the next N hosts in the
 * channel's stable order), `percent` (the next ceil(pct x channel size / 100), at least 1), or none of
 * them: the remainder of the channel (allowed only as the last wave). At most one of the three.
 */
export const FleetWave = z.strictObject({
  selector: Selector.optional(),
  count: PositiveInt.optional(),
  percent: Percent.optional(),
  soakSeconds: NonNegativeInt,
  failureThreshold: Threshold.default({ count: 0 }),
  offlineExcuseLimit: NonNegativeInt.default(0),
});
export type FleetWave = z.infer<typeof FleetWave>;

export const FleetPolicy = z.strictObject({
  strategy: Strategy,
  waves: z.array(FleetWave).max(64),
  onFailure: OnFailure.default('halt'),
  probes: z.array(Probe).max(32).default([]),
  healthyPassesRequired: PositiveInt.default(1),
  /** What a wave does while one of its hosts defers a reboot (protocol/schemas/release.ts). */
  deferredHosts: DeferredHosts.default('hold'),
});
export type FleetPolicy = z.infer<typeof FleetPolicy>;

export const HostEdge = z.strictObject({ before: HostName, after: HostName });
export const ChannelEdge = z.strictObject({ before: ChannelName, after: ChannelName });

export const FleetBudget = z.strictObject({
  id: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be lowercase letters, digits and "-" (1-63 chars)'),
  selector: Selector,
  // 0 is accepted here so that validate.ts can say precisely why such a budget can never be satisfied.
  maxInFlight: NonNegativeInt.optional(),
  maxInFlightPct: z.number().int().min(0).max(100, 'must be between 1 and 100').optional(),
});
export type FleetBudget = z.infer<typeof FleetBudget>;

export const FleetRevokedHost = z.strictObject({
  host: HostName,
  keyid: z
    .string()
    .regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits')
    .optional(),
  certSerial: z
    .string()
    .regex(/^[0-9A-F]{1,40}$/, 'must be an uppercase hex serial')
    .optional(),
  reason: z.string().max(512),
  /** When absent, the publisher keeps the time from the previous revocations document, or uses now. */
  revokedAt: IsoTime.optional(),
});
export const FleetRevokedClosure = z.strictObject({
  storePath: StorePath,
  reason: z.string().max(512),
  revokedAt: IsoTime.optional(),
});

export const Fleet = z.strictObject({
  fleet: FleetName,
  /** Binary cache URL handed to every host in its manifest. */
  cacheUrl: z
    .string()
    .max(2048)
    .regex(/^(https?|file):\/\//, 'must be an http(s):// or file:// URL')
    .superRefine((url, ctx) => {
      // Hosts would refuse every closure from it (TrustOverride): refuse it before anything is signed.
      const param = cacheUrlTrustOverride(url);
      if (param) ctx.addIssue({ code: 'custom', message: trustOverrideReason(param) });
    })
    .optional(),
  hosts: z.record(HostName, FleetHost),
  channels: z.record(ChannelName, FleetChannel),
  policies: z.record(PolicyName, FleetPolicy),
  complianceFrameworks: z.record(ComplianceId, ComplianceFramework).optional(),
  hostEdges: z.array(HostEdge).max(100_000).default([]),
  channelEdges: z.array(ChannelEdge).max(1024).default([]),
  disruptionBudgets: z.array(FleetBudget).max(1024).default([]),
  revoked: z
    .strictObject({
      hosts: z.array(FleetRevokedHost).max(100_000).default([]),
      closures: z.array(FleetRevokedClosure).max(100_000).default([]),
    })
    .default({ hosts: [], closures: [] }),
});
/** A parsed fleet, defaults applied. */
export type Fleet = z.infer<typeof Fleet>;
/** A fleet as written in JSON (optional fields may be absent). */
export type FleetInput = z.input<typeof Fleet>;
