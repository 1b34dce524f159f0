// Building the reconciler's ack input from whatever order acks arrived in.
import type { AckRecord } from './types.ts';

/**
 * Latest ack per host: the highest sequence number wins, whatever order the list is in, so the result
 * does not depend on arrival order. Acks of the same host with the same seq are expected identical
 * (the ack endpoint rejects forks); if not, the canonical-JSON-smallest wins to stay deterministic.
 */
export function latestAcks(acks: Iterable<AckRecord>): Record<string, AckRecord> {
  const out: Record<string, AckRecord> = Object.create(null) as Record<string, AckRecord>;
  for (const a of acks) {
    const prev = out[a.host];
    if (
      prev === undefined ||
      a.seq > prev.seq ||
      (a.seq === prev.seq && JSON.stringify(a) < JSON.stringify(prev))
    )
      out[a.host] = a;
  }
  return out;
}
