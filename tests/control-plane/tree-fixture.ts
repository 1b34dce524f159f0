// Small signed trees for control-plane tests, built directly with the protocol signing code (a few
// hosts, one or two channels), so these tests do not depend on the publisher's fleet pipeline.
import { mkdirSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { envelopeBytes, signDocument } from '../../protocol/envelope.ts';
import { canonicalString, sha256Digest } from '../../protocol/canonical.ts';
import type { LogRecord } from '../../protocol/ack-log.ts';
import { b64, newSigningKey, type SigningKey } from '../../protocol/keys.ts';
import { createRoot, signRoot, type SignedRoot } from '../../protocol/trust-root.ts';
import {
  budgetsPath,
  channelPlanPath,
  hostManifestPath,
  releaseIndexPath,
  rootPath,
  TIMESTAMP_PATH,
} from '../../protocol/layout.ts';
import { isoTime, SCHEMA_VERSION, type FileRef } from '../../protocol/schemas/common.ts';
import { signAck, ackDigest, type SignedAck } from '../../protocol/acks.ts';
import type { Ack } from '../../protocol/schemas/ack.ts';

export const FLEET = 'test';
const TARGET = '/nix/store/0123456789abcdfghijklmnpqrsvwxyz-system';

export interface FixtureHost {
  name: string;
  channel: string;
  wave: number;
  key: SigningKey;
}

export interface FixtureKeys {
  root: SigningKey;
  release: SigningKey;
  signedRoot: SignedRoot;
}

export function fixtureKeys(nowMs = Date.now()): FixtureKeys {
  const root = newSigningKey('root');
  const release = newSigningKey('release');
  const doc = createRoot({
    fleet: FLEET,
    version: 1,
    issuedAt: isoTime(nowMs - 3600_000),
    expires: isoTime(nowMs + 30 * 86400_000),
    rootKeys: [root],
    rootThreshold: 1,
    releaseKeys: [
      {
        key: release,
        validFrom: isoTime(nowMs - 86400_000),
        validUntil: isoTime(nowMs + 30 * 86400_000),
      },
    ],
    releaseThreshold: 1,
    cacheKeys: [],
  });
  return { root, release, signedRoot: signRoot(doc, [root]) };
}

export function fixtureHosts(
  spec: Record<string, { channel?: string; wave?: number }>,
): FixtureHost[] {
  return Object.entries(spec).map(([name, s]) => ({
    name,
    channel: s.channel ?? 'prod',
    wave: s.wave ?? 0,
    key: newSigningKey(name),
  }));
}

export interface TreeSpec {
  keys: FixtureKeys;
  hosts: FixtureHost[];
  version: number;
  /** Seconds offset of the timestamp's issuedAt from now (negative = in the past). */
  issuedOffsetSeconds?: number;
  revokedHosts?: { host: string; certSerial?: string | null; keyid?: string | null }[];
  revocationsVersion?: number;
  nowMs?: number;
}

/** Writes releases/<v>/, revocations, timestamp and root/1.json into `dir` (merging with what is there). */
export function writeTree(dir: string, spec: TreeSpec): void {
  const now = spec.nowMs ?? Date.now();
  const issuedAt = isoTime(now + (spec.issuedOffsetSeconds ?? -60) * 1000);
  const v = spec.version;
  const sign = (path: string, doc: unknown): FileRef => {
    const bytes = envelopeBytes(signDocument(doc, [spec.keys.release]));
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), bytes);
    return { path, digest: sha256Digest(bytes), length: bytes.length };
  };
  mkdirSync(join(dir, 'root'), { recursive: true });
  writeFileSync(join(dir, rootPath(1)), envelopeBytes(spec.keys.signedRoot));
  const common = { schemaVersion: SCHEMA_VERSION, fleet: FLEET, releaseVersion: v, issuedAt };
  const budgets = sign(budgetsPath(v), { type: 'disruption-budgets', ...common, budgets: [] });
  const channels = [...new Set(spec.hosts.map((h) => h.channel))].sort();
  const plans = new Map<string, { ref: FileRef; rolloutId: string; count: number }>();
  for (const ch of channels) {
    const members = spec.hosts.filter((h) => h.channel === ch);
    const waveCount = Math.max(...members.map((h) => h.wave)) + 1;
    const rolloutId = sha256Digest(`${ch}/${v}`);
    const plan = {
      type: 'channel-plan',
      ...common,
      channel: ch,
      rolloutId,
      strategy: 'staged',
      onFailure: 'halt',
      freshnessSeconds: 3600,
      signingIntervalSeconds: 600,
      confirmDeadlineSeconds: 120,
      heartbeatSeconds: 60,
      offlineWindowSeconds: 600,
      maintenanceWindows: [],
      waves: Array.from({ length: waveCount }, (_, i) => ({
        index: i,
        soakSeconds: 0,
        failureThreshold: { count: 0 },
        offlineExcuseLimit: 0,
        hosts: members
          .filter((h) => h.wave === i)
          .map((h) => h.name)
          .sort(),
      })),
      hosts: Object.fromEntries(
        members.map((h) => [
          h.name,
          { target: TARGET, hostKey: b64(h.key.publicKey), wave: h.wave },
        ]),
      ),
      hostEdges: [],
      gatedBy: [],
    };
    plans.set(ch, { ref: sign(channelPlanPath(v, ch), plan), rolloutId, count: members.length });
  }
  const hostsIndex: Record<string, { channel: string; manifest: FileRef }> = {};
  for (const h of spec.hosts) {
    const p = plans.get(h.channel)!;
    const manifest = {
      type: 'host-manifest',
      ...common,
      host: h.name,
      system: 'x86_64-linux',
      machineId: null,
      hostKey: b64(h.key.publicKey),
      channel: h.channel,
      wave: h.wave,
      target: TARGET,
      rolloutId: p.rolloutId,
      plan: p.ref,
      gatingPlans: [],
      budgets,
      probes: [],
      healthyPassesRequired: 1,
      confirmDeadlineSeconds: 120,
      cacheUrl: null,
    };
    hostsIndex[h.name] = {
      channel: h.channel,
      manifest: sign(hostManifestPath(v, h.name), manifest),
    };
  }
  const index = sign(releaseIndexPath(v), {
    type: 'release',
    schemaVersion: SCHEMA_VERSION,
    fleet: FLEET,
    version: v,
    issuedAt,
    rootVersion: 1,
    fleetDigest: sha256Digest('fleet'),
    source: null,
    channels: Object.fromEntries(
      channels.map((c) => [
        c,
        {
          rolloutId: plans.get(c)!.rolloutId,
          plan: plans.get(c)!.ref,
          hostCount: plans.get(c)!.count,
        },
      ]),
    ),
    hosts: hostsIndex,
    budgets,
  });
  const revVersion = spec.revocationsVersion ?? v;
  const revocations = sign(`revocations.json`, {
    type: 'revocations',
    schemaVersion: SCHEMA_VERSION,
    fleet: FLEET,
    version: revVersion,
    issuedAt,
    hosts: (spec.revokedHosts ?? []).map((r) => ({
      host: r.host,
      keyid: r.keyid ?? null,
      certSerial: r.certSerial ?? null,
      reason: 'test',
      revokedAt: issuedAt,
    })),
    closures: [],
  });
  sign(TIMESTAMP_PATH, {
    type: 'timestamp',
    schemaVersion: SCHEMA_VERSION,
    fleet: FLEET,
    issuedAt,
    expires: isoTime(now + 3600_000),
    rootVersion: 1,
    release: { version: v, index },
    revocations: { version: revVersion, file: revocations },
  });
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `nixfleet-${prefix}-`));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** A chain of acks for one host. */
export class AckChain {
  seq = 0;
  prev: string | null = null;
  constructor(
    readonly host: FixtureHost,
    readonly releaseVersion = 1,
  ) {}

