// What the control plane needs to know about the installed release: which hosts exist, their host keys
// (to check ack signatures), their channel and wave (to build bundles), and what is revoked. Read from
// the signed documents of the tree: timestamp -> release index -> channel plans, and revocations.
// Every FileRef binding (digest and length) is checked, so the view is one consistent release; the
// signatures themselves are checked by verifyTree when the tree is installed (cp sync) or at load when
// a pinned root is given.
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readEnvelope } from '../protocol/document.ts';
import { sha256Digest } from '../protocol/canonical.ts';
import { MixAndMatch, Malformed, TooLarge } from '../protocol/errors.ts';
import { LIMITS } from '../protocol/limits.ts';
import { TIMESTAMP_PATH } from '../protocol/layout.ts';
import { keyIdOf, unb64 } from '../protocol/keys.ts';
import { Timestamp } from '../protocol/schemas/timestamp.ts';
import { ReleaseIndex, ChannelPlan } from '../protocol/schemas/release.ts';
import { Revocations } from '../protocol/schemas/revocations.ts';
import type { FileRef } from '../protocol/schemas/common.ts';

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
  revocationsVersion: number;
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

function readBound(root: string, ref: FileRef, limit: number): Buffer {
  const full = join(root, ref.path);
  let size: number;
  try {
    size = statSync(full).size;
  } catch {
    throw new Malformed(ref.path, 'referenced file is missing from the tree');
  }
  if (size > limit) throw new TooLarge(ref.path, `${size} bytes exceeds the limit of ${limit}`);
  const bytes = readFileSync(full);
  if (bytes.length !== ref.length || sha256Digest(bytes) !== ref.digest) {
    throw new MixAndMatch(ref.path, `content does not match the digest/length bound by its referrer (${ref.digest.slice(0, 20)}…, ${ref.length} bytes)`);
  }
  return bytes;
}

function readTop(root: string, path: string, limit: number): Buffer {
  let size: number;
  try {
    size = statSync(join(root, path)).size;
  } catch {
    throw new Malformed(path, 'missing from the tree');
  }
  if (size > limit) throw new TooLarge(path, `${size} bytes exceeds the limit of ${limit}`);
  return readFileSync(join(root, path));
}

export function loadReleaseView(treeRoot: string): ReleaseView {
  const ts = readEnvelope(readTop(treeRoot, TIMESTAMP_PATH, LIMITS.timestamp), Timestamp, { file: TIMESTAMP_PATH, maxBytes: LIMITS.timestamp, expectType: 'timestamp' }).signed;
  const indexRef = ts.release.index;
  const index = readEnvelope(readBound(treeRoot, indexRef, LIMITS.releaseIndex), ReleaseIndex, { file: indexRef.path, maxBytes: LIMITS.releaseIndex, expectType: 'release' }).signed;
  if (index.version !== ts.release.version) throw new MixAndMatch(indexRef.path, `release version ${index.version} but the timestamp names ${ts.release.version}`);
  const revRef = ts.revocations.file;
  const rev = readEnvelope(readBound(treeRoot, revRef, LIMITS.revocations), Revocations, { file: revRef.path, maxBytes: LIMITS.revocations, expectType: 'revocations' }).signed;

  const hosts = new Map<string, HostEntry>();
  const waves = new Map<string, string[][]>();
  for (const [channel, ch] of Object.entries(index.channels)) {
    const plan = readEnvelope(readBound(treeRoot, ch.plan, LIMITS.channelPlan), ChannelPlan, { file: ch.plan.path, maxBytes: LIMITS.channelPlan, expectType: 'channel-plan' }).signed;
    if (plan.channel !== channel || plan.releaseVersion !== index.version) {
      throw new MixAndMatch(ch.plan.path, `plan is for channel ${plan.channel} release ${plan.releaseVersion}, expected ${channel} release ${index.version}`);
    }
    const waveHosts: string[][] = plan.waves.map((w) => [...w.hosts]);
    waves.set(channel, waveHosts);
    for (const [host, h] of Object.entries(plan.hosts)) {
      hosts.set(host, { channel, wave: h.wave, hostKey: h.hostKey, keyid: keyIdOf(unb64(h.hostKey)) });
    }
  }
  for (const host of Object.keys(index.hosts)) {
    if (!hosts.has(host)) throw new MixAndMatch(indexRef.path, `host ${host} is in the index but in no channel plan`);
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
    timestampIssuedAt: ts.issuedAt,
    revocationsVersion: rev.version,
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
