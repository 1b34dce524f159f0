// Immutable per-release documents under releases/<version>/: the index, one manifest per host, one
// rollout plan per channel, and the disruption budgets. Each binds the release version, and references
// what it depends on by digest, so nothing from another release can be mixed in.
import { z } from 'zod';
import {
  SchemaVersion,
  FleetName,
  Version,
  IsoTime,
  FileRef,
  HostName,
  ChannelName,
  StorePath,
  Digest,
  Base64Key32,
  NonNegativeInt,
  PositiveInt,
} from './common.ts';
import { Selector } from './selector.ts';
import { ChannelCompliance, HostCompliance } from './compliance.ts';

export const Strategy = z.enum(['canary', 'staged', 'all-at-once']);
export const OnFailure = z.enum(['halt', 'rollback-and-halt']);
/**
 * When a host whose new closure needs a reboot (switch inhibitor) may reboot into it: `never` (it defers
 * and says why; an operator reboots it), `in-maintenance-window` (only while one of the channel's windows
 * is open), `allowed` (as soon as its gates pass).
 */
export const RebootPolicy = z.enum(['never', 'in-maintenance-window', 'allowed']);
export type RebootPolicy = z.infer<typeof RebootPolicy>;
/**
 * What a wave does while one of its hosts defers (staged for a reboot it may not take yet): `hold` (the
 * wave waits for it: not complete until it reboots, soaks or fails) or `excuse` (it does not keep the
 * wave from completing; it still holds its disruption-budget slot, since it may reboot at any time).
 */
export const DeferredHosts = z.enum(['hold', 'excuse']);
export type DeferredHosts = z.infer<typeof DeferredHosts>;

/** Count or integer percentage (of the wave's hosts). Default 0: any failure halts. */
export const Threshold = z.union([
  z.strictObject({ count: NonNegativeInt }),
  z.strictObject({ percent: z.number().int().min(0).max(100) }),
]);
export type Threshold = z.infer<typeof Threshold>;

export const Probe = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('systemd'),
    name: z.string().min(1).max(64),
    unit: z.string().max(256).nullable(),
  }),
  z.strictObject({
    kind: z.literal('http'),
    name: z.string().min(1).max(64),
    url: z
      .string()
      .max(2048)
      .regex(/^https?:\/\//, 'must be an http(s) URL'),
    expectStatus: z.number().int().min(100).max(599),
    timeoutMs: z.number().int().min(1).max(600_000),
  }),
  z.strictObject({
    kind: z.literal('tcp'),
    name: z.string().min(1).max(64),
    host: z.string().min(1).max(253),
    port: z.number().int().min(1).max(65535),
    timeoutMs: z.number().int().min(1).max(600_000),
  }),
  z.strictObject({
    kind: z.literal('command'),
    name: z.string().min(1).max(64),
    argv: z.array(z.string().max(4096)).min(1).max(64),
    expectExit: z.number().int().min(0).max(255),
    timeoutMs: z.number().int().min(1).max(600_000),
  }),
]);
export type Probe = z.infer<typeof Probe>;

export const MaintenanceWindow = z.strictObject({
  /** Cron expression (5 or 6 fields) for the window's start, evaluated in UTC. */
  cron: z.string().min(9).max(128),
  durationMinutes: z
    .number()
    .int()
    .min(1)
    .max(7 * 24 * 60),
});
export type MaintenanceWindow = z.infer<typeof MaintenanceWindow>;

export const ReleaseIndex = z.strictObject({
  type: z.literal('release'),
  schemaVersion: SchemaVersion,
  fleet: FleetName,
  version: Version,
  issuedAt: IsoTime,
  rootVersion: Version,
  /** Digest of the fleet JSON the release was resolved from (provenance). */
  fleetDigest: Digest,
  source: z.string().max(512).nullable(),
  channels: z.record(
    ChannelName,
    z.strictObject({ rolloutId: Digest, plan: FileRef, hostCount: NonNegativeInt }),
  ),
  hosts: z.record(HostName, z.strictObject({ channel: ChannelName, manifest: FileRef })),
  budgets: FileRef,
});
export type ReleaseIndex = z.infer<typeof ReleaseIndex>;

