// Builds small signed trees directly from the schemas, for verification tests that need to bend one
// thing at a time (a key window, a version, a digest) without going through the publisher.
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { sha256Digest } from '../../protocol/canonical.ts';
import { envelopeBytes, signDocument } from '../../protocol/envelope.ts';
import { b64, newSigningKey, publicPart, type SigningKey } from '../../protocol/keys.ts';
import {
  REVOCATIONS_PATH,
  TIMESTAMP_PATH,
  budgetsPath,
  channelPlanPath,
  hostManifestPath,
  releaseIndexPath,
  rootPath,
} from '../../protocol/layout.ts';
import { SCHEMA_VERSION, isoTime, type FileRef } from '../../protocol/schemas/common.ts';
import type {
  ChannelPlan,
  DisruptionBudgets,
  HostManifest,
  ReleaseIndex,
} from '../../protocol/schemas/release.ts';
import type { Revocations } from '../../protocol/schemas/revocations.ts';
import type { Timestamp } from '../../protocol/schemas/timestamp.ts';
import { createRoot, signRoot, type SignedRoot } from '../../protocol/trust-root.ts';
import { fakeStorePath } from './fleet-gen.ts';

export const DAY = 86_400_000;
export const HOUR = 3_600_000;

export interface TreeKeys {
  root: SigningKey[];
  release: SigningKey[];
}

export function makeKeys(rootCount = 1, releaseCount = 1): TreeKeys {
  return {
    root: Array.from({ length: rootCount }, (_, i) => newSigningKey(`root-${i}`)),
    release: Array.from({ length: releaseCount }, (_, i) => newSigningKey(`release-${i}`)),
  };
}

export interface RootSpec {
  fleet?: string;
  version?: number;
  issuedAt: number;
  expiresInMs?: number;
  rootKeys: SigningKey[];
  rootThreshold?: number;
  releaseKeys: { key: SigningKey; validFrom: number; validUntil: number }[];
  releaseThreshold?: number;
  rejectBefore?: number | null;
  /** Keys that sign the root; default: its own root keys. */
  signers?: SigningKey[];
}

export function makeRoot(s: RootSpec): SignedRoot {
  const root = createRoot({
    fleet: s.fleet ?? 'test-fleet',
    version: s.version ?? 1,
    issuedAt: isoTime(s.issuedAt),
    expires: isoTime(s.issuedAt + (s.expiresInMs ?? 365 * DAY)),
    rootKeys: s.rootKeys.map(publicPart),
    rootThreshold: s.rootThreshold ?? 1,
    releaseKeys: s.releaseKeys.map((g) => ({
      key: publicPart(g.key),
      validFrom: isoTime(g.validFrom),
      validUntil: isoTime(g.validUntil),
    })),
    releaseThreshold: s.releaseThreshold ?? 1,
    cacheKeys: ['cache.example.org-1:' + b64(new Uint8Array(32).fill(9))],
    rejectBefore: s.rejectBefore == null ? null : isoTime(s.rejectBefore),
  });
  return signRoot(root, s.signers ?? s.rootKeys);
}

export function writeFile(dir: string, path: string, bytes: Uint8Array): FileRef {
  const full = join(dir, path);
  mkdirSync(dirname(full), { recursive: true });
  writeFileSync(full, bytes);
  return { path, digest: sha256Digest(bytes), length: bytes.byteLength };
}

export function writeSigned(
  dir: string,
  path: string,
  doc: unknown,
  keys: readonly SigningKey[],
): FileRef {
  return writeFile(dir, path, envelopeBytes(signDocument(doc, keys)));
}

export function writeRoot(dir: string, root: SignedRoot): FileRef {
  return writeFile(dir, rootPath(root.signed.version), envelopeBytes(root));
}

export interface ReleaseSpec {
  dir: string;
  fleet?: string;
  version: number;
  issuedAt: number;
  rootVersion?: number;
  /** channel name -> host names; channels listed later are gated by the first one when `gateOnFirst`. */
  channels: Record<string, string[]>;
  gateOnFirst?: boolean;
  signers: readonly SigningKey[];
  /** Target label suffix: a different suffix gives every host a different closure. */
  targetLabel?: string;
}

