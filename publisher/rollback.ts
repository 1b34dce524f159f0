// `nixfleet rollback --to-release N`: a fleet-wide emergency rollback is a NEW release (M > N, signed by
// CI like any other; agents' rollback protection forbids serving N again) whose targets are release
// N's. Release N is read from the tree and verified (release-key signatures valid at its issuedAt under
// the newest trust root, so a release signed before a `rejectBefore` compromise switch is refused; its
// plans bound to its index by digest). The operator picks the policy of the rollback:
//   - 'waves': the fleet's own policies, waves, edges and budgets; only the targets change;
//   - 'all-at-once': every channel gets one all-at-once wave (its probes kept) and the disruption
//     budgets and channel edges are lifted, so every host may switch back at its next poll.
import {
  LIMITS,
  releaseIndexPath,
  readChannelPlan,
  readReleaseIndex,
  requireFileRef,
  requireFleet,
  verifyReleaseDocument,
  verifyReleaseSigned,
  type TrustRoot,
  parseWith,
  readTreeFile,
} from '../protocol/index.ts';
import { PublishRefused } from './errors.ts';
import { Fleet, type FleetInput } from './fleet-schema.ts';

export type RollbackPolicy = 'all-at-once' | 'waves';

export interface RollbackPlan {
  /** The fleet to publish: the current fleet with release N's targets (and the chosen policy). */
  fleet: FleetInput;
  toRelease: number;
  policy: RollbackPolicy;
  /** Hosts whose target changes. */
  restored: { host: string; from: string; to: string }[];
  /** Hosts of the current fleet that release N did not have: they keep their current target. */
  notInRelease: string[];
}

/** A document of release N, read capped (protocol's readTreeFile); its absence means nothing to roll back to. */
function readReleaseFile(treeDir: string, path: string, max: number): Uint8Array {
  const bytes = readTreeFile(treeDir, path, max);
  if (bytes === undefined)
    throw new PublishRefused(
      `${path} does not exist in ${treeDir}: there is no release to roll back to`,
    );
  return bytes;
}

/** Release N's target per host, verified against `root`. */
export function verifiedReleaseTargets(
  treeDir: string,
  version: number,
  root: TrustRoot,
): Map<string, string> {
  const indexPath = releaseIndexPath(version);
  const indexBytes = readReleaseFile(treeDir, indexPath, LIMITS.releaseIndex);
  const indexEnv = readReleaseIndex(indexBytes, indexPath);
  verifyReleaseSigned(indexEnv, root, indexPath, undefined, indexBytes);
  requireFleet(indexEnv.signed, root, indexPath);
  if (indexEnv.signed.version !== version)
    throw new PublishRefused(`${indexPath} is release ${indexEnv.signed.version}, not ${version}`);
  const targets = new Map<string, string>();
  for (const entry of Object.values(indexEnv.signed.channels)) {
    const bytes = readReleaseFile(treeDir, entry.plan.path, LIMITS.channelPlan);
    const plan = verifyReleaseDocument(
      readChannelPlan(bytes, entry.plan.path),
      root,
      entry.plan.path,
      version,
      bytes,
    );
    requireFileRef(bytes, entry.plan, entry.plan.path, indexPath);
    for (const [host, h] of Object.entries(plan.hosts)) targets.set(host, h.target);
  }
  return targets;
}

export function planRollback(o: {
  treeDir: string;
  toRelease: number;
  policy: RollbackPolicy;
  fleet: unknown;
  root: TrustRoot;
  fleetSource?: string;
}): RollbackPlan {
  // Shape only here; the publish validates everything (a target revoked since release N is refused there).
  const current = parseWith(Fleet, o.fleet, o.fleetSource ?? 'fleet');
  const targets = verifiedReleaseTargets(o.treeDir, o.toRelease, o.root);
  const restored: RollbackPlan['restored'] = [];
  const notInRelease: string[] = [];
  const fleet = structuredClone(current) as FleetInput & typeof current;
  for (const [host, h] of Object.entries(fleet.hosts)) {
    const to = targets.get(host);
    if (to === undefined) notInRelease.push(host);
    else if (to !== h.target) {
      restored.push({ host, from: h.target, to });
      h.target = to;
    }
  }
  if (o.policy === 'all-at-once') {
    const policies: typeof fleet.policies = {};
    for (const [name, ch] of Object.entries(fleet.channels)) {
      const own = current.policies[ch.policy]!;
      // One policy per channel, named after it (policy and channel names are separate namespaces, and
      // every previous policy is replaced).
      const policy = name;
      policies[policy] = {
        strategy: 'all-at-once',
        waves: [],
        onFailure: 'halt',
        probes: own.probes,
        healthyPassesRequired: own.healthyPassesRequired,
        deferredHosts: own.deferredHosts,
      };
      ch.policy = policy;
    }
    fleet.policies = policies;
    fleet.disruptionBudgets = [];
    fleet.channelEdges = [];
  }
  return { fleet, toRelease: o.toRelease, policy: o.policy, restored, notInRelease };
}
