// Public API of the operator's read side: a tree + its acks -> the reconciler's inputs and the fleet
// view. Used by `nixfleet status`, `nixfleet trace`, the demo and the dashboard (site-gen).
//
//   const release = await loadVerifiedRelease(dir, readPinnedRoot(file), { now });   // throws VerificationError
//   const acks = readTreeAcks(acksDirOf(dir), release.trust);                  // verified, rejects listed
//   const view = fleetView(fleetInputOf(release, acks.acks, now));
// or in one call: loadFleetState(dir, pinnedRoot, { now }).
// The dashboard: loadReleaseAllowingStale (failures as data, an expired timestamp still shown) and
// readAckHistory with an AckCache kept between watch builds; ackHistoryByHost for per-host timelines.
import { type SignedRoot, VerificationError } from '../protocol/index.ts';
import {
  fleetView,
  latestAcks,
  type AckRecord,
  type FleetInput,
  type FleetView,
  type Tolerances,
} from '../reconciler/index.ts';
import {
  acksDirOf,
  readTreeAcks,
  readAckHistory,
  type AckCache,
  type AckTrust,
  type VerifiedAcks,
} from './acks.ts';
import { UnknownSubject } from './subject.ts';
import type { AckFileMemo } from './ack-file-memo.ts';
import { channelOfHost, viewScope, type ViewScope } from './scope.ts';
import {
  loadReleaseAllowingStale,
  type LoadReleaseOptions,
  type ReleaseLoad,
  type VerificationFailure,
  type VerifiedRelease,
} from './release.ts';

export {
  loadVerifiedRelease,
  loadReleaseAllowingStale,
  verifyReleaseFrom,
  releaseAllowingStaleFrom,
  type VerifiedRelease,
  type LoadReleaseOptions,
  type ReleaseLoad,
  type VerificationFailure,
} from './release.ts';
export {
  AckCache,
  AckCollector,
  hostKeysOfPlans,
  acksDirOf,
  defaultAckLogOf,
  collectTreeAcks,
  collectAckLog,
  readTreeAcks,
  readAckLog,
  readAckHistory,
  ackHistoryByHost,
  MAX_ACK_LOG_BYTES,
  MAX_ACK_FILES,
  type AckRejection,
  type VerifiedAcks,
  type AckTrust,
  type AckHistory,
  type AckHistoryOptions,
  type AckLogOptions,
  type AckLogRead,
  type TreeAckOptions,
} from './acks.ts';

/** The pinned trust root file an operator passes with `--root` (protocol/pinned-root.ts: the one loader). */
export { readPinnedRoot } from '../protocol/index.ts';

/** What an ack is verified against: the root's fleet and the host keys of the signed plans. */
export function ackTrustOf(release: VerifiedRelease): AckTrust {
  return { fleet: release.root.fleet, hostKeys: release.hostKeys };
}

/** The reconciler's FleetInput at `now`: the release's documents and the newest verified ack per host. */
export function fleetInputOf(
  release: VerifiedRelease,
  acks: readonly AckRecord[],
  now: number,
  tolerances?: Partial<Tolerances>,
): FleetInput {
  return {
    now,
    plans: release.plans,
    budgets: release.budgets,
    revocations: release.revocations,
    acks: latestAcks(acks),
    tolerances,
    controls: release.controls,
  };
}

/**
 * Every signature verified, but the timestamp expired: hosts activate nothing new. The release was
 * verified as of `verifiedAsOf` (the timestamp's last valid second); the operator views still show it.
 */
export interface StaleRelease {
  failure: VerificationFailure;
  verifiedAsOf: number;
}

/**
 * What the operator views (status, trace) show: a verified release, or, when only the timestamp's
 * freshness failed, the last verified state with `stale` set. Any other failure throws its typed error.
 */
export function releaseForOperator(
  load: ReleaseLoad,
  manifests: LoadReleaseOptions['manifests'] = 'all',
): { release: VerifiedRelease; stale: StaleRelease | null } {
  if (load.status === 'failed') {
    const { code, file, detail } = load.failure;
    // A --host the release does not have: the walk refuses its manifest as an agent would (WrongHost);
    // for the operator that is a usage error, not a tree that fails to verify.
    if (
      code === 'WrongHost' &&
      manifests !== 'all' &&
      manifests.some((h) => file.endsWith(`/hosts/${h}.json`)) &&
      /has no manifest for host/.test(detail)
    ) {
      const release = /^releases\/([0-9]+)\//.exec(file)?.[1] ?? '?';
      throw new UnknownSubject(`no host "${manifests.join(', ')}" in release ${release}`);
    }
    throw new VerificationError(code, file, detail);
  }
  return {
    release: load.release,
    stale:
      load.status === 'stale' ? { failure: load.failure, verifiedAsOf: load.verifiedAsOf } : null,
  };
}