export const HostManifest = z.strictObject({
  type: z.literal('host-manifest'),
  schemaVersion: SchemaVersion,
  fleet: FleetName,
  releaseVersion: Version,
  issuedAt: IsoTime,
  host: HostName,
  system: z.string().regex(/^[a-z0-9_]+-[a-z0-9_]+$/, 'must be a Nix system like x86_64-linux'),
  machineId: z
    .string()
    .regex(/^[0-9a-f]{32}$/, 'must be a 32-hex-digit machine id')
    .nullable(),
  hostKey: Base64Key32,
  channel: ChannelName,
  wave: NonNegativeInt,
  target: StorePath,
  rolloutId: Digest,
  plan: FileRef,
  /** Plans of the channels that gate this host's channel (channel edges). */
  gatingPlans: z.array(z.strictObject({ channel: ChannelName, plan: FileRef })),
  budgets: FileRef,
  probes: z.array(Probe).max(32),
  healthyPassesRequired: PositiveInt,
  confirmDeadlineSeconds: PositiveInt,
  cacheUrl: z.string().max(2048).nullable(),
  /** The channel's compliance frameworks for this host; absent when the channel names none. */
  compliance: HostCompliance.optional(),
});
export type HostManifest = z.infer<typeof HostManifest>;

export const PlanWave = z.strictObject({
  index: NonNegativeInt,
  soakSeconds: NonNegativeInt,
  failureThreshold: Threshold,
  /** How many hosts of this wave may be excused as offline (beyond the offline window). */
  offlineExcuseLimit: NonNegativeInt,
  hosts: z.array(HostName),
});
export type PlanWave = z.infer<typeof PlanWave>;

export const ChannelPlan = z.strictObject({
  type: z.literal('channel-plan'),
  schemaVersion: SchemaVersion,
  fleet: FleetName,
  releaseVersion: Version,
  issuedAt: IsoTime,
  channel: ChannelName,
  rolloutId: Digest,
  strategy: Strategy,
  onFailure: OnFailure,
  freshnessSeconds: PositiveInt,
  signingIntervalSeconds: PositiveInt,
  confirmDeadlineSeconds: PositiveInt,
  heartbeatSeconds: PositiveInt,
  offlineWindowSeconds: PositiveInt,
  maintenanceWindows: z.array(MaintenanceWindow).max(32),
  /** Plans signed before these fields existed read as the defaults (never reboot; hold the wave). */
  reboot: RebootPolicy.default('never'),
  deferredHosts: DeferredHosts.default('hold'),
  waves: z.array(PlanWave),
  hosts: z.record(
    HostName,
    z.strictObject({ target: StorePath, hostKey: Base64Key32, wave: NonNegativeInt }),
  ),
  /** Host edges within this channel: `after` may not start until `before` is soaked. */
  hostEdges: z.array(z.strictObject({ before: HostName, after: HostName })),
  /** Channels whose rollout (same release) must be complete before this one starts. */
  gatedBy: z.array(ChannelName),
  /** The channel's compliance frameworks and runtime controls; absent when it names none. */
  compliance: ChannelCompliance.optional(),
});
export type ChannelPlan = z.infer<typeof ChannelPlan>;

export const DisruptionBudgets = z.strictObject({
  type: z.literal('disruption-budgets'),
  schemaVersion: SchemaVersion,
  fleet: FleetName,
  releaseVersion: Version,
  issuedAt: IsoTime,
  budgets: z.array(
    z.strictObject({
      id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/),
      selector: Selector,
      maxInFlight: PositiveInt,
      maxInFlightPct: z.number().int().min(1).max(100).nullable(),
      hosts: z.array(HostName),
    }),
  ),
});
export type DisruptionBudgets = z.infer<typeof DisruptionBudgets>;
