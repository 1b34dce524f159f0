// Per-host hash-chain heads and the rule that decides what to do with an incoming ack.
// The rule (DESIGN.md section 7): seq = head.seq + 1 and prev = head.digest appends; the head itself
// re-posted is an idempotent duplicate; anything else (same seq with other content, older seq, a gap,
// a prev that does not match) is a conflict. A host without a head adopts its first valid signed ack
// at any seq: that is how the endpoint is rebuilt from empty state from the agents' re-posted acks
// (only the host's own client certificate can post for it, and the ack carries the host's signature).
// Back-fill: the endpoint holds each host's chain contiguously from its `floor` up to the head. When the
// floor is above seq 1 (adopted mid-chain), the ack just below it is accepted too, but only the one
// whose digest is the floor's `prev`: it chains to what is held by digest, so history grows downwards
// without any possibility of a fork, until the floor reaches seq 1 (prev null).

/** The lowest ack of the contiguous run ending at the head: its seq and the digest it chains to. */
export interface ChainFloor {
  seq: number;
  /** The digest of the ack below the floor (null at seq 1: the history is complete). */
  prev: string | null;
}

export interface ChainHead {
  seq: number;
  digest: string;
  /** Canonical JSON of the head's envelope (what acks/hosts/<host>.json serves). */
  canonical: string;
  /** Resolves when this state is on disk. */
  durable: Promise<void>;
  floor: ChainFloor;
  /** The state this one replaced, kept until `durable` settles: a failed write falls back to it. */
  below?: ChainHead;
  /** Set when the write that made this state failed: it was never acknowledged and is rolled back. */
  failed?: boolean;
}

export type ChainDecision =
  | { kind: 'append' }
  | { kind: 'backfill' }
  | { kind: 'duplicate'; head: ChainHead }
  | { kind: 'conflict'; reason: string; head: ChainHead };

export function decide(
  head: ChainHead | undefined,
  seq: number,
  prev: string | null,
  digest: string,
): ChainDecision {
  if (!head) return { kind: 'append' };
  if (seq === head.seq) {
    if (digest === head.digest) return { kind: 'duplicate', head };
    return {
      kind: 'conflict',
      head,
      reason: `fork: a different ack with seq ${seq} was already accepted (${head.digest})`,
    };
  }
  if (seq < head.seq) {
    if (head.floor.prev !== null && seq === head.floor.seq - 1) {
      if (digest === head.floor.prev) return { kind: 'backfill' };
      return {
        kind: 'conflict',
        head,
        reason: `fork: back-filled seq ${seq} has digest ${digest}, but the held seq ${head.floor.seq} chains to ${head.floor.prev}`,
      };
    }
    if (head.floor.prev !== null && seq < head.floor.seq - 1) {
      return {
        kind: 'conflict',
        head,
        reason: `gap below: history is held from seq ${head.floor.seq}; back-fill seq ${head.floor.seq - 1} first`,
      };
    }
    return {
      kind: 'conflict',
      head,
      reason: `replay: seq ${seq} is older than the last accepted seq ${head.seq}`,
    };
  }
  if (seq > head.seq + 1)
    return {
      kind: 'conflict',
      head,
      reason: `gap: seq ${seq} does not follow the last accepted seq ${head.seq}; post seq ${head.seq + 1} first`,
    };
  if (prev !== head.digest)
    return {
      kind: 'conflict',
      head,
      reason: `fork: prev ${prev} is not the digest of the accepted seq ${head.seq} (${head.digest})`,
    };
  return { kind: 'append' };
}

/** The seq below which the host's history is missing (back-fill wanted), or undefined when complete. */
export function missingBelow(head: ChainHead): number | undefined {
  return head.floor.prev === null ? undefined : head.floor.seq;
}

/**
 * Runs of a host's chain held below a gap, keyed by the digest of their top ack: when back-fill
 * reaches such a run's top, the floor drops to the run's own floor (those acks are already held).
 */
export type HeldRuns = ReadonlyMap<string, ChainFloor>;

/** The floor after following every held run the floor chains into. */
export function lowerFloor(floor: ChainFloor, runs: HeldRuns | undefined): ChainFloor {
  let f = floor;
  for (let guard = 0; runs && f.prev !== null && guard <= runs.size; guard++) {
    const run = runs.get(f.prev);
    if (!run) break;
    f = run;
  }
  return f;
}

/** One ack as replay sees it. */
export interface ChainLink {
  seq: number;
  digest: string;
  prev: string | null;
}

/**
 * A host's held acks (any order, duplicates allowed) -> the floor of the run ending at `headDigest`, and
 * every other run (below gaps, or fork branches) keyed by its top digest.
 */
export function chainRuns(
  links: readonly ChainLink[],
  headDigest: string,
): { floor: ChainFloor; runs: Map<string, ChainFloor> } {
  const byDigest = new Map<string, ChainLink>();
  for (const l of links) byDigest.set(l.digest, l);
  const referenced = new Set<string>();
  for (const l of byDigest.values())
    if (l.prev !== null && byDigest.has(l.prev)) referenced.add(l.prev);
  const floorOf = (top: ChainLink): ChainFloor => {
    let cur = top;
    for (let guard = 0; cur.prev !== null && guard < byDigest.size; guard++) {
      const next = byDigest.get(cur.prev);
      if (!next) break;
      cur = next;
    }
    return { seq: cur.seq, prev: cur.prev };
  };
  const runs = new Map<string, ChainFloor>();
  for (const l of byDigest.values())
    if (!referenced.has(l.digest) && l.digest !== headDigest) runs.set(l.digest, floorOf(l));
  const head = byDigest.get(headDigest);
  return { floor: head ? floorOf(head) : { seq: 0, prev: null }, runs };
}
