// Verifies many Ed25519 signatures with OpenSSL on every core, while keeping verifyBatch synchronous:
// one helper thread and the calling thread take chunks from a shared counter, and the caller blocks on
// Atomics.wait until all are done. Only an "accepted" answer is trusted: anything OpenSSL refuses is
// re-checked by the caller through the full verifyBytes path (with its cofactored fallback), so the
// result never differs from verifying one by one.
// A one-shot command starts the helper with its batch and ends it after (measured best for them); a
// long-running process (the view server) installs a warm pool instead (batch-pool.ts): one helper thread
// kept between batches, which then also helps smaller batches, and key objects kept across them.
import type { Worker } from 'node:worker_threads';
import { moduleBeside, startModuleThread } from '../module-thread.ts';
import { availableParallelism } from 'node:os';
import { passesStrictEncodingChecks } from '../ed25519.ts';
import {
  drainJobs,
  KeyObjects,
  runJob,
  type KeyObjectCache,
  type SERVE_BATCHES,
  type SharedBatch,
} from './batch-shared.ts';

export interface SignatureJob {
  publicKey: Uint8Array;
  message: Uint8Array;
  signature: Uint8Array;
}

/** Below this many jobs a helper thread costs more to start than it saves. */
export const PARALLEL_THRESHOLD = 1024;
export const STALL_MS = 3000;

/**
 * The helper thread's module: the compiled sibling in dist/ when this runs as the shipped command, the
 * TypeScript source when it runs as source (tests and benchmarks, through tsx; startHelper then loads
 * tsx into the thread, whose module hooks do not reach worker threads by themselves).
 */
export const HELPER_MODULE = moduleBeside('batch-verify-worker', import.meta.url);

/** Rounded up to a non-empty multiple of 8 bytes; views always give their exact length. */
function share(bytes: number): SharedArrayBuffer {
  return new SharedArrayBuffer(Math.max(8, Math.ceil(bytes / 8) * 8));
}

