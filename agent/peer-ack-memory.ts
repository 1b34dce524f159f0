// The highest ack this host has seen from each peer, kept in the state directory, so a control plane
// that serves a peer's OLDER validly signed ack again (a replay: say "healthy" from before the peer
// failed) is refused instead of believed. Every ack passes verifyAck first; this is the chain rule the
// endpoint enforces (seq only grows), re-checked by each agent because the endpoint is not trusted.
//
// A refused or withheld peer keeps the ack remembered for it: what this host already saw (say the peer's
// `rolled-back`) stands, whatever the control plane serves later. Treating the peer as having no ack
// instead would make it an "offline" host, which a wave's offlineExcuseLimit may excuse: a replay or a
// withholding would then let the next wave start past a halt (tests/e2e/netns-withholding.test.ts).
// Missing evidence counts against progress, never for it (DESIGN.md section 2). The memory is keyed by the host key the ack verified under: a host re-keyed in
// a signed release starts a new chain, and its old seqs say nothing about the new key's acks.
//
// The memory is defence in depth, never a reason to stop: a corrupt or unreadable file is logged and
// treated as empty (the next write replaces it).
import { z } from 'zod';
import { Ack, Base64Key32, HostName, PositiveInt } from '../protocol/index.ts';
import type { AckRecord } from '../reconciler/index.ts';
import type { Logger } from './log.ts';
import type { StateDir } from './state-dir.ts';

export const PEER_ACKS_FILE = 'peer-acks.json';

// `ack`: the verified ack of that seq (absent in memory files written before it was kept).
const Seen = z.strictObject({ seq: PositiveInt, hostKey: Base64Key32, ack: Ack.optional() });
export type SeenAck = z.infer<typeof Seen>;
const PeerAckMemoryFile = z.strictObject({ peers: z.record(HostName, Seen) });

export type PeerAckMemory = ReadonlyMap<string, SeenAck>;

export interface Regression {
  host: string;
  /** The seq that was served. */
  seq: number;
  /** The highest seq seen before from that host, under the same host key. */
  highestSeen: number;
}

/**
 * Plain data in, decision out: the peers' latest verified acks, each regression replaced by the
 * remembered (newer) ack, each remembered peer the control plane no longer serves given its remembered
 * ack, and the memory to keep. `hostKeys`: the key each ack was verified with (from the signed plans).
 */
export function refuseRegressions(
  latest: Readonly<Record<string, AckRecord>>,
  hostKeys: ReadonlyMap<string, string>,
  memory: PeerAckMemory,
): {
  acks: Record<string, AckRecord>;
  regressions: Regression[];
  memory: Map<string, SeenAck>;
  changed: boolean;
} {
  const acks = Object.create(null) as Record<string, AckRecord>; // as latestAcks: host names are keys
  const regressions: Regression[] = [];
  const next = new Map(memory);
  let changed = false;
  for (const [host, ack] of Object.entries(latest)) {
    const hostKey = hostKeys.get(host);
    if (hostKey === undefined) continue; // not verifiable, so never collected: defensive only
    const seen = memory.get(host);
    const sameChain = seen !== undefined && seen.hostKey === hostKey;
    if (sameChain && ack.seq < seen.seq) {
      regressions.push({ host, seq: ack.seq, highestSeen: seen.seq });
      if (seen.ack) acks[host] = seen.ack;
      continue;
    }
    acks[host] = ack;
    if (!sameChain || ack.seq > seen.seq || !seen.ack) {
      next.set(host, { seq: ack.seq, hostKey, ack });
      changed = true;
    }
  }
  // Withheld: a peer of these plans (same key) that was seen before and is not served now.
  for (const [host, seen] of memory)
    if (!(host in acks) && seen.ack && hostKeys.get(host) === seen.hostKey) acks[host] = seen.ack;
  return { acks, regressions, memory: next, changed };
}

/** The remembered highest acks; empty (and logged) when the file is missing, corrupt or unreadable. */
export function readPeerAckMemory(state: StateDir, log: Logger): Map<string, SeenAck> {
  try {
    const file = state.read(PEER_ACKS_FILE, PeerAckMemoryFile);
    return new Map(Object.entries(file?.peers ?? {}));
  } catch (e) {
    log.warn('peer-ack-memory-unreadable', {
      file: state.path(PEER_ACKS_FILE),
      reason: (e as Error).message.slice(0, 300),
      action: 'treated as empty',
    });
    return new Map();
  }
}

/** Atomic and durable (a power cut must not reopen the replay window); a failure is logged, not fatal. */
export function writePeerAckMemory(state: StateDir, memory: PeerAckMemory, log: Logger): void {
  const peers: Record<string, SeenAck> = {};
  for (const host of [...memory.keys()].sort()) peers[host] = memory.get(host)!;
  try {
    state.write(PEER_ACKS_FILE, PeerAckMemoryFile, { peers });
  } catch (e) {
    log.warn('peer-ack-memory-not-saved', {
      file: state.path(PEER_ACKS_FILE),
      reason: (e as Error).message.slice(0, 300),
    });
  }
}