export interface BuiltRelease {
  index: FileRef;
  manifests: Record<string, FileRef>;
  plans: Record<string, FileRef>;
  budgets: FileRef;
  targets: Record<string, string>;
}

const hostKeyOf = (host: string) =>
  createHash('sha256').update(`host-key/${host}`).digest('base64');
const digestOf = (label: string) => `sha256:${createHash('sha256').update(label).digest('hex')}`;

export function writeRelease(s: ReleaseSpec): BuiltRelease {
  const fleet = s.fleet ?? 'test-fleet';
  const v = s.version;
  const issuedAt = isoTime(s.issuedAt);
  const common = { schemaVersion: SCHEMA_VERSION, fleet, releaseVersion: v, issuedAt };
  const channelNames = Object.keys(s.channels);
  const allHosts = channelNames.flatMap((c) => s.channels[c]!);
  const targets = Object.fromEntries(
    allHosts.map((h) => [h, fakeStorePath(`${h}/${s.targetLabel ?? 'a'}`, `nixos-system-${h}`)]),
  );

  const budgetsDoc: DisruptionBudgets = {
    type: 'disruption-budgets',
    ...common,
    budgets: [
      {
        id: 'all',
        selector: { all: true },
        maxInFlight: Math.max(1, Math.ceil(allHosts.length / 4)),
        maxInFlightPct: 25,
        hosts: [...allHosts].sort(),
      },
    ],
  };
  const budgets = writeSigned(s.dir, budgetsPath(v), budgetsDoc, s.signers);

  const plans: Record<string, FileRef> = {};
  const rolloutIds: Record<string, string> = {};
  for (const [ci, channel] of channelNames.entries()) {
    const hosts = s.channels[channel]!;
    const waveOf = (i: number) => (i === 0 ? 0 : 1);
    rolloutIds[channel] = digestOf(`${channel}/${hosts.map((h) => targets[h]).join(',')}`);
    const plan: ChannelPlan = {
      type: 'channel-plan',
      ...common,
      channel,
      rolloutId: rolloutIds[channel]!,
      strategy: 'canary',
      onFailure: 'halt',
      freshnessSeconds: 7200,
      signingIntervalSeconds: 3600,
      confirmDeadlineSeconds: 300,
      heartbeatSeconds: 60,
      offlineWindowSeconds: 600,
      maintenanceWindows: [],
      reboot: 'never',
      deferredHosts: 'hold',
      waves: [0, 1]
        .map((w) => ({
          index: w,
          soakSeconds: 60,
          failureThreshold: { count: 0 },
          offlineExcuseLimit: 0,
          hosts: hosts.filter((_, i) => waveOf(i) === w),
        }))
        .filter((w) => w.hosts.length > 0),
      hosts: Object.fromEntries(
        hosts.map((h, i) => [h, { target: targets[h]!, hostKey: hostKeyOf(h), wave: waveOf(i) }]),
      ),
      hostEdges: [],
      gatedBy: s.gateOnFirst && ci > 0 ? [channelNames[0]!] : [],
    };
    plans[channel] = writeSigned(s.dir, channelPlanPath(v, channel), plan, s.signers);
  }

  const manifests: Record<string, FileRef> = {};
  const indexHosts: ReleaseIndex['hosts'] = {};
  for (const [ci, channel] of channelNames.entries()) {
    for (const [i, host] of s.channels[channel]!.entries()) {
      const manifest: HostManifest = {
        type: 'host-manifest',
        ...common,
        host,
        system: 'x86_64-linux',
        machineId: null,
        hostKey: hostKeyOf(host),
        channel,
        wave: i === 0 ? 0 : 1,
        target: targets[host]!,
        rolloutId: rolloutIds[channel]!,
        plan: plans[channel]!,
        gatingPlans:
          s.gateOnFirst && ci > 0
            ? [{ channel: channelNames[0]!, plan: plans[channelNames[0]!]! }]
            : [],
        budgets,
        probes: [],
        healthyPassesRequired: 1,
        confirmDeadlineSeconds: 300,
        cacheUrl: null,
      };
      manifests[host] = writeSigned(s.dir, hostManifestPath(v, host), manifest, s.signers);
      indexHosts[host] = { channel, manifest: manifests[host]! };
    }
  }

  const index: ReleaseIndex = {
    type: 'release',
    schemaVersion: SCHEMA_VERSION,
    fleet,
    version: v,
    issuedAt,
    rootVersion: s.rootVersion ?? 1,
    fleetDigest: digestOf(`fleet/${v}`),
    source: null,
    channels: Object.fromEntries(
      channelNames.map((c) => [
        c,
        { rolloutId: rolloutIds[c]!, plan: plans[c]!, hostCount: s.channels[c]!.length },
      ]),
    ),
    hosts: indexHosts,
    budgets,
  };
  return {
    index: writeSigned(s.dir, releaseIndexPath(v), index, s.signers),
    manifests,
    plans,
    budgets,
    targets,
  };
}

