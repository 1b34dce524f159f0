// Public API of the operator's read side: a tree + its acks -> the reconciler's inputs and the fleet
// view. Used by `nixfleet status`, `nixfleet trace`, the demo and the dashboard (site-gen).
//
//   const release = await loadVerifiedRelease(dir, readPinnedRoot(file), { now });   // throws VerificationError
//   const acks = readTreeAcks(acksDirOf(dir), release.trust);                  // verified, rejects listed
//   const view = fleetView(fleetInputOf(release, acks.acks, now));
// or in one call: loadFleetState(dir, pinnedRoot, { now }).
// The dashboard: loadReleaseAllowingStale (failures as data, an expired timestamp still shown) and
// readAckHistory with an AckCache kept between watch builds; ackHistoryByHost for per-host timelines.
import { readFileSync, statSync } from 'node:fs';
import { TooLarge } from '../protocol/errors.ts';
import { LIMITS } from '../protocol/limits.ts';
import { readRoot, type SignedRoot } from '../protocol/trust-root.ts';
import { fleetView, latestAcks, type AckRecord, type FleetInput, type FleetView, type Tolerances } from '../reconciler/index.ts';
import { acksDirOf, readTreeAcks, type AckTrust, type VerifiedAcks } from './acks.ts';
import { loadVerifiedRelease, type LoadReleaseOptions, type VerifiedRelease } from './release.ts';

export {
  loadVerifiedRelease, loadReleaseAllowingStale,
  type VerifiedRelease, type LoadReleaseOptions, type ReleaseLoad, type VerificationFailure,
} from './release.ts';
export {
  AckCache, AckCollector, hostKeysOfPlans, acksDirOf, defaultAckLogOf, collectTreeAcks, collectAckLog, readTreeAcks, readAckLog, readAckHistory, ackHistoryByHost, MAX_ACK_LOG_BYTES, MAX_ACK_FILES,
  type AckRejection, type VerifiedAcks, type AckTrust, type AckHistory, type AckHistoryOptions, type AckLogOptions, type AckLogRead, type TreeAckOptions,
} from './acks.ts';

/** The pinned trust root file an operator passes with `--root` (size cap before parsing). */
export function readPinnedRoot(file: string): SignedRoot {
  const size = statSync(file).size;
  if (size > LIMITS.root) throw new TooLarge(file, `${size} bytes exceeds the limit of ${LIMITS.root}`);
  return readRoot(readFileSync(file), file);
}

/** What an ack is verified against: the root's fleet and the host keys of the signed plans. */
export function ackTrustOf(release: VerifiedRelease): AckTrust {
  return { fleet: release.root.fleet, hostKeys: release.hostKeys };
}

/** The reconciler's FleetInput at `now`: the release's documents and the newest verified ack per host. */
export function fleetInputOf(release: VerifiedRelease, acks: readonly AckRecord[], now: number, tolerances?: Partial<Tolerances>): FleetInput {
  return { now, plans: release.plans, budgets: release.budgets, revocations: release.revocations, acks: latestAcks(acks), tolerances, controls: release.controls };
}

export interface FleetState {
  release: VerifiedRelease;
  acks: VerifiedAcks;
  input: FleetInput;
  view: FleetView;
}

/** Verify the tree, read and verify the acks it holds, and evaluate the fleet at `now`. */
export async function loadFleetState(dir: string, pinnedRoot: SignedRoot, opts: LoadReleaseOptions & { tolerances?: Partial<Tolerances> }): Promise<FleetState> {
  const release = await loadVerifiedRelease(dir, pinnedRoot, opts);
  const acks = readTreeAcks(acksDirOf(dir), ackTrustOf(release));
  const input = fleetInputOf(release, acks.acks, opts.now, opts.tolerances);
  return { release, acks, input, view: fleetView(input) };
}
