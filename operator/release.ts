// The current release of a tree, verified end to end against a pinned trust root, as the documents the
// reconciler takes (plans, budgets, revocations). verifyTree audits every document of the release but
// returns only a report; the documents are then re-read here through the digests the verified timestamp
// binds, and the timestamp must be the very one verifyTree accepted, so nothing read afterwards can
// differ from what was verified (a tree swapped in between is refused, not half-believed).
import { join } from 'node:path';
import { MixAndMatch, Stale } from '../protocol/errors.ts';
import { LIMITS } from '../protocol/limits.ts';
import { TIMESTAMP_PATH, rootPath } from '../protocol/layout.ts';
import type { ChannelPlan, DisruptionBudgets, ReleaseIndex } from '../protocol/schemas/release.ts';
import type { Revocations } from '../protocol/schemas/revocations.ts';
import type { Timestamp } from '../protocol/schemas/timestamp.ts';
import type { TrustRoot } from '../protocol/schemas/root.ts';
import { verifyRootChain, type SignedRoot } from '../protocol/trust-root.ts';
import { readTreeFile } from '../protocol/verify/fetcher.ts';
import { readBudgets, readChannelPlan, readReleaseIndex, readTimestamp, requireFileRef } from '../protocol/verify/documents.ts';
import { verifyTree, type TreeReport } from '../protocol/verify/tree.ts';
import { DEFAULT_CLOCK_SKEW_SECONDS, verifyRevocations, verifyTimestamp } from '../protocol/verify/update-trust.ts';
import { servedRoot } from '../control-plane/tree-dir.ts';
import { existsSync } from 'node:fs';

export interface VerifiedRelease {
  /** The directory whose files were verified (`DIR/current` resolved for a control plane directory). */
  treeRoot: string;
  /** verifyTree's report: every document, revoked hosts, unlisted manifests. */
  report: TreeReport;
  root: TrustRoot;
  timestamp: Timestamp;
  index: ReleaseIndex;
  plans: Record<string, ChannelPlan>;
  budgets: DisruptionBudgets;
  revocations: Revocations;
  /** Host -> base64 host key, from the signed channel plans: the only keys an ack may be signed with. */
  hostKeys: Map<string, string>;
}

export interface LoadReleaseOptions {
  /** ms since the epoch: the instant the tree is verified at (freshness, key windows). */
  now: number;
  clockSkewSeconds?: number;
}

/**
 * `dir` is either a tree as `nixfleet publish` writes it or a control plane directory (`current` ->
 * installed tree). Throws the typed VerificationError of the first failure, naming the file.
 */
export function loadVerifiedRelease(dir: string, pinnedRoot: SignedRoot, opts: LoadReleaseOptions): VerifiedRelease {
  const treeRoot = servedRoot(dir);
  if (treeRoot === null || !existsSync(treeRoot)) throw new Stale(TIMESTAMP_PATH, `no tree installed in ${dir}`);
  const report = verifyTree(treeRoot, pinnedRoot, opts);

  const read = (path: string, max: number, boundBy: string): Uint8Array => {
    const bytes = readTreeFile(treeRoot, path, max);
    if (bytes === undefined) throw new MixAndMatch(path, `is missing, but ${boundBy} binds it`);
    return bytes;
  };
  const root = verifyRootChain(pinnedRoot, (v) => readTreeFile(treeRoot, rootPath(v), LIMITS.root), opts.now).root.signed;
  const noneSeen = { highestReleaseVersion: 0, highestTimestampIssuedAt: null, highestRevocationsVersion: 0 };
  const tsBytes = readTreeFile(treeRoot, TIMESTAMP_PATH, LIMITS.timestamp);
  if (tsBytes === undefined) throw new Stale(TIMESTAMP_PATH, 'disappeared after verification');
  const timestamp = verifyTimestamp(readTimestamp(tsBytes, TIMESTAMP_PATH), root, noneSeen, opts.now, opts.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS);
  if (timestamp.issuedAt !== report.timestamp.issuedAt || timestamp.release.version !== report.release.version || root.version !== report.root.version) {
    throw new MixAndMatch(TIMESTAMP_PATH, 'changed while the tree was being verified (a sync in progress?); run the command again');
  }

  const revPath = timestamp.revocations.file.path;
  const revocations = verifyRevocations(read(revPath, LIMITS.revocations, TIMESTAMP_PATH), timestamp, root, noneSeen, revPath).signed;

  const indexRef = timestamp.release.index;
  const indexBytes = read(indexRef.path, LIMITS.releaseIndex, TIMESTAMP_PATH);
  requireFileRef(indexBytes, indexRef, indexRef.path, TIMESTAMP_PATH);
  const index = readReleaseIndex(indexBytes, indexRef.path).signed;

  const budgetsBytes = read(index.budgets.path, LIMITS.budgets, indexRef.path);
  requireFileRef(budgetsBytes, index.budgets, index.budgets.path, indexRef.path);
  const budgets = readBudgets(budgetsBytes, index.budgets.path).signed;

  const plans: Record<string, ChannelPlan> = {};
  const hostKeys = new Map<string, string>();
  for (const [channel, entry] of Object.entries(index.channels)) {
    const bytes = read(entry.plan.path, LIMITS.channelPlan, indexRef.path);
    requireFileRef(bytes, entry.plan, entry.plan.path, indexRef.path);
    const plan = readChannelPlan(bytes, entry.plan.path).signed;
    plans[channel] = plan;
    for (const [host, h] of Object.entries(plan.hosts)) hostKeys.set(host, h.hostKey);
  }
  return { treeRoot, report, root, timestamp, index, plans, budgets, revocations, hostKeys };
}

/** Where a directory's acks live: `DIR/acks` in both layouts (the ack endpoint keeps them beside `current`). */
export function acksDirOf(dir: string): string {
  return join(dir, 'acks');
}

/** The ack endpoint's default log location for a control plane directory, if one exists there. */
export function defaultAckLogOf(dir: string): string | null {
  const p = join(dir, '.ack-log', 'acks.log');
  return existsSync(p) ? p : null;
}