  make(overrides: Partial<Ack> = {}): SignedAck {
    const seq = overrides.seq ?? this.seq + 1;
    const ack: Ack = {
      type: 'ack',
      schemaVersion: SCHEMA_VERSION,
      fleet: FLEET,
      host: this.host.name,
      seq,
      prev: seq === 1 ? null : this.prev,
      time: isoTime(Date.now()),
      kind: 'heartbeat',
      releaseVersion: this.releaseVersion,
      rolloutId: null,
      target: null,
      current: TARGET,
      healthySince: null,
      probes: [],
      reason: null,
      ...overrides,
    };
    return signAck(ack, this.host.key);
  }

  /** Moves the chain past `ack` (made with make()). */
  advance(ack: SignedAck): void {
    this.seq = ack.signed.seq;
    this.prev = ackDigest(ack);
  }

  /** Makes the next ack and advances the chain (as if it was accepted). */
  next(overrides: Partial<Ack> = {}): SignedAck {
    const a = this.make(overrides);
    this.seq = a.signed.seq;
    this.prev = ackDigest(a);
    return a;
  }
}

/**
 * A log record of `value`: its canonical JSON and that text's digest, as the endpoint frames an ack.
 * The framing never looks inside, so tests of the log's files frame any value they need.
 */
export function logRecordOf(value: unknown): LogRecord {
  const canonical = canonicalString(value);
  return { digest: sha256Digest(canonical), canonical };
}
