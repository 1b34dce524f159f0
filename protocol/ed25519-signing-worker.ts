// The signing thread of startBatchSigner (protocol/ed25519.ts): signs each chunk it is handed, in line,
// and returns the signatures as one transferred buffer of 64-byte entries. Built as its own file in
// dist/ (scripts/build.mjs), loaded by protocol/module-thread.ts.
import { parentPort, workerData } from 'node:worker_threads';
import { createPrivateKey, sign } from 'node:crypto';

/** What startBatchSigner hands the thread: the key once, then chunks of messages. */
export interface SigningWorkerData {
  pkcs8: Uint8Array;
}
export interface SigningChunk {
  id: number;
  /** The chunk's messages one after the other; `lengths` cuts them apart. */
  bytes: Uint8Array;
  lengths: number[];
}
export interface SignedChunk {
  id: number;
  /** 64 bytes per message, in the chunk's order. */
  signatures: Uint8Array;
}

const { pkcs8 } = workerData as SigningWorkerData;
const key = createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' });

parentPort!.on('message', ({ id, bytes, lengths }: SigningChunk) => {
  const signatures = new Uint8Array(lengths.length * 64);
  let at = 0;
  for (let i = 0; i < lengths.length; i++) {
    signatures.set(sign(null, bytes.subarray(at, at + lengths[i]!), key), i * 64);
    at += lengths[i]!;
  }
  const reply: SignedChunk = { id, signatures };
  parentPort!.postMessage(reply, [signatures.buffer]);
});
