// Content-addressed rollout identity of one channel. It covers exactly what defines "the same rollout":
// the plan (strategy, failure policy, waves with their hosts, soak and thresholds), each host's target,
// the host edges and the gating channels. It leaves out the release version, signing times and every
// other channel, so that a periodic re-sign or a change elsewhere never restarts this channel's rollout
// or resets a soak in progress.
// The rule for what is in it: what decides when a wave is complete (soak, thresholds, excuse limits, what
// a wave does with deferred hosts) is part of the rollout; what only decides when a host may act
// (maintenance windows, the reboot policy, timings) is not. So signing `reboot: allowed` for a channel
// whose hosts defer lets them reboot into the SAME rollout, keeping every soak already proved.
import { sha256Digest, type ChannelCompliance, type Threshold } from '../protocol/index.ts';
import { canonicalJsonData } from './jcs.ts';

export interface RolloutIdInput {
  fleet: string;
  channel: string;
  strategy: string;
  onFailure: string;
  /** What a wave does while one of its hosts defers a reboot (`hold` is the default). */
  deferredHosts: string;
  waves: readonly {
    index: number;
    soakSeconds: number;
    failureThreshold: Threshold;
    offlineExcuseLimit: number;
    hosts: readonly string[];
  }[];
  /** Host -> target store path, for every host of the channel. */
  targets: Readonly<Record<string, string>>;
  hostEdges: readonly { before: string; after: string }[];
  gatedBy: readonly string[];
  /**
   * The channel's compliance (mode, frameworks, runtime controls): in `enforce` a host's soak counts only
   * with passing evidence of these, so they decide when a wave is complete. Absent: none.
   */
  compliance?: ChannelCompliance;
}

export function computeRolloutId(input: RolloutIdInput): string {
  const material = {
    kind: 'nixfleet-rollout-v1',
    fleet: input.fleet,
    channel: input.channel,
    strategy: input.strategy,
    onFailure: input.onFailure,
    // Present only when not the default, so that every rollout id signed before the field existed is
    // unchanged: upgrading the publisher must not restart rollouts in progress.
    ...(input.deferredHosts !== 'hold' ? { deferredHosts: input.deferredHosts } : {}),
    waves: input.waves.map((w) => ({
      index: w.index,
      soakSeconds: w.soakSeconds,
      failureThreshold: w.failureThreshold,
      offlineExcuseLimit: w.offlineExcuseLimit,
      hosts: w.hosts,
    })),
    targets: input.targets,
    // Edge order in the fleet file carries no meaning; sort so that reordering is not a new rollout.
    hostEdges: [...input.hostEdges].map((e) => [e.before, e.after]).sort(),
    gatedBy: [...input.gatedBy].sort(),
    // Present only for a compliance channel (rollout ids of other channels stay as they were).
    ...(input.compliance ? { compliance: input.compliance } : {}),
  };
  return sha256Digest(canonicalJsonData(material));
}
