// What the control plane needs to know about the installed release: which hosts exist, their host keys
// (to check ack signatures), their channel and wave (to build bundles), and what is revoked. Built from
// the documents of one release walk: `cp sync` and a server given a pinned root use the documents the
// walk verified (releaseViewOf); a server without a root trusts what `cp sync` installed and reads the
// same chain timestamp -> index -> plans with the shared readers, checking every FileRef binding (digest
// and length), so the view is one consistent release (loadReleaseView).
import {
  MixAndMatch,
  Malformed,
  LIMITS,
  TIMESTAMP_PATH,
  keyIdOf,
  unb64,
  type ChannelPlan,
  type ReleaseIndex,
  type Revocations,
  type Timestamp,
  type FileRef,
  type SignedRoot,
  readTreeFile,
  readChannelPlan,
  readReleaseIndex,
  readRevocations,
  readTimestamp,
  requireFileRef,
  auditTree,
  type TreeReport,
  diskTreeSource,
} from '../protocol/index.ts';

export interface HostEntry {
  channel: string;
  wave: number;
  hostKey: string;
  keyid: string;
}

export interface ReleaseView {
  fleet: string;
  releaseVersion: number;
  timestampIssuedAt: string;
  /** The timestamp's expiry: past it hosts activate nothing new (the /metrics gauge). */
  timestampExpires: string;
  revocationsVersion: number;
  /** The release's channel plans (host phases for /metrics). */
  plans: Record<string, ChannelPlan>;
  hosts: Map<string, HostEntry>;
  /** channel -> wave index -> host names */
  waves: Map<string, string[][]>;
  /** Uppercase hex serials, leading zeros stripped (see normalizeSerial). */
  revokedSerials: Set<string>;
  /** Hosts revoked whole (keyid null in revocations.json). */
  revokedHosts: Set<string>;
  /** Individual host keys revoked. */
  revokedKeyIds: Set<string>;
}

/** Serials compare as numbers: nginx, Node and openssl differ in leading zeros. */
export function normalizeSerial(serial: string): string {
  const s = serial.toUpperCase().replace(/^0+/, '');
  return s === '' ? '0' : s;
}

/** The documents a view is built from (the release walk's, or the unverified read below). */
export interface ReleaseDocuments {
  timestamp: Timestamp;
  index: ReleaseIndex;
  plans: Record<string, ChannelPlan>;
  revocations: Revocations;
}

/** Verifies the tree with the release walk (every document, against the pinned root) and builds the view from what it verified. */
export async function loadVerifiedReleaseView(
  treeRoot: string,
  pinnedRoot: SignedRoot,
  now: number,
): Promise<{ view: ReleaseView; report: TreeReport }> {
  const { report, release } = await auditTree(diskTreeSource(treeRoot), pinnedRoot, { now });
  const view = releaseViewOf({
    timestamp: release.timestamp.signed,
    index: release.index,
    plans: release.plans,
    revocations: release.revocations.signed,
  });
  return { view, report };
}

function readBound(root: string, ref: FileRef, limit: number, boundBy: string): Uint8Array {
  const bytes = readTreeFile(root, ref.path, limit);
  if (bytes === undefined)
    throw new Malformed(ref.path, 'referenced file is missing from the tree');
  requireFileRef(bytes, ref, ref.path, boundBy);
  return bytes;
}

/** The installed tree's view without signature checks (a server without a pinned root trusts `cp sync`). */
export function loadReleaseView(treeRoot: string): ReleaseView {
  const tsBytes = readTreeFile(treeRoot, TIMESTAMP_PATH, LIMITS.timestamp);
  if (tsBytes === undefined) throw new Malformed(TIMESTAMP_PATH, 'missing from the tree');
  const timestamp = readTimestamp(tsBytes, TIMESTAMP_PATH).signed;
  const indexRef = timestamp.release.index;
  const index = readReleaseIndex(
    readBound(treeRoot, indexRef, LIMITS.releaseIndex, TIMESTAMP_PATH),
    indexRef.path,
  ).signed;
  if (index.version !== timestamp.release.version)
    throw new MixAndMatch(
      indexRef.path,
      `release version ${index.version} but the timestamp names ${timestamp.release.version}`,
    );
  const revRef = timestamp.revocations.file;
  const revocations = readRevocations(
    readBound(treeRoot, revRef, LIMITS.revocations, TIMESTAMP_PATH),
    revRef.path,
  ).signed;
  const plans: Record<string, ChannelPlan> = {};
  for (const [channel, ch] of Object.entries(index.channels)) {
    const plan = readChannelPlan(
      readBound(treeRoot, ch.plan, LIMITS.channelPlan, indexRef.path),
      ch.plan.path,
    ).signed;
    if (plan.channel !== channel || plan.releaseVersion !== index.version) {
      throw new MixAndMatch(
        ch.plan.path,
        `plan is for channel ${plan.channel} release ${plan.releaseVersion}, expected ${channel} release ${index.version}`,
      );
    }
    plans[channel] = plan;
  }
  return releaseViewOf({ timestamp, index, plans, revocations });
}

export function releaseViewOf(docs: ReleaseDocuments): ReleaseView {
  const { timestamp, index, revocations: rev } = docs;
  const hosts = new Map<string, HostEntry>();
  const waves = new Map<string, string[][]>();
  for (const [channel, plan] of Object.entries(docs.plans)) {
    waves.set(
      channel,
      plan.waves.map((w) => [...w.hosts]),
    );
    for (const [host, h] of Object.entries(plan.hosts)) {
      hosts.set(host, {
        channel,
        wave: h.wave,
        hostKey: h.hostKey,
        keyid: keyIdOf(unb64(h.hostKey)),
      });
    }
  }
  for (const host of Object.keys(index.hosts)) {
    if (!hosts.has(host))
      throw new MixAndMatch(
        timestamp.release.index.path,
        `host ${host} is in the index but in no channel plan`,
      );
  }
  const revokedSerials = new Set<string>();
  const revokedHosts = new Set<string>();
  const revokedKeyIds = new Set<string>();
  for (const r of rev.hosts) {
    if (r.certSerial) revokedSerials.add(normalizeSerial(r.certSerial));
    if (r.keyid === null) revokedHosts.add(r.host);
    else revokedKeyIds.add(r.keyid);
  }
  return {
    fleet: index.fleet,
    releaseVersion: index.version,
    timestampIssuedAt: timestamp.issuedAt,
    timestampExpires: timestamp.expires,
    revocationsVersion: rev.version,
    plans: docs.plans,
    hosts,
    waves,
    revokedSerials,
    revokedHosts,
    revokedKeyIds,
  };
}

/** Why a host may not post acks, or null when it may. */
export function hostRefusal(view: ReleaseView, host: string): string | null {
  const entry = view.hosts.get(host);
  if (!entry) return `host ${host} is not in release ${view.releaseVersion}`;
  if (view.revokedHosts.has(host)) return `host ${host} is revoked`;
  if (view.revokedKeyIds.has(entry.keyid)) return `the host key of ${host} is revoked`;
  return null;
}
