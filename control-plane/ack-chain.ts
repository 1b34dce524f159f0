// Per-host hash-chain heads and the rule that decides what to do with an incoming ack.
// The rule (DESIGN.md section 7): seq = head.seq + 1 and prev = head.digest appends; the head itself
// re-posted is an idempotent duplicate; anything else (same seq with other content, older seq, a gap,
// a prev that does not match) is a conflict. A host without a head adopts its first valid signed ack
// at any seq: that is how the endpoint is rebuilt from empty state from the agents' re-posted acks
// (only the host's own client certificate can post for it, and the ack carries the host's signature).
export interface ChainHead {
  seq: number;
  digest: string;
  /** Canonical JSON of the head's envelope (what acks/hosts/<host>.json serves). */
  canonical: string;
  /** Resolves when the head is on disk. */
  durable: Promise<void>;
}

export type ChainDecision =
  | { kind: 'append' }
  | { kind: 'duplicate'; head: ChainHead }
  | { kind: 'conflict'; reason: string; head: ChainHead };

export function decide(head: ChainHead | undefined, seq: number, prev: string | null, digest: string): ChainDecision {
  if (!head) return { kind: 'append' };
  if (seq === head.seq) {
    if (digest === head.digest) return { kind: 'duplicate', head };
    return { kind: 'conflict', head, reason: `fork: a different ack with seq ${seq} was already accepted (${head.digest})` };
  }
  if (seq < head.seq) return { kind: 'conflict', head, reason: `replay: seq ${seq} is older than the last accepted seq ${head.seq}` };
  if (seq > head.seq + 1) return { kind: 'conflict', head, reason: `gap: seq ${seq} does not follow the last accepted seq ${head.seq}; post seq ${head.seq + 1} first` };
  if (prev !== head.digest) return { kind: 'conflict', head, reason: `fork: prev ${prev} is not the digest of the accepted seq ${head.seq} (${head.digest})` };
  return { kind: 'append' };
}
