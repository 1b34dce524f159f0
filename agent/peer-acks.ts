// Other hosts' acks, as the reconciler needs them: read from the per-wave bundles the control plane
// publishes (one conditional GET per wave), each ack checked by protocol/acks.ts verifyAck against this
// fleet and the host key the SIGNED plan names, then against the highest ack already seen from that
// peer (peer-ack-memory.ts). Anything that does not pass is dropped and logged: the control plane is
// not trusted, so a forged, foreign or replayed ack can only be ignored, never believed.
import {
  hostKeysOfPlans,
  readAck,
  readAckBundle,
  verifyAck,
  type AckTrust,
  type BundledAck,
  type SignedAck,
  ackBundlePath,
  LIMITS,
  type ChannelPlan,
  type DisruptionBudgets,
} from '../protocol/index.ts';
import { latestAcks, type AckRecord } from '../reconciler/index.ts';
import type { Logger } from './log.ts';
import { ACK_BUNDLE_MEMO_FILE, readAckBundleMemo } from './ack-bundle-memo.ts';
import { readPeerAckMemory, refuseRegressions, writePeerAckMemory } from './peer-ack-memory.ts';
import type { StateDir } from './state-dir.ts';

export type FetchOrUndefined = (path: string, maxBytes: number) => Promise<Uint8Array | undefined>;

export async function fetchPeerAcks(o: {
  fetch: FetchOrUndefined;
  plans: ChannelPlan[];
  budgets: DisruptionBudgets;
  self: string;
  /** The fleet of the verified release: acks of any other fleet are foreign. */
  fleet: string;
  /** Where the highest ack seen per peer is remembered across cycles. */
  state: StateDir;
  log: Logger;
}): Promise<{
  acks: Record<string, AckRecord>;
  dropped: number;
  regressed: number;
  own: SignedAck | undefined;
  /** Bundles whose verification came from the memo (the bytes of an earlier run). */
  fromMemo: number;
}> {
  const trust: AckTrust = { fleet: o.fleet, hostKeys: hostKeysOfPlans(o.plans) };
  const collected: AckRecord[] = [];
  let dropped = 0;
  // This host's own newest ack as the bundles publish it: ack-sync's evidence that nothing was lost.
  let own: SignedAck | undefined;

  const take = (ack: SignedAck) => {
    collected.push(ack.signed);
    if (ack.signed.host === o.self && (!own || ack.signed.seq > own.signed.seq)) own = ack;
  };
  /** Verifies one bundled ack; the verified ack with its key, or undefined (dropped and logged). */
  const accept = ({ source, canonical }: BundledAck) => {
    try {
      const ack = readAck(canonical, source);
      verifyAck(ack, trust, source);
      take(ack);
      return { source, hostKey: trust.hostKeys.get(ack.signed.host)!, ack };
    } catch (e) {
      dropped++;
      o.log.warn('peer-ack-ignored', { file: source, reason: (e as Error).message.slice(0, 300) });
      return undefined;
    }
  };

  // Bundles answered 304 are the bytes an earlier run verified: their acks come from the memo
  // (ack-bundle-memo.ts says why that spares nothing but recomputation).
  let fromMemo = 0;
  const memo = readAckBundleMemo(o.state.root, o.state.path(ACK_BUNDLE_MEMO_FILE));
  for (const plan of o.plans) {
    for (const wave of plan.waves) {
      if (wave.hosts.length === 0) continue;
      const file = ackBundlePath(plan.channel, wave.index);
      const bytes = await o.fetch(file, LIMITS.ackBundle);
      if (!bytes) continue;
      const known = memo.lookup(file, bytes, o.fleet, trust.hostKeys);
      if (known) {
        fromMemo++;
        known.verified.forEach((v) => take(v.ack));
        known.rejected.forEach(accept);
        continue;
      }
      let bundled: BundledAck[];
      try {
        bundled = readAckBundle(bytes, file);
      } catch (e) {
        dropped++;
        o.log.warn('ack-bundle-ignored', { file, reason: (e as Error).message.slice(0, 300) });
        continue;
      }
      const verified = [];
      const rejected = [];
      for (const b of bundled) {
        const v = accept(b);
        if (v) verified.push(v);
        else rejected.push(b);
      }
      memo.record(file, bytes, { fleet: o.fleet, verified, rejected });
    }
  }
  memo.save(o.state.root, o.state.path(ACK_BUNDLE_MEMO_FILE));

  // Budget members outside every plan this host holds: their host keys are not known here, so their
  // acks cannot be verified and are left out. Logged so the operator sees the cross-channel limit
  // (channels joined by an edge are covered: the gated channel holds the gating plans).
  const outside = new Set<string>();
  for (const b of o.budgets.budgets)
    if (b.hosts.includes(o.self))
      for (const h of b.hosts) if (!trust.hostKeys.has(h)) outside.add(h);
  if (outside.size > 0)
    o.log.warn('budget-peers-unverifiable', {
      hosts: [...outside].slice(0, 20),
      count: outside.size,
    });

  // A peer's seq only grows: an older ack than one already seen is a replay, ignored like a forgery.
  const checked = refuseRegressions(
    latestAcks(collected),
    trust.hostKeys,
    readPeerAckMemory(o.state, o.log),
  );
  for (const r of checked.regressions) {
    o.log.warn('peer-ack-regression-ignored', {
      host: r.host,
      seq: r.seq,
      highestSeen: r.highestSeen,
      reason: `served ack seq ${r.seq} of ${r.host} is older than seq ${r.highestSeen} already seen: a replay`,
    });
  }
  if (checked.changed) writePeerAckMemory(o.state, checked.memory, o.log);
  return { acks: checked.acks, dropped, regressed: checked.regressions.length, own, fromMemo };
}
