// Verifies many Ed25519 signatures with OpenSSL on every core, while keeping verifyTree synchronous:
// one helper thread and the calling thread take chunks from a shared counter, and the caller blocks on
// Atomics.wait until all are done. Only an "accepted" answer is trusted: anything OpenSSL refuses is
// re-checked by the caller through the full verifyBytes path (with its cofactored fallback), so the
// result never differs from verifying one by one.
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { passesStrictEncodingChecks } from '../ed25519.ts';

export interface SignatureJob {
  publicKey: Uint8Array;
  message: Uint8Array;
  signature: Uint8Array;
}

/** Below this many jobs a helper thread costs more to start than it saves. */
export const PARALLEL_THRESHOLD = 1024;
const CHUNK = 64;
const STALL_MS = 3000;

const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

interface SharedBatch {
  messages: Uint8Array;
  /** Job i's message is messages[offsets[i], offsets[i+1]). */
  offsets: Int32Array;
  signatures: Uint8Array;
  keyIndex: Int32Array;
  keys: Uint8Array;
  /** [0] = next job to take, [1] = jobs finished. */
  counters: Int32Array;
  /** 0 = not done, 1 = accepted, 2 = refused. */
  status: Int8Array;
}

// The helper runs plain JavaScript (no TypeScript loader needed in the thread) over the shared buffers.
const HELPER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { createPublicKey, verify } = require('node:crypto');
const b = workerData;
const prefix = Buffer.from('302a300506032b6570032100', 'hex');
const keys = [];
for (let k = 0; k * 32 < b.keys.length; k++) keys.push(createPublicKey({ key: Buffer.concat([prefix, b.keys.subarray(k * 32, k * 32 + 32)]), format: 'der', type: 'spki' }));
const total = b.status.length;
for (;;) {
  const start = Atomics.add(b.counters, 0, ${CHUNK});
  if (start >= total) break;
  const end = Math.min(total, start + ${CHUNK});
  for (let i = start; i < end; i++) {
    let ok = false;
    try { ok = verify(null, b.messages.subarray(b.offsets[i], b.offsets[i + 1]), keys[b.keyIndex[i]], b.signatures.subarray(i * 64, i * 64 + 64)); } catch {}
    b.status[i] = ok ? 1 : 2;
  }
  Atomics.add(b.counters, 1, end - start);
  Atomics.notify(b.counters, 1);
}
`;

/** Rounded up to a non-empty multiple of 8 bytes; views always give their exact length. */
function share(bytes: number): SharedArrayBuffer {
  return new SharedArrayBuffer(Math.max(8, Math.ceil(bytes / 8) * 8));
}

function buildBatch(jobs: readonly SignatureJob[]): { batch: SharedBatch; keyObjects: KeyObject[] } {
  const keyIds = new Map<string, number>();
  const keyList: Uint8Array[] = [];
  const keyIndex = new Int32Array(share(jobs.length * 4), 0, jobs.length);
  jobs.forEach((j, i) => {
    const hex = Buffer.from(j.publicKey).toString('hex');
    let k = keyIds.get(hex);
    if (k === undefined) {
      k = keyList.length;
      keyIds.set(hex, k);
      keyList.push(j.publicKey);
    }
    keyIndex[i] = k;
  });
  const total = jobs.reduce((n, j) => n + j.message.byteLength, 0);
  const messages = new Uint8Array(share(total), 0, total);
  const offsets = new Int32Array(share((jobs.length + 1) * 4), 0, jobs.length + 1);
  const signatures = new Uint8Array(share(jobs.length * 64), 0, jobs.length * 64);
  let at = 0;
  jobs.forEach((j, i) => {
    offsets[i] = at;
    messages.set(j.message, at);
    at += j.message.byteLength;
    signatures.set(j.signature, i * 64);
  });
  offsets[jobs.length] = at;
  const keys = new Uint8Array(share(keyList.length * 32), 0, keyList.length * 32);
  keyList.forEach((k, i) => keys.set(k, i * 32));
  const keyObjects = keyList.map((k) => createPublicKey({ key: Buffer.concat([SPKI_PREFIX, k]), format: 'der', type: 'spki' }));
  return {
    batch: { messages, offsets, signatures, keyIndex, keys, counters: new Int32Array(share(8), 0, 2), status: new Int8Array(share(jobs.length), 0, jobs.length) },
    keyObjects,
  };
}

function runJob(b: SharedBatch, keyObjects: KeyObject[], i: number): void {
  let ok = false;
  try {
    ok = verify(null, b.messages.subarray(b.offsets[i]!, b.offsets[i + 1]!), keyObjects[b.keyIndex[i]!]!, b.signatures.subarray(i * 64, i * 64 + 64));
  } catch {
    ok = false;
  }
  b.status[i] = ok ? 1 : 2;
}

/**
 * Returns, per job, true when the signature passes the strict encoding checks and OpenSSL accepts it
 * (then it is valid under verifyBytes). False means "not established here": the caller must decide
 * through verifyBytes / verifyEnvelope, which also produce the typed error.
 */
export function verifyBatch(jobs: readonly SignatureJob[], opts: { parallel?: boolean } = {}): boolean[] {
  if (jobs.length === 0) return [];
  const prechecked = jobs.map((j) => passesStrictEncodingChecks(j.publicKey, j.signature));
  const candidates = jobs.filter((_, i) => prechecked[i]);
  const { batch, keyObjects } = buildBatch(candidates);
  const total = candidates.length;
  const parallel = (opts.parallel ?? true) && total >= PARALLEL_THRESHOLD && availableParallelism() > 1;
  let helper: Worker | undefined;
  if (parallel) {
    try {
      helper = new Worker(HELPER_SOURCE, { eval: true, workerData: batch });
      helper.unref();
      helper.on('error', () => {
        /* the caller finishes whatever the helper left undone */
      });
    } catch {
      helper = undefined;
    }
  }
  for (;;) {
    const start = Atomics.add(batch.counters, 0, CHUNK);
    if (start >= total) break;
    const end = Math.min(total, start + CHUNK);
    for (let i = start; i < end; i++) runJob(batch, keyObjects, i);
    Atomics.add(batch.counters, 1, end - start);
  }
  if (helper) {
    let lastDone = -1;
    let lastProgress = Date.now();
    for (;;) {
      const done = Atomics.load(batch.counters, 1);
      if (done >= total) break;
      if (done !== lastDone) {
        lastDone = done;
        lastProgress = Date.now();
      } else if (Date.now() - lastProgress > STALL_MS) {
        break; // helper died mid-chunk: finish its jobs here
      }
      Atomics.wait(batch.counters, 1, done, 50);
    }
    void helper.terminate();
  }
  for (let i = 0; i < total; i++) if (batch.status[i] === 0) runJob(batch, keyObjects, i);
  const out: boolean[] = [];
  let c = 0;
  for (let i = 0; i < jobs.length; i++) out.push(prechecked[i] ? batch.status[c++] === 1 : false);
  return out;
}
