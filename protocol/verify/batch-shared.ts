// The part of batch signature verification that runs on every thread: the shared job buffers and the
// loop that takes chunks of jobs from a shared counter. batch-verify.ts (the calling thread) and
// batch-verify-worker.ts (the helper thread) both run `drainJobs`, so the two can never disagree on
// what a job is or how its answer is recorded.
import { verify, type KeyObject } from 'node:crypto';
import type { MessagePort } from 'node:worker_threads';
import { ed25519PublicKeyObject } from '../ed25519-public-key.ts';

/** Jobs a thread takes at a time: small enough to share the work evenly, large enough to keep the shared counter cold. */
export const CHUNK = 64;

export interface SharedBatch {
  messages: Uint8Array;
  /** Job i's message is messages[offsets[i], offsets[i+1]). */
  offsets: Int32Array;
  signatures: Uint8Array;
  keyIndex: Int32Array;
  /** Raw 32-byte public keys, concatenated; keyIndex points into them. */
  keys: Uint8Array;
  /** [0] = next job to take, [1] = jobs finished, [2] = threads that found nothing left to take. */
  counters: Int32Array;
  /** 0 = not done, 1 = accepted, 2 = refused. */
  status: Int8Array;
}

/**
 * Key objects kept across batches by their key's 32 bytes, for a thread that verifies batch after batch
 * (a warm verifier pool's two threads: batch-pool.ts): a view server's look meets the fleet's host keys
 * again at every look, and building one costs ~0.01-0.03 ms (10,000 keys: a tenth of a second). At most
 * `max` keys, the least recently used dropped first. A key object is the key's bytes parsed, nothing
 * more: the same bytes always give an equal object (KeyObject.equals), so which one a job gets cannot
 * change its verdict.
 */
export class KeyObjectCache {
  private readonly objects = new Map<string, KeyObject>();

  constructor(readonly max: number) {}

  get size(): number {
    return this.objects.size;
  }

  /** The object of the key `raw` (32 bytes). */
  get(raw: Uint8Array): KeyObject {
    // latin1: one character per byte, the cheapest exact string of the bytes.
    const id = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('latin1');
    let object = this.objects.get(id);
    if (object !== undefined) this.objects.delete(id);
    else object = ed25519PublicKeyObject(raw);
    this.objects.set(id, object); // last in the map's order: the most recently used
    while (this.objects.size > this.max) this.objects.delete(this.objects.keys().next().value!);
    return object;
  }
}

/**
 * Each key's KeyObject, built the first time a job of this thread needs it (taken from `cache` when
 * given). Built up front on every thread (as DER, ~0.1-0.25 ms a key then), 10,000 host keys kept the
 * helper parsing while the caller verified nearly everything alone; built on demand, a thread parses
 * only the keys of the jobs it takes (a manifest batch: each key once in all).
 */
export class KeyObjects {
  private readonly built: (KeyObject | undefined)[];

  constructor(
    private readonly keys: Uint8Array,
    private readonly cache?: KeyObjectCache,
  ) {
    this.built = new Array<KeyObject | undefined>(Math.floor(keys.length / 32));
  }

  get length(): number {
    return this.built.length;
  }

  /** Key `k`'s object, or undefined for an index with no key. */
  get(k: number): KeyObject | undefined {
    if (!(k >= 0 && k < this.built.length)) return undefined;
    return (this.built[k] ??= this.build(this.keys.subarray(k * 32, k * 32 + 32)));
  }

  private build(raw: Uint8Array): KeyObject {
    return this.cache ? this.cache.get(raw) : ed25519PublicKeyObject(raw);
  }
}

/** OpenSSL's verdict on job i, recorded in the shared status array. */
export function runJob(b: SharedBatch, keyObjects: KeyObjects, i: number): void {
  b.status[i] = opensslAccepts(b, keyObjects, i) ? 1 : 2;
}

function opensslAccepts(b: SharedBatch, keyObjects: KeyObjects, i: number): boolean {
  try {
    return verify(
      null,
      b.messages.subarray(b.offsets[i]!, b.offsets[i + 1]!),
      keyObjects.get(b.keyIndex[i]!)!,
      b.signatures.subarray(i * 64, i * 64 + 64),
    );
  } catch {
    // A job OpenSSL cannot even run (no key object for its index): not accepted here.
    return false;
  }
}

/**
 * Takes chunks until none are left. `notify` wakes a thread blocked in Atomics.wait on the finished
 * counter (the calling thread waits for the helper; the helper waits for no one).
 */
export function drainJobs(b: SharedBatch, keyObjects: KeyObjects, notify: boolean): void {
  const total = b.status.length;
  for (;;) {
    const start = Atomics.add(b.counters, 0, CHUNK);
    if (start >= total) return void Atomics.add(b.counters, 2, 1);
    const end = Math.min(total, start + CHUNK);
    for (let i = start; i < end; i++) runJob(b, keyObjects, i);
    Atomics.add(b.counters, 1, end - start);
    if (notify) Atomics.notify(b.counters, 1);
  }
}

/** A helper thread's work on one batch: every chunk it can take, waking the caller as it goes. */
export function helperMain(b: SharedBatch, cache?: KeyObjectCache): void {
  drainJobs(b, new KeyObjects(b.keys, cache), true);
}

/** What a warm pool's thread is started with (workerData) instead of a batch: wait for batches. */
export const SERVE_BATCHES = 'serve batches';

/**
 * How many key objects each thread of a warm pool keeps: 10,000 hosts' keys with room to spare, at
 * ~1.5 KB of memory a key (~25 MB a thread when full).
 */
export const KEPT_KEY_OBJECTS = 16_384;

/**
 * The helper thread's whole life (batch-verify-worker.ts): one batch given at its start (verifyBatch
 * without a pool), then it ends; or, started by a warm pool (SERVE_BATCHES), every batch posted to it,
 * one after the other, with its key objects kept from batch to batch, until the pool ends it.
 */
export function helperThread(data: unknown, port: MessagePort | null): void {
  if (data !== SERVE_BATCHES) return helperMain(data as SharedBatch);
  const cache = new KeyObjectCache(KEPT_KEY_OBJECTS);
  port!.on('message', (b: SharedBatch) => helperMain(b, cache));
}
