// Other hosts' acks, as the reconciler needs them: read from the per-wave bundles the control plane
// publishes (one conditional GET per wave), each ack verified against the host key the SIGNED plan
// names. Anything that does not verify is dropped and logged: the control plane is not trusted, so a
// forged or foreign ack can only be ignored, never believed.
import { verifyAckSignature, readAck } from '../protocol/acks.ts';
import { canonicalString } from '../protocol/canonical.ts';
import { ackBundlePath } from '../protocol/layout.ts';
import { LIMITS } from '../protocol/limits.ts';
import { AckBundle } from '../protocol/schemas/ack.ts';
import { parseWith } from '../protocol/schemas/parse.ts';
import type { ChannelPlan, DisruptionBudgets } from '../protocol/schemas/release.ts';
import { parseStrictJson } from '../protocol/strict-json.ts';
import { latestAcks, type AckRecord } from '../reconciler/index.ts';
import type { Logger } from './log.ts';

export type FetchOrUndefined = (path: string, maxBytes: number) => Promise<Uint8Array | undefined>;

export async function fetchPeerAcks(o: {
  fetch: FetchOrUndefined;
  plans: ChannelPlan[];
  budgets: DisruptionBudgets;
  self: string;
  log: Logger;
}): Promise<{ acks: Record<string, AckRecord>; dropped: number }> {
  const hostKeys = new Map<string, string>();
  for (const p of o.plans) for (const [h, e] of Object.entries(p.hosts)) hostKeys.set(h, e.hostKey);
  const collected: AckRecord[] = [];
  let dropped = 0;

  const accept = (raw: unknown, file: string) => {
    try {
      const ack = readAck(canonicalString(raw), file);
      const key = hostKeys.get(ack.signed.host);
      if (!key) throw new Error(`host ${ack.signed.host} is not in any plan this host depends on`);
      verifyAckSignature(ack, ack.signed.host, key, file);
      collected.push(ack.signed);
    } catch (e) {
      dropped++;
      o.log.warn('peer-ack-ignored', { file, reason: (e as Error).message.slice(0, 300) });
    }
  };

  for (const plan of o.plans) {
    for (const wave of plan.waves) {
      if (wave.hosts.length === 0) continue;
      const file = ackBundlePath(plan.channel, wave.index);
      const bytes = await o.fetch(file, LIMITS.ackBundle);
      if (!bytes) continue;
      let bundle: AckBundle;
      try {
        bundle = parseWith(AckBundle, parseStrictJson(bytes, { file, maxBytes: LIMITS.ackBundle }), file);
      } catch (e) {
        dropped++;
        o.log.warn('ack-bundle-ignored', { file, reason: (e as Error).message.slice(0, 300) });
        continue;
      }
      bundle.acks.forEach((a, i) => accept(a, `${file}#${i}`));
    }
  }

  // Budget members outside every plan this host holds: their host keys are not known here, so their
  // acks cannot be verified and are left out. Logged so the operator sees the cross-channel limit
  // (channels joined by an edge are covered: the gated channel holds the gating plans).
  const covered = new Set(hostKeys.keys());
  const outside = new Set<string>();
  for (const b of o.budgets.budgets) if (b.hosts.includes(o.self)) for (const h of b.hosts) if (!covered.has(h)) outside.add(h);
  if (outside.size > 0) o.log.warn('budget-peers-unverifiable', { hosts: [...outside].slice(0, 20), count: outside.size });

  return { acks: latestAcks(collected), dropped };
}
