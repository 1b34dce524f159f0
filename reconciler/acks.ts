// Building the reconciler's ack input from whatever order acks arrived in.
import { canonicalString } from '../protocol/index.ts';
import type { AckRecord } from './types.ts';

/**
 * Which of two acks of one host with the same seq (a fork: the ack endpoint refuses them, but a host
 * can sign two) stands: the one whose canonical JSON (RFC 8785) sorts first. Canonical, not
 * JSON.stringify: the result must not depend on the key order a reader happened to build the objects in.
 */
export function forkWinner(a: AckRecord, b: AckRecord): AckRecord {
  return canonicalString(a) < canonicalString(b) ? a : b;
}

/**
 * Latest ack per host: the highest sequence number wins, whatever order the list is in, so the result
 * does not depend on arrival order. Acks of the same host with the same seq are expected identical
 * (the ack endpoint rejects forks); if not, the canonical-JSON-smallest wins to stay deterministic.
 */
export function latestAcks(acks: Iterable<AckRecord>): Record<string, AckRecord> {
  const out: Record<string, AckRecord> = Object.create(null) as Record<string, AckRecord>;
  for (const a of acks) {
    const prev = out[a.host];
    if (prev === undefined || a.seq > prev.seq || (a.seq === prev.seq && forkWinner(a, prev) === a))
      out[a.host] = a;
  }
  return out;
}