export interface RevocationsSpec {
  dir: string;
  fleet?: string;
  version: number;
  issuedAt: number;
  hosts?: string[];
  closures?: string[];
  signers: readonly SigningKey[];
}

export function writeRevocations(s: RevocationsSpec): FileRef {
  const at = isoTime(s.issuedAt);
  const doc: Revocations = {
    type: 'revocations',
    schemaVersion: SCHEMA_VERSION,
    fleet: s.fleet ?? 'test-fleet',
    version: s.version,
    issuedAt: at,
    hosts: (s.hosts ?? []).map((host) => ({
      host,
      keyid: null,
      certSerial: null,
      reason: 'test revocation',
      revokedAt: at,
    })),
    closures: (s.closures ?? []).map((storePath) => ({
      storePath,
      reason: 'test revocation',
      revokedAt: at,
    })),
  };
  return writeSigned(s.dir, REVOCATIONS_PATH, doc, s.signers);
}

export interface TimestampSpec {
  dir: string;
  fleet?: string;
  issuedAt: number;
  expiresInMs?: number;
  rootVersion?: number;
  releaseVersion: number;
  index: FileRef;
  revocationsVersion: number;
  revocations: FileRef;
  signers: readonly SigningKey[];
}

export function writeTimestamp(s: TimestampSpec): FileRef {
  const doc: Timestamp = {
    type: 'timestamp',
    schemaVersion: SCHEMA_VERSION,
    fleet: s.fleet ?? 'test-fleet',
    issuedAt: isoTime(s.issuedAt),
    expires: isoTime(s.issuedAt + (s.expiresInMs ?? 4 * HOUR)),
    rootVersion: s.rootVersion ?? 1,
    release: { version: s.releaseVersion, index: s.index },
    revocations: { version: s.revocationsVersion, file: s.revocations },
  };
  return writeSigned(s.dir, TIMESTAMP_PATH, doc, s.signers);
}

export interface StandardTree {
  dir: string;
  keys: TreeKeys;
  root: SignedRoot;
  release: BuiltRelease;
  now: number;
}

/**
 * root/1.json (1 root key, 1 release key valid for a year around `now`), release `version` with channels
 * canary (gating) and prod, revocations v1, a timestamp issued an hour before `now`.
 */
export function buildStandardTree(
  dir: string,
  now: number,
  opts: { version?: number; hostsPerChannel?: number; keys?: TreeKeys } = {},
): StandardTree {
  const keys = opts.keys ?? makeKeys();
  const root = makeRoot({
    issuedAt: now - 30 * DAY,
    rootKeys: keys.root,
    releaseKeys: keys.release.map((key) => ({
      key,
      validFrom: now - 60 * DAY,
      validUntil: now + 300 * DAY,
    })),
  });
  writeRoot(dir, root);
  const n = opts.hostsPerChannel ?? 3;
  const version = opts.version ?? 1;
  const release = writeRelease({
    dir,
    version,
    issuedAt: now - 2 * HOUR,
    channels: {
      canary: Array.from({ length: n }, (_, i) => `canary-${i}`),
      prod: Array.from({ length: n }, (_, i) => `prod-${i}`),
    },
    gateOnFirst: true,
    signers: keys.release,
  });
  const revocations = writeRevocations({
    dir,
    version: 1,
    issuedAt: now - 2 * HOUR,
    signers: keys.release,
  });
  writeTimestamp({
    dir,
    issuedAt: now - HOUR,
    releaseVersion: version,
    index: release.index,
    revocationsVersion: 1,
    revocations,
    signers: keys.release,
  });
  return { dir, keys, root, release, now };
}
