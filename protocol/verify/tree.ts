// The auditor's verifier: everything an agent checks, for every host of the current release, plus the
// release index that binds the whole release (the timestamp binds the index digest; the index binds
// every manifest, plan and the budgets file). Reads each file once; needs only the tree and a pinned root.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { MixAndMatch, Stale } from '../errors.ts';
import { LIMITS } from '../limits.ts';
import { TIMESTAMP_PATH, hostManifestPath, rootPath } from '../layout.ts';
import { isoTime } from '../schemas/common.ts';
import type { FileRef } from '../schemas/common.ts';
import type { ChannelPlan, ReleaseIndex } from '../schemas/release.ts';
import { releaseKeysValidAt, verifyReleaseSigned, verifyRootChain, type SignedRoot } from '../trust-root.ts';
import { readTreeFile } from './fetcher.ts';
import { DEFAULT_CLOCK_SKEW_SECONDS, verifyRevocations, verifyTimestamp } from './update-trust.ts';
import { readBudgets, readChannelPlan, readHostManifest, readReleaseIndex, readTimestamp, requireFileRef, requireFleet, verifyReleaseDocument } from './documents.ts';
import { checkGatingPlan, checkManifestAgainstPlan, checkManifestIdentity, checkNotRevoked } from './host-view.ts';
import { isVerificationError } from '../errors.ts';
import { signedTextOf } from '../envelope.ts';
import { unb64, type PublicKey } from '../keys.ts';
import { parseIsoTime } from '../schemas/common.ts';
import type { HostManifest } from '../schemas/release.ts';
import type { SignedDocument } from '../schemas/envelope.ts';
import type { TrustRoot } from '../schemas/root.ts';
import { verifyBatch, type SignatureJob } from './batch-verify.ts';

export interface DocumentResult {
  file: string;
  type: 'root' | 'timestamp' | 'revocations' | 'release' | 'channel-plan' | 'disruption-budgets' | 'host-manifest';
  result: 'ok' | 'revoked';
  detail?: string;
}

export interface TreeReport {
  /** False when the tree verified but holds findings an auditor must look at (unlisted manifests). */
  ok: boolean;
  fleet: string;
  verifiedAt: string;
  root: { version: number; expires: string; chain: number[] };
  timestamp: { issuedAt: string; expires: string };
  release: { version: number; issuedAt: string; hosts: number; channels: string[] };
  revocations: { version: number; hosts: number; closures: number };
  documents: DocumentResult[];
  /** Hosts (or their targets) the revocations list names: an agent would refuse them. */
  revokedHosts: { host: string; file: string; detail: string }[];
  /** Manifest files of the current release that the index does not list. */
  unlistedManifests: string[];
}

export interface VerifyTreeOptions {
  now: number;
  clockSkewSeconds?: number;
}

function sameRef(a: FileRef, b: FileRef): boolean {
  return a.path === b.path && a.digest === b.digest && a.length === b.length;
}

