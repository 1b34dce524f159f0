// A warm verifier pool: one helper thread a long-running process (the view server) keeps for every
// signature batch, instead of the thread verifyBatch starts with each batch and ends after it. Started
// with the batch, the helper spent the look's first ~100-200 ms loading and compiling its module while
// the calling thread verified nearly everything alone (a view server's look of a minute's 1,861 new
// acks: its helper verified none of them); kept, it takes chunks from the moment the batch is posted,
// so it also pays off for batches far below the one-shot threshold. Each thread keeps its key objects
// across batches (KeyObjectCache). One-shot commands keep starting a helper per batch: measured best for them.
//
// Only speed depends on the thread, never a verdict: the batch is the same shared buffers and chunk
// counter as a one-shot helper's, the caller drains too and then finishes every job no thread answered
// (batch-verify.ts). A thread that dies or hangs mid-batch is found by the stall rule (awaitHelper), ended,
// and replaced at the next batch; one that died between batches is replaced at the next one.
import type { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import {
  CHUNK,
  KEPT_KEY_OBJECTS,
  KeyObjectCache,
  SERVE_BATCHES,
  type SharedBatch,
} from './batch-shared.ts';
import {
  HELPER_MODULE,
  STALL_MS,
  awaitHelper,
  installVerifierPool,
  startHelper,
  type BatchHelpers,
  type Helping,
} from './batch-verify.ts';

/**
 * Below this many jobs the warm thread is not asked: it would take at most one chunk of what the caller
 * finishes in about the time it takes to wake the thread.
 */
export const WARM_THRESHOLD = 2 * CHUNK;

export interface VerifierPoolOptions {
  /** The helper thread's module (tests give another). */
  module?: URL;
  /** How long a batch waits for a thread that makes no progress before finishing without it. */
  stallMs?: number;
  cores?: number;
}

export class VerifierPool implements BatchHelpers {
  readonly keyObjects = new KeyObjectCache(KEPT_KEY_OBJECTS);
  private thread: Worker | undefined;
  private closed = false;
  private readonly module: URL;
  private readonly stallMs: number;
  private readonly cores: number;

  constructor(o: VerifierPoolOptions = {}) {
    this.module = o.module ?? HELPER_MODULE;
    this.stallMs = o.stallMs ?? STALL_MS;
    this.cores = o.cores ?? availableParallelism();
  }

  /** Starts the thread ahead of the first batch: it loads its module while the process is idle. */
  start(): this {
    this.running();
    return this;
  }

  /** The thread's id while it runs (undefined: none, until the next batch or start()). */
  get threadId(): number | undefined {
    return this.thread?.threadId;
  }

  help(batch: SharedBatch): Helping | undefined {
    const total = batch.status.length;
    if (total < WARM_THRESHOLD || this.cores < 2) return undefined;
    const thread = this.running();
    if (thread === undefined) return undefined;
    thread.postMessage(batch);
    return {
      finish: () => {
        if (!awaitHelper(batch.counters, total, this.stallMs)) this.retire(thread);
      },
    };
  }

  /** Ends the thread; later batches are verified by their callers alone. */
  async close(): Promise<void> {
    this.closed = true;
    const thread = this.thread;
    this.thread = undefined;
    await thread?.terminate();
  }

  private running(): Worker | undefined {
    if (this.closed) return undefined;
    if (this.thread === undefined) {
      const thread = startHelper(SERVE_BATCHES, this.module);
      thread?.once('exit', () => {
        if (this.thread === thread) this.thread = undefined;
      });
      this.thread = thread;
    }
    return this.thread;
  }

  /** A thread that stalled mid-batch (hung, or died unnoticed): ended; the next batch starts another. */
  private retire(thread: Worker): void {
    if (this.thread === thread) this.thread = undefined;
    void thread.terminate();
  }
}

/**
 * A warm pool, started and installed for every verifyBatch of this process until `close` (which
 * uninstalls it and ends its thread): what a long-running process calls once.
 */
export function keepVerifierWarm(o: VerifierPoolOptions = {}): {
  pool: VerifierPool;
  close(): Promise<void>;
} {
  const pool = new VerifierPool(o).start();
  const uninstall = installVerifierPool(pool);
  return {
    pool,
    async close() {
      uninstall();
      await pool.close();
    },
  };
}