export interface FleetState {
  release: VerifiedRelease;
  /** Non-null: the timestamp expired; the view is the last verified state (the CLI exits 3). */
  stale: StaleRelease | null;
  acks: VerifiedAcks;
  input: FleetInput;
  view: FleetView;
  /**
   * Non-null: a one-host view (FleetStateOptions.host): only these channels shown, only these hosts'
   * acks read, and only the host's own row in `view.hosts`.
   */
  scope: (ViewScope & { host: string }) | null;
}

export type FleetStateOptions = LoadReleaseOptions & {
  tolerances?: Partial<Tolerances>;
  /** Verification results to reuse (a persisted store: operator/verified-cache.ts); the caller saves it. */
  ackCache?: AckCache;
  /** With `host`: the cache for that host's scope, given its channel (the store's scopeAcks). */
  ackCacheFor?: (channel: string) => AckCache;
  /**
   * The latest-ack files read by an earlier run (the store's ackFiles: read-side/ack-file-memo.ts),
   * asked for after the ack cache was chosen (it lives beside it).
   */
  ackFiles?: () => AckFileMemo;
  /**
   * Ack logs of the control plane boxes (each box's own, or one `cp merge` wrote), read with the tree's
   * acks as their union: a host's latest ack is its newest in any of them.
   */
  ackLogs?: readonly string[];
  /**
   * A view of this host (`status --host`): its channel's view, its own row and the budgets it reaches, over the acks
   * its gates read (read-side/scope.ts): those hosts' latest-ack files and log records only, no bundles
   * (the endpoint writes each ack to acks/hosts/ before bundling it). An unknown host is UnknownSubject.
   */
  host?: string;
};

/** The fleet at `now` from a release (fresh or stale) and the acks read for it. */
export function fleetStateOf(
  release: VerifiedRelease,
  stale: StaleRelease | null,
  acks: VerifiedAcks,
  opts: FleetStateOptions,
  scope: (ViewScope & { host: string }) | null = null,
): FleetState {
  const input = fleetInputOf(release, acks.acks, opts.now, opts.tolerances);
  const view = fleetView(
    input,
    scope === null ? {} : { channels: scope.channels, only: new Set([scope.host]) },
  );
  return { release, stale, acks, input, view, scope };
}

/** The scope of a view of `host` in a verified release. */
export function hostScope(release: VerifiedRelease, host: string): ViewScope {
  const channel = channelOfHost(release.plans, host);
  if (channel === null)
    throw new UnknownSubject(`no host "${host}" in release ${release.index.version}`);
  return viewScope(release.plans, release.budgets, [channel]);
}

/**
 * Verify the tree, read and verify the acks it holds, and evaluate the fleet at `now`. An expired
 * timestamp still yields the last verified state (`stale`); every other failure throws.
 */
export async function loadFleetState(
  dir: string,
  pinnedRoot: SignedRoot,
  opts: FleetStateOptions,
): Promise<FleetState> {
  const { release, stale } = releaseForOperator(
    await loadReleaseAllowingStale(dir, pinnedRoot, opts),
    opts.manifests,
  );
  const scope =
    opts.host === undefined ? null : { ...hostScope(release, opts.host), host: opts.host };
  const ackCache =
    scope !== null && opts.ackCacheFor ? opts.ackCacheFor(scope.channels[0]!) : opts.ackCache;
  const only = {
    ...(scope === null ? {} : { hosts: scope.hosts, bundles: false }),
    ...(opts.ackFiles ? { files: opts.ackFiles() } : {}),
  };
  const [logFile, ...replicaLogs] = opts.ackLogs ?? [];
  const acks =
    logFile === undefined
      ? readTreeAcks(acksDirOf(dir), ackTrustOf(release), ackCache, only)
      : readAckHistory({
          acksDir: acksDirOf(dir),
          logFile,
          replicaLogs,
          trust: ackTrustOf(release),
          ...(ackCache ? { cache: ackCache } : {}),
          ...only,
        });
  return fleetStateOf(release, stale, acks, opts, scope);
}