/** The jobs in shared buffers, and the calling thread's key objects for them (from `cache` when given). */
export function buildBatch(
  jobs: readonly SignatureJob[],
  cache?: KeyObjectCache,
): {
  batch: SharedBatch;
  keyObjects: KeyObjects;
} {
  const keyIds = new Map<string, number>();
  // Readers hand every job of one key the same array: each array's bytes are looked up once.
  const keyOfArray = new Map<Uint8Array, number>();
  const keyList: Uint8Array[] = [];
  const keyIndex = new Int32Array(share(jobs.length * 4), 0, jobs.length);
  jobs.forEach((j, i) => {
    let k = keyOfArray.get(j.publicKey);
    if (k === undefined) {
      const hex = Buffer.from(j.publicKey).toString('hex');
      k = keyIds.get(hex);
      if (k === undefined) {
        k = keyList.length;
        keyIds.set(hex, k);
        keyList.push(j.publicKey);
      }
      keyOfArray.set(j.publicKey, k);
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
  const keyObjects = new KeyObjects(keys, cache);
  return {
    batch: {
      messages,
      offsets,
      signatures,
      keyIndex,
      keys,
      counters: new Int32Array(share(12), 0, 3),
      status: new Int8Array(share(jobs.length), 0, jobs.length),
    },
    keyObjects,
  };
}

/**
 * Starts the helper thread on `batch` (or, SERVE_BATCHES, to wait for the batches a warm pool posts it).
 * A helper that cannot start or dies only costs speed (the caller finishes what it left undone), but it
 * says so on stderr: a missing worker file is a packaging bug.
 */
export function startHelper(
  batch: SharedBatch | typeof SERVE_BATCHES,
  module: URL = HELPER_MODULE,
): Worker | undefined {
  const failed = (e: unknown) =>
    process.emitWarning(
      `signature batch helper thread (${module.href}) failed, verifying on one thread: ${(e as Error).message}`,
    );
  try {
    const helper = startModuleThread(module, batch);
    helper.unref();
    helper.on('error', failed);
    return helper;
  } catch (e) {
    failed(e);
    return undefined;
  }
}

/** A helper thread pays off only for a large batch, with a second core, unless the caller said no. */
export function useHelperThread(
  total: number,
  parallel = true,
  cores: number = availableParallelism(),
): boolean {
  return parallel && total >= PARALLEL_THRESHOLD && cores > 1;
}

/**
 * Blocks until the helper has finished its jobs (true), or made no progress for `stallMs` (false: it died
 * mid-chunk, and the caller finishes its jobs). A helper that keeps finishing jobs is waited for however
 * long the batch takes.
 */
export function awaitHelper(counters: Int32Array, total: number, stallMs = STALL_MS): boolean {
  let lastDone = -1;
  let lastProgress = Date.now();
  for (;;) {
    const done = Atomics.load(counters, 1);
    if (done >= total) return true;
    if (done !== lastDone) {
      lastDone = done;
      lastProgress = Date.now();
    } else if (Date.now() - lastProgress > stallMs) {
      return false;
    }
    Atomics.wait(counters, 1, done, 50);
  }
}

/** Runs every job no thread finished (a helper that died mid-chunk leaves some); finished ones keep their answer. */
export function finishUndone(batch: SharedBatch, keyObjects: KeyObjects): void {
  for (let i = 0; i < batch.status.length; i++)
    if (batch.status[i] === 0) runJob(batch, keyObjects, i);
}

/** A thread helping with one batch: `finish` blocks until it is done (or stalled), once the caller has drained. */
export interface Helping {
  finish(): void;
}

/**
 * Threads kept warm for every batch by a long-running process (batch-pool.ts VerifierPool, installed
 * with installVerifierPool): its thread's help with a batch (undefined: the caller verifies alone) and
 * the calling thread's key objects kept across batches.
 */
export interface BatchHelpers {
  readonly keyObjects: KeyObjectCache;
  help(batch: SharedBatch): Helping | undefined;
}

let installed: BatchHelpers | undefined;

/**
 * Makes every verifyBatch of this process use `pool` until the returned function is called (which puts
 * back what was installed before, if `pool` is still the one installed).
 */
export function installVerifierPool(pool: BatchHelpers): () => void {
  const before = installed;
  installed = pool;
  return () => {
    if (installed === pool) installed = before;
  };
}

/** The pool verifyBatch uses now, if one is installed. */
export function installedVerifierPool(): BatchHelpers | undefined {
  return installed;
}

/** A one-shot helper thread started on `batch`, ended once the batch is done. */
function oneShotHelper(batch: SharedBatch): Helping | undefined {
  const helper = startHelper(batch);
  return (
    helper && {
      finish: () => {
        awaitHelper(batch.counters, batch.status.length);
        void helper.terminate();
      },
    }
  );
}

/**
 * Returns, per job, true when the signature passes the strict encoding checks and OpenSSL accepts it
 * (then it is valid under verifyBytes). False means "not established here": the caller must decide
 * through verifyBytes / verifyEnvelope, which also produce the typed error. `parallel: false`: no thread
 * but the caller's (nor the installed pool's).
 */
export function verifyBatch(
  jobs: readonly SignatureJob[],
  opts: { parallel?: boolean } = {},
): boolean[] {
  if (jobs.length === 0) return [];
  const prechecked = jobs.map((j) => passesStrictEncodingChecks(j.publicKey, j.signature));
  const candidates = jobs.filter((_, i) => prechecked[i]);
  const pool = opts.parallel === false ? undefined : installed;
  const { batch, keyObjects } = buildBatch(candidates, pool?.keyObjects);
  const helper = pool
    ? pool.help(batch)
    : useHelperThread(candidates.length, opts.parallel)
      ? oneShotHelper(batch)
      : undefined;
  drainJobs(batch, keyObjects, false);
  helper?.finish();
  finishUndone(batch, keyObjects);
  const out: boolean[] = [];
  let c = 0;
  for (let i = 0; i < jobs.length; i++) out.push(prechecked[i] ? batch.status[c++] === 1 : false);
  return out;
}
