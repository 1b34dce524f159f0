// The current release of a tree, verified end to end against a pinned trust root, as the documents the
// reconciler takes (plans, budgets, revocations). One release walk (protocol/verify, auditTree) reads
// every file once and returns both the audit report and the documents it verified, built from the very
// bytes it verified: nothing is re-read afterwards, so a tree swapped mid-load cannot be half-believed.
//
// Two entry points: loadVerifiedRelease throws the first failure (status, trace); loadReleaseAllowingStale
// (the dashboard) turns failures into data and, when only the timestamp's freshness failed, still yields
// the documents verified as of the timestamp's last valid second, so a frozen fleet can be shown under a
// red banner instead of not at all.
import {
  Stale,
  isVerificationError,
  type VerificationCode,
  LIMITS,
  TIMESTAMP_PATH,
  parseIsoTime,
  type ChannelPlan,
  type DisruptionBudgets,
  type ReleaseIndex,
  type Revocations,
  type Controls,
  type Timestamp,
  type TrustRoot,
  type SignedRoot,
  diskTreeSource,
  readTimestamp,
  checkNotRevoked,
  auditTree,
  type TreeReport,
  type TreeSource,
  servedRoot,
  type VerifiedDocumentMemo,
  type VerifiedManifest,
  type ManifestSignatures,
} from '../protocol/index.ts';
import { existsSync } from 'node:fs';
import { hostKeysOfPlans } from './acks.ts';

export interface VerifiedRelease {
  /** Where the verified files came from: a directory (`DIR/current` resolved) or a control plane URL. */
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
  /** The operator controls the timestamp binds (null: none), verified in the same walk. */
  controls: Controls | null;
  /** Host -> base64 host key, from the signed channel plans: the only keys an ack may be signed with. */
  hostKeys: Map<string, string>;
  /** The host manifests this load verified (LoadReleaseOptions.manifests): all, one host's, or none. */
  manifests: Map<string, VerifiedManifest>;
}

export interface LoadReleaseOptions {
  /** ms since the epoch: the instant the tree is verified at (freshness, key windows). */
  now: number;
  clockSkewSeconds?: number;
  /**
   * Which host manifests to verify: 'all' (default: the audit, as `nixfleet verify`), none ([]: the
   * fleet view shows no manifest; everything it shows comes from the plans, budgets, revocations and
   * controls, which are always verified), or one host's (`status --host`: what that host's agent checks).
   */
  manifests?: 'all' | readonly string[];
  /** Release documents earlier runs verified (read-side/verified-cache.ts); none: everything is verified. */
  memo?: VerifiedDocumentMemo;
  /**
   * protocol's VerifyReleaseOptions.manifestSignatures (default 'each'): 'bound-by-index' for a view
   * that only shows the release (the dashboard); `status`, `verify` and agents keep 'each'.
   */
  manifestSignatures?: ManifestSignatures;
}

/**
 * `dir` is either a tree as `nixfleet publish` writes it or a control plane directory (`current` ->
 * installed tree). Throws the typed VerificationError of the first failure, naming the file.
 */
export async function loadVerifiedRelease(
  dir: string,
  pinnedRoot: SignedRoot,
  opts: LoadReleaseOptions,
): Promise<VerifiedRelease> {
  const treeRoot = servedRoot(dir);
  if (treeRoot === null || !existsSync(treeRoot))
    throw new Stale(TIMESTAMP_PATH, `no tree installed in ${dir}`);
  return verifyReleaseFrom(diskTreeSource(treeRoot), treeRoot, pinnedRoot, opts);
}