export function verifyTree(treeDir: string, pinnedRoot: SignedRoot, opts: VerifyTreeOptions): TreeReport {
  const read = (path: string, max: number) => readTreeFile(treeDir, path, max);
  const need = (path: string, max: number, boundBy: string): Uint8Array => {
    const b = read(path, max);
    if (b === undefined) throw new MixAndMatch(path, `is missing, but ${boundBy} binds it`);
    return b;
  };
  const documents: DocumentResult[] = [];

  const { root: rootEnv, chain } = verifyRootChain(pinnedRoot, (v) => read(rootPath(v), LIMITS.root), opts.now);
  const root = rootEnv.signed;
  for (const r of chain.slice(1)) documents.push({ file: rootPath(r.signed.version), type: 'root', result: 'ok' });

  const tsBytes = read(TIMESTAMP_PATH, LIMITS.timestamp);
  if (tsBytes === undefined) throw new Stale(TIMESTAMP_PATH, 'not found: no fresh timestamp is available');
  const noneSeen = { highestReleaseVersion: 0, highestTimestampIssuedAt: null, highestRevocationsVersion: 0 };
  const ts = verifyTimestamp(readTimestamp(tsBytes, TIMESTAMP_PATH), root, noneSeen, opts.now, opts.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS);
  documents.push({ file: TIMESTAMP_PATH, type: 'timestamp', result: 'ok' });

  const revPath = ts.revocations.file.path;
  const revocations = verifyRevocations(need(revPath, LIMITS.revocations, TIMESTAMP_PATH), ts, root, noneSeen, revPath).signed;
  documents.push({ file: revPath, type: 'revocations', result: 'ok' });

  const version = ts.release.version;
  const indexRef = ts.release.index;
  const indexBytes = need(indexRef.path, LIMITS.releaseIndex, TIMESTAMP_PATH);
  const indexEnv = readReleaseIndex(indexBytes, indexRef.path);
  verifyReleaseSigned(indexEnv, root, indexRef.path, undefined, indexBytes);
  const index: ReleaseIndex = indexEnv.signed;
  requireFleet(index, root, indexRef.path);
  requireFileRef(indexBytes, indexRef, indexRef.path, TIMESTAMP_PATH);
  if (index.version !== version) throw new MixAndMatch(indexRef.path, `is release ${index.version}, the timestamp names release ${version}`);
  if (index.rootVersion > root.version) throw new MixAndMatch(indexRef.path, `was signed under trust root v${index.rootVersion}, newer than v${root.version}`);
  documents.push({ file: indexRef.path, type: 'release', result: 'ok' });

  const budgetsBytes = need(index.budgets.path, LIMITS.budgets, indexRef.path);
  verifyReleaseDocument(readBudgets(budgetsBytes, index.budgets.path), root, index.budgets.path, version, budgetsBytes);
  requireFileRef(budgetsBytes, index.budgets, index.budgets.path, indexRef.path);
  documents.push({ file: index.budgets.path, type: 'disruption-budgets', result: 'ok' });

  const plans = new Map<string, ChannelPlan>();
  for (const [channel, entry] of Object.entries(index.channels)) {
    const file = entry.plan.path;
    const bytes = need(file, LIMITS.channelPlan, indexRef.path);
    const plan = verifyReleaseDocument(readChannelPlan(bytes, file), root, file, version, bytes);
    requireFileRef(bytes, entry.plan, file, indexRef.path);
    checkGatingPlan(channel, plan, file);
    if (plan.rolloutId !== entry.rolloutId) throw new MixAndMatch(file, `rolloutId ${plan.rolloutId} differs from the index's ${entry.rolloutId}`);
    const planHosts = Object.keys(plan.hosts);
    if (planHosts.length !== entry.hostCount) throw new MixAndMatch(file, `lists ${planHosts.length} hosts, the index says ${entry.hostCount}`);
    for (const h of planHosts) {
      if (index.hosts[h]?.channel !== channel) throw new MixAndMatch(file, `lists host "${h}", which the index does not place in channel "${channel}"`);
    }
    for (const g of plan.gatedBy) if (!index.channels[g]) throw new MixAndMatch(file, `is gated by channel "${g}", which the index does not list`);
    plans.set(channel, plan);
    documents.push({ file, type: 'channel-plan', result: 'ok' });
  }

  // Manifests are the bulk of the work: read and parse all, verify their signatures as one batch on
  // every core, then check each one's bindings in index order.
  const hostEntries = Object.entries(index.hosts);
  const loaded = hostEntries.map(([host, entry]) => {
    const file = hostManifestPath(version, host);
    // Agents fetch their manifest by this path: the index must bind exactly the file they read.
    if (entry.manifest.path !== file) throw new MixAndMatch(indexRef.path, `binds ${entry.manifest.path} for host "${host}", agents read ${file}`);
    const bytes = need(file, LIMITS.hostManifest, indexRef.path);
    return { host, entry, file, bytes, env: readHostManifest(bytes, file) };
  });
  const preverified = preverifySignatures(loaded, root);

  const revokedHosts: TreeReport['revokedHosts'] = [];
  const listed = new Set<string>();
  for (const [i, { host, entry, file, bytes, env }] of loaded.entries()) {
    listed.add(`${host}.json`);
    const manifest = preverified[i] ? env.signed : verifyReleaseDocument(env, root, file, version, bytes);
    requireFleet(manifest, root, file);
    if (manifest.releaseVersion !== version) throw new MixAndMatch(file, `belongs to release ${manifest.releaseVersion}, the timestamp names release ${version}`);
    checkManifestIdentity(manifest, host, file);
    requireFileRef(bytes, entry.manifest, file, indexRef.path);
    const channelEntry = index.channels[manifest.channel];
    const plan = plans.get(manifest.channel);
    if (manifest.channel !== entry.channel || !channelEntry || !plan) throw new MixAndMatch(file, `channel "${manifest.channel}" differs from the index ("${entry.channel}")`);
    if (!sameRef(manifest.plan, channelEntry.plan)) throw new MixAndMatch(file, `binds a plan other than the index's for channel "${manifest.channel}"`);
    if (!sameRef(manifest.budgets, index.budgets)) throw new MixAndMatch(file, 'binds a budgets file other than the index\'s');
    checkManifestAgainstPlan(manifest, plan, file);
    const gated = new Set(plan.gatedBy);
    if (manifest.gatingPlans.length !== gated.size) throw new MixAndMatch(file, `binds ${manifest.gatingPlans.length} gating plans, its channel is gated by ${gated.size}`);
    for (const g of manifest.gatingPlans) {
      const ge = index.channels[g.channel];
      if (!gated.has(g.channel) || !ge || !sameRef(g.plan, ge.plan)) throw new MixAndMatch(file, `binds a gating plan for "${g.channel}" other than the index's`);
    }
    try {
      checkNotRevoked(manifest, revocations, file);
      documents.push({ file, type: 'host-manifest', result: 'ok' });
    } catch (e) {
      if (!isVerificationError(e) || e.code !== 'Revoked') throw e;
      revokedHosts.push({ host, file, detail: e.detail });
      documents.push({ file, type: 'host-manifest', result: 'revoked', detail: e.detail });
    }
  }

  const unlistedManifests = listManifestFiles(treeDir, version).filter((f) => !listed.has(f)).map((f) => `releases/${version}/hosts/${f}`);
  return {
    ok: unlistedManifests.length === 0,
    fleet: root.fleet,
    verifiedAt: isoTime(opts.now),
    root: { version: root.version, expires: root.expires, chain: chain.map((r) => r.signed.version) },
    timestamp: { issuedAt: ts.issuedAt, expires: ts.expires },
    release: { version, issuedAt: index.issuedAt, hosts: listed.size, channels: [...plans.keys()] },
    revocations: { version: revocations.version, hosts: revocations.hosts.length, closures: revocations.closures.length },
    documents,
    revokedHosts,
    unlistedManifests,
  };
}

