// The current release of a tree, verified end to end against a pinned trust root, as the documents the
// reconciler takes (plans, budgets, revocations). verifyTree audits every document of the release but
// returns only a report; the documents are then re-read here through the digests the verified timestamp
// binds, and the timestamp must be the very one verifyTree accepted, so nothing read afterwards can
// differ from what was verified (a tree swapped in between is refused, not half-believed).
//
// Two entry points: loadVerifiedRelease throws the first failure (status, trace); loadReleaseAllowingStale
// (the dashboard) turns failures into data and, when only the timestamp's freshness failed, still yields
// the documents verified as of the timestamp's last valid second, so a frozen fleet can be shown under a
// red banner instead of not at all.
import { join } from 'node:path';
import { MixAndMatch, Stale, isVerificationError, type VerificationCode } from '../protocol/errors.ts';
import { LIMITS } from '../protocol/limits.ts';
import { TIMESTAMP_PATH, rootPath } from '../protocol/layout.ts';
import { parseIsoTime } from '../protocol/schemas/common.ts';
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
import { hostKeysOfPlans } from './acks.ts';

export interface VerifiedRelease {
  /** The directory whose files were verified (`DIR/current` resolved for a control plane directory). */
  treeRoot: string;
  /** verifyTree's report: every document, revoked hosts, unlisted manifests. */
  report: TreeReport;
  /** The newest root of the verified chain. */
  root: TrustRoot;
  /** Every root envelope walked from the pinned one to `root`, in order. */
  chain: SignedRoot[];
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
  const walked = verifyRootChain(pinnedRoot, (v) => readTreeFile(treeRoot, rootPath(v), LIMITS.root), opts.now);
  const root = walked.root.signed;
  const noneSeen = { highestReleaseVersion: 0, highestTimestampIssuedAt: null, highestRevocationsVersion: 0 };
  const tsBytes = readTreeFile(treeRoot, TIMESTAMP_PATH, LIMITS.timestamp);
  if (tsBytes === undefined) throw new Stale(TIMESTAMP_PATH, 'disappeared after verification');
  const timestamp = verifyTimestamp(readTimestamp(tsBytes, TIMESTAMP_PATH), root, noneSeen, opts.now, opts.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS);
  if (timestamp.issuedAt !== report.timestamp.issuedAt || timestamp.release.version !== report.release.version || root.version !== report.root.version) {
    throw new TreeChangedDuringLoad(`timestamp issued ${timestamp.issuedAt} for release ${timestamp.release.version}, verified ${report.timestamp.issuedAt} for release ${report.release.version}`);
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
  // Sorted, so every reader of the same tree lists channels in the same order.
  for (const [channel, entry] of Object.entries(index.channels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const bytes = read(entry.plan.path, LIMITS.channelPlan, indexRef.path);
    requireFileRef(bytes, entry.plan, entry.plan.path, indexRef.path);
    const plan = readChannelPlan(bytes, entry.plan.path).signed;
    plans[channel] = plan;
  }
  return { treeRoot, report, root, chain: walked.chain, timestamp, index, plans, budgets, revocations, hostKeys: hostKeysOfPlans(plans) };
}

/**
 * The timestamp was replaced between verifyTree and the re-read (a sync or publish in progress). A
 * MixAndMatch like any other, so one-shot commands refuse; the dashboard retries instead.
 */
export class TreeChangedDuringLoad extends MixAndMatch {
  constructor(what: string) {
    super(TIMESTAMP_PATH, `changed while the tree was being verified (a sync in progress?); run the command again (${what})`);
  }
}

export interface VerificationFailure {
  code: VerificationCode;
  file: string;
  detail: string;
}

export type ReleaseLoad =
  | { status: 'verified'; release: VerifiedRelease }
  /**
   * Every signature verifies but the timestamp has expired: hosts activate nothing new. The documents
   * were verified as of `verifiedAsOf` (the timestamp's last valid second).
   */
  | { status: 'stale'; release: VerifiedRelease; failure: VerificationFailure; verifiedAsOf: number }
  | { status: 'failed'; failure: VerificationFailure };

export interface LoadAllowingStaleOptions extends LoadReleaseOptions {
  /** Loads that hit a tree being replaced are retried this often (default 3), then TreeChangedDuringLoad is thrown. */
  attempts?: number;
}

function failureOf(e: unknown): VerificationFailure {
  if (!isVerificationError(e)) throw e;
  return { code: e.code, file: e.file, detail: e.detail };
}

/** Like loadVerifiedRelease, but failures are returned, and an expired timestamp still yields the documents. */
export function loadReleaseAllowingStale(dir: string, pinnedRoot: SignedRoot, opts: LoadAllowingStaleOptions): ReleaseLoad {
  const attempts = opts.attempts ?? 3;
  for (let attempt = 1; ; attempt++) {
    try {
      return loadOnce(dir, pinnedRoot, opts);
    } catch (e) {
      if (!(e instanceof TreeChangedDuringLoad) || attempt >= attempts) throw e;
    }
  }
}

function loadOnce(dir: string, pinnedRoot: SignedRoot, opts: LoadReleaseOptions): ReleaseLoad {
  const at = (now: number): LoadReleaseOptions => ({ now, ...(opts.clockSkewSeconds === undefined ? {} : { clockSkewSeconds: opts.clockSkewSeconds }) });
  try {
    return { status: 'verified', release: loadVerifiedRelease(dir, pinnedRoot, at(opts.now)) };
  } catch (e) {
    if (e instanceof TreeChangedDuringLoad) throw e;
    const failure = failureOf(e);
    if (!(e instanceof Stale) || e.file !== TIMESTAMP_PATH) return { status: 'failed', failure };
    const expires = unverifiedExpiry(dir);
    if (expires === null || expires > opts.now) return { status: 'failed', failure };
    // Verifying as of the timestamp's last valid second proves every signature; only freshness failed.
    const asOf = expires - 1000;
    try {
      return { status: 'stale', release: loadVerifiedRelease(dir, pinnedRoot, at(asOf)), failure, verifiedAsOf: asOf };
    } catch (e2) {
      if (e2 instanceof TreeChangedDuringLoad) throw e2;
      return { status: 'failed', failure: failureOf(e2) };
    }
  }
}

/** The timestamp's claimed expiry, read without trusting it (it is verified right after, as of that instant). */
function unverifiedExpiry(dir: string): number | null {
  const treeRoot = servedRoot(dir);
  if (treeRoot === null) return null;
  try {
    const bytes = readTreeFile(treeRoot, TIMESTAMP_PATH, LIMITS.timestamp);
    return bytes === undefined ? null : parseIsoTime(readTimestamp(bytes, TIMESTAMP_PATH).signed.expires);
  } catch {
    return null;
  }
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
