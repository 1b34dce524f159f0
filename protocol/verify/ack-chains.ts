// Ack signatures established through each host's hash chain, for readers that only show acks (the
// dashboard). Each ack names the SHA-256 of its predecessor's canonical envelope (signature included,
// schemas/ack.ts `prev`), so a valid signature on a host's newest ack vouches, byte for byte, for every
// ack its `prev` links reach: the host's key signed a digest that only those exact bytes have
// (SHA-256 collision resistance). One Ed25519 check per chain instead of one per ack. The safety
// argument, and what stays checked per ack, is in docs/architecture.md "Readers that verify less".
import { verifyBatch, type SignatureJob } from './batch-verify.ts';

export interface ChainedSignatureJob extends Omit<SignatureJob, 'message'> {
  /**
   * The signed message, or how to get it: only tips and acks no walk reaches are checked, so a reader
   * need not cut out the signed text of the others. Undefined from the function: not established here.
   */
  message: Uint8Array | (() => Uint8Array | undefined);
  /** SHA-256 (`sha256:<hex>`) of exactly the bytes this job's document was read from. */
  id: string;
  /** The digest its signed content names as its predecessor's (an ack's `prev`); null: none. */
  prev: string | null;
}

/**
 * Per job, like verifyBatch: true when the job's signed content is established, by its own signature
 * or by a chain. A job vouches for its predecessor (the job whose `id` is its `prev`) only when both
 * name the same public key and the job itself is established. First the chain tips (jobs no other job
 * of the same key names as predecessor) are verified, and each accepted tip's chain is walked back by
 * digest; then every job no walk reached (behind a bad tip, forks, breaks, cycles) is verified on its
 * own. False means "not established here": the caller decides through the full per-document check,
 * which gives the typed error, exactly as after verifyBatch.
 */
export function verifyByChainTips(
  jobs: readonly ChainedSignatureJob[],
  opts: { parallel?: boolean } = {},
): boolean[] {
  const predecessor = predecessorsOf(jobs);
  const hasSuccessor = new Uint8Array(jobs.length);
  for (const p of predecessor) if (p >= 0) hasSuccessor[p] = 1;

  const established = new Array<boolean>(jobs.length).fill(false);
  const decided = new Uint8Array(jobs.length);
  const tips = jobs.flatMap((_, i) => (hasSuccessor[i] ? [] : [i]));
  const tipAccepted = verifyEach(jobs, tips, opts);
  tips.forEach((tip, t) => {
    decided[tip] = 1;
    if (!tipAccepted[t]) return;
    established[tip] = true;
    // A walk stops at a job already decided: another walk established it and everything behind it.
    for (let k = predecessor[tip]!; k >= 0 && !decided[k]; k = predecessor[k]!) {
      decided[k] = 1;
      established[k] = true;
    }
  });

  const rest = jobs.flatMap((_, i) => (decided[i] ? [] : [i]));
  const restAccepted = verifyEach(jobs, rest, opts);
  rest.forEach((i, r) => (established[i] = restAccepted[r]!));
  return established;
}

/** verifyBatch over the jobs at `which`; a job whose message cannot be had is not established. */
function verifyEach(
  jobs: readonly ChainedSignatureJob[],
  which: readonly number[],
  opts: { parallel?: boolean },
): boolean[] {
  const batch: SignatureJob[] = [];
  const at = which.map((i) => {
    const j = jobs[i]!;
    const message = typeof j.message === 'function' ? j.message() : j.message;
    if (message === undefined) return -1;
    batch.push({ publicKey: j.publicKey, message, signature: j.signature });
    return batch.length - 1;
  });
  const accepted = verifyBatch(batch, opts);
  return at.map((b) => b >= 0 && accepted[b]!);
}

/** Per job, the index of the job of the same key whose bytes its `prev` names, or -1. */
function predecessorsOf(jobs: readonly ChainedSignatureJob[]): number[] {
  const byId = new Map<string, number>();
  jobs.forEach((j, i) => {
    if (!byId.has(j.id)) byId.set(j.id, i);
  });
  return jobs.map((j, i) => {
    const k = j.prev === null ? undefined : byId.get(j.prev);
    return k !== undefined && k !== i && sameKey(jobs[k]!.publicKey, j.publicKey) ? k : -1;
  });
}

/** Readers hand every job of one key the same array; anything else is compared byte by byte. */
function sameKey(a: Uint8Array, b: Uint8Array): boolean {
  return a === b || Buffer.compare(a, b) === 0;
}