/**
 * Per manifest: true when its release signatures are established by the batch (rejectBefore passed,
 * every signature by a key valid at its issuedAt verified, threshold met), i.e. exactly when
 * verifyReleaseSigned would accept it. False sends it through verifyReleaseDocument, which decides
 * the remaining cases and throws the typed error.
 */
function preverifySignatures(loaded: readonly { bytes: Uint8Array; env: SignedDocument<HostManifest> }[], root: TrustRoot): boolean[] {
  const keysAt = new Map<string, Map<string, PublicKey>>();
  const rejectBefore = root.rejectBefore === null ? -Infinity : parseIsoTime(root.rejectBefore);
  const jobs: SignatureJob[] = [];
  const plan = loaded.map(({ bytes, env }) => {
    const issuedAt = parseIsoTime(env.signed.issuedAt);
    if (issuedAt < rejectBefore) return undefined;
    let keys = keysAt.get(env.signed.issuedAt);
    if (!keys) keysAt.set(env.signed.issuedAt, (keys = releaseKeysValidAt(root, issuedAt)));
    const text = signedTextOf(bytes, env.signatures);
    if (!text) return undefined;
    const first = jobs.length;
    const signers = new Set<string>();
    for (const s of env.signatures) {
      const key = keys.get(s.keyid);
      if (!key) continue;
      signers.add(s.keyid);
      jobs.push({ publicKey: key.publicKey, message: text, signature: unb64(s.sig) });
    }
    if (signers.size < root.releaseThreshold) return undefined;
    return { first, count: jobs.length - first };
  });
  const results = verifyBatch(jobs);
  return plan.map((p) => p !== undefined && results.slice(p.first, p.first + p.count).every(Boolean));
}

function listManifestFiles(treeDir: string, version: number): string[] {
  try {
    return readdirSync(join(treeDir, 'releases', String(version), 'hosts')).filter((f) => !f.startsWith('.'));
  } catch {
    return [];
  }
}