/** loadVerifiedRelease over any tree source (a directory, or a control plane over mTLS); `where` names it. */
export async function verifyReleaseFrom(
  source: TreeSource,
  where: string,
  pinnedRoot: SignedRoot,
  opts: LoadReleaseOptions,
): Promise<VerifiedRelease> {
  const treeRoot = where;
  const { report, release } = await auditTree(source, pinnedRoot, opts);
  const plans = release.plans;
  // Without every manifest the revoked-host finding comes from the signed plans (each names its hosts' targets).
  if ((opts.manifests ?? 'all') !== 'all')
    report.revokedHosts = revokedInPlans(release.index, plans, release.revocations.signed);
  return {
    treeRoot,
    report,
    root: release.root.signed,
    chain: release.chain,
    timestamp: release.timestamp.signed,
    index: release.index,
    plans,
    budgets: release.budgets,
    revocations: release.revocations.signed,
    controls: release.controls?.signed ?? null,
    hostKeys: hostKeysOfPlans(plans),
    manifests: release.manifests,
  };
}

function revokedInPlans(
  index: ReleaseIndex,
  plans: Record<string, ChannelPlan>,
  revocations: Revocations,
): TreeReport['revokedHosts'] {
  const found: TreeReport['revokedHosts'] = [];
  if (revocations.hosts.length === 0 && revocations.closures.length === 0) return found;
  for (const plan of Object.values(plans)) {
    const file = index.channels[plan.channel]!.plan.path;
    for (const [host, entry] of Object.entries(plan.hosts)) {
      try {
        checkNotRevoked({ host, target: entry.target }, revocations, file);
      } catch (e) {
        if (!isVerificationError(e) || e.code !== 'Revoked') throw e;
        found.push({ host, file, detail: e.detail });
      }
    }
  }
  return found;
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
  | {
      status: 'stale';
      release: VerifiedRelease;
      failure: VerificationFailure;
      verifiedAsOf: number;
    }
  | { status: 'failed'; failure: VerificationFailure };

function failureOf(e: unknown): VerificationFailure {
  if (!isVerificationError(e)) throw e;
  return { code: e.code, file: e.file, detail: e.detail };
}

/** Like loadVerifiedRelease, but failures are returned, and an expired timestamp still yields the documents. */
export async function loadReleaseAllowingStale(
  dir: string,
  pinnedRoot: SignedRoot,
  opts: LoadReleaseOptions,
): Promise<ReleaseLoad> {
  const treeRoot = servedRoot(dir);
  if (treeRoot === null || !existsSync(treeRoot))
    return {
      status: 'failed',
      failure: failureOf(new Stale(TIMESTAMP_PATH, `no tree installed in ${dir}`)),
    };
  return releaseAllowingStaleFrom(diskTreeSource(treeRoot), treeRoot, pinnedRoot, opts);
}

/** loadReleaseAllowingStale over any tree source; `where` names it. */
export async function releaseAllowingStaleFrom(
  source: TreeSource,
  where: string,
  pinnedRoot: SignedRoot,
  opts: LoadReleaseOptions,
): Promise<ReleaseLoad> {
  const at = (now: number): LoadReleaseOptions => ({ ...opts, now });
  try {
    return {
      status: 'verified',
      release: await verifyReleaseFrom(source, where, pinnedRoot, at(opts.now)),
    };
  } catch (e) {
    const failure = failureOf(e);
    if (!(e instanceof Stale) || e.file !== TIMESTAMP_PATH) return { status: 'failed', failure };
    const expires = await unverifiedExpiry(source);
    if (expires === null || expires > opts.now) return { status: 'failed', failure };
    // Verifying as of the timestamp's last valid second proves every signature; only freshness failed.
    const asOf = expires - 1000;
    try {
      return {
        status: 'stale',
        release: await verifyReleaseFrom(source, where, pinnedRoot, at(asOf)),
        failure,
        verifiedAsOf: asOf,
      };
    } catch (e2) {
      return { status: 'failed', failure: failureOf(e2) };
    }
  }
}

/** The timestamp's claimed expiry, read without trusting it (it is verified right after, as of that instant). */
async function unverifiedExpiry(source: TreeSource): Promise<number | null> {
  try {
    const bytes = await source.fetch(TIMESTAMP_PATH, LIMITS.timestamp);
    return bytes === undefined
      ? null
      : parseIsoTime(readTimestamp(bytes, TIMESTAMP_PATH).signed.expires);
  } catch {
    return null;
  }
}
