// The dashboard shows only what verifies: it runs the auditor's verifyTree over the served tree, then
// loads the documents the reconciler needs, each bound by digest to the timestamp verifyTree accepted.
// A tree that does not verify yields the typed error and no documents at all.
import { MixAndMatch, Stale, isVerificationError, type VerificationCode } from '../protocol/errors.ts';
import { LIMITS } from '../protocol/limits.ts';
import { TIMESTAMP_PATH, rootPath } from '../protocol/layout.ts';
import { parseIsoTime } from '../protocol/schemas/common.ts';
import type { ChannelPlan, DisruptionBudgets, ReleaseIndex } from '../protocol/schemas/release.ts';
import type { Revocations } from '../protocol/schemas/revocations.ts';
import type { Timestamp } from '../protocol/schemas/timestamp.ts';
import { verifyReleaseSigned, verifyRootChain, type SignedRoot } from '../protocol/trust-root.ts';
import { readTreeFile } from '../protocol/verify/fetcher.ts';
import { readBudgets, readChannelPlan, readReleaseIndex, readTimestamp, requireFileRef } from '../protocol/verify/documents.ts';
import { verifyTree, type TreeReport } from '../protocol/verify/tree.ts';
import { verifyRevocations } from '../protocol/verify/update-trust.ts';

export interface VerificationFailure {
  code: VerificationCode;
  file: string;
  detail: string;
}

export interface VerifiedRelease {
  report: TreeReport;
  /** The newest root of the verified chain, and every version walked from the pinned one. */
  root: SignedRoot;
  chain: SignedRoot[];
  timestamp: Timestamp;
  revocations: Revocations;
  index: ReleaseIndex;
  plans: Record<string, ChannelPlan>;
  budgets: DisruptionBudgets;
}

export type ReleaseLoad =
  | { status: 'verified'; release: VerifiedRelease }
  /**
   * Every signature verifies but the timestamp has expired: hosts activate nothing new. The documents
   * were verified as of `verifiedAsOf` (the timestamp's last valid second) so the operator still sees
   * the fleet during the freeze.
   */
  | { status: 'stale'; release: VerifiedRelease; failure: VerificationFailure; verifiedAsOf: number }
  | { status: 'failed'; failure: VerificationFailure };

/** A concurrent publish replaced the timestamp between verification and loading: build again. */
export class TreeChangedDuringLoad extends Error {
  constructor(detail: string) {
    super(`the tree changed while the dashboard was reading it (${detail}); build again`);
    this.name = 'TreeChangedDuringLoad';
  }
}

export interface LoadReleaseOptions {
  /** The directory whose files are served (a control plane's `current`, or a publisher's tree). */
  servedDir: string;
  pinnedRoot: SignedRoot;
  now: number;
  clockSkewSeconds?: number;
}

function failureOf(e: unknown): VerificationFailure {
  if (!isVerificationError(e)) throw e;
  return { code: e.code, file: e.file, detail: e.detail };
}

export function loadVerifiedRelease(o: LoadReleaseOptions): ReleaseLoad {
  try {
    return { status: 'verified', release: loadAt(o, o.now) };
  } catch (e) {
    const failure = failureOf(e);
    if (!(e instanceof Stale) || e.file !== TIMESTAMP_PATH) return { status: 'failed', failure };
    const expires = unverifiedExpiry(o.servedDir);
    if (expires === null || expires > o.now) return { status: 'failed', failure };
    // Verifying as of the timestamp's last valid second proves every signature; only freshness failed.
    const asOf = expires - 1000;
    try {
      return { status: 'stale', release: loadAt(o, asOf), failure, verifiedAsOf: asOf };
    } catch (e2) {
      return { status: 'failed', failure: failureOf(e2) };
    }
  }
}

/** The timestamp's claimed expiry, read without trusting it (it is verified right after). */
function unverifiedExpiry(servedDir: string): number | null {
  try {
    const bytes = readTreeFile(servedDir, TIMESTAMP_PATH, LIMITS.timestamp);
    return bytes === undefined ? null : parseIsoTime(readTimestamp(bytes, TIMESTAMP_PATH).signed.expires);
  } catch {
    return null;
  }
}

function loadAt(o: LoadReleaseOptions, at: number): VerifiedRelease {
  const dir = o.servedDir;
  const report = verifyTree(dir, o.pinnedRoot, { now: at, ...(o.clockSkewSeconds === undefined ? {} : { clockSkewSeconds: o.clockSkewSeconds }) });
  const read = (path: string, max: number, boundBy: string): Uint8Array => {
    const b = readTreeFile(dir, path, max);
    if (b === undefined) throw new MixAndMatch(path, `is missing, but ${boundBy} binds it`);
    return b;
  };
  const { root, chain } = verifyRootChain(o.pinnedRoot, (v) => readTreeFile(dir, rootPath(v), LIMITS.root), at);
  const tsBytes = read(TIMESTAMP_PATH, LIMITS.timestamp, 'the tree');
  const tsEnv = readTimestamp(tsBytes, TIMESTAMP_PATH);
  verifyReleaseSigned(tsEnv, root.signed, TIMESTAMP_PATH, at, tsBytes);
  const ts = tsEnv.signed;
  // The same timestamp verifyTree accepted: everything below is bound to it by digest.
  if (ts.issuedAt !== report.timestamp.issuedAt || ts.release.version !== report.release.version || root.signed.version !== report.root.version) {
    throw new TreeChangedDuringLoad(`timestamp issued ${ts.issuedAt} for release ${ts.release.version}, verified ${report.timestamp.issuedAt} for release ${report.release.version}`);
  }
  const noneSeen = { highestReleaseVersion: 0, highestTimestampIssuedAt: null, highestRevocationsVersion: 0 };
  const revPath = ts.revocations.file.path;
  const revocations = verifyRevocations(read(revPath, LIMITS.revocations, TIMESTAMP_PATH), ts, root.signed, noneSeen, revPath).signed;
  const indexRef = ts.release.index;
  const indexBytes = read(indexRef.path, LIMITS.releaseIndex, TIMESTAMP_PATH);
  requireFileRef(indexBytes, indexRef, indexRef.path, TIMESTAMP_PATH);
  const index = readReleaseIndex(indexBytes, indexRef.path).signed;
  const plans: Record<string, ChannelPlan> = {};
  for (const [channel, entry] of Object.entries(index.channels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const bytes = read(entry.plan.path, LIMITS.channelPlan, indexRef.path);
    requireFileRef(bytes, entry.plan, entry.plan.path, indexRef.path);
    plans[channel] = readChannelPlan(bytes, entry.plan.path).signed;
  }
  const budgetsBytes = read(index.budgets.path, LIMITS.budgets, indexRef.path);
  requireFileRef(budgetsBytes, index.budgets, index.budgets.path, indexRef.path);
  const budgets = readBudgets(budgetsBytes, index.budgets.path).signed;
  return { report, root, chain, timestamp: ts, revocations, index, plans, budgets };
}
