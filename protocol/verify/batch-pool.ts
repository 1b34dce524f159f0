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
// and replaced at the next batch; one that died between batches is replaced at the next one, and one
// that hangs between batches (it has not gone through the last batch by the next) is ended and replaced.
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

/** How long a thread may take to load its module before it takes its first batch. */
const LOAD_MS = 60_000;

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
  /** The batches posted to the thread it has not gone through yet, oldest first, with when they were posted. */
  private posted: { batch: SharedBatch; at: number }[] = [];
  /** Whether the thread has gone through a batch (then it has loaded). */
  private answering = false;
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
    this.posted.push({ batch, at: Date.now() });
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
    if (this.thread !== undefined && this.stuck()) this.retire(this.thread);
    if (this.thread === undefined) {
      const thread = startHelper(SERVE_BATCHES, this.module);
      thread?.once('exit', () => this.forget(thread));
      this.thread = thread;
    }
    return this.thread;
  }

  /**
   * Whether the thread has not gone through a batch posted to it within the stall bound (once it has
   * gone through one: loading takes longer, LOAD_MS): it hangs between batches. Kept, it would cost no
   * verdict and no time (each caller verifies alone), but it would hold on to every batch posted to it.
   * One merely slow to wake (a loaded machine, two batches of one look a few ms apart) is given the
   * bound. The thread takes its batches in order, so the oldest it has not gone through is the one to time.
   */
  private stuck(): boolean {
    while (this.posted.length > 0 && Atomics.load(this.posted[0]!.batch.counters, 2) >= 2) {
      this.posted.shift();
      this.answering = true;
    }
    const oldest = this.posted[0];
    return (
      oldest !== undefined && Date.now() - oldest.at > (this.answering ? this.stallMs : LOAD_MS)
    );
  }

  /** A thread that stalled mid-batch (hung, or died unnoticed) or between batches: ended; the next batch starts another. */
  private retire(thread: Worker): void {
    this.forget(thread);
    void thread.terminate();
  }

  /** The thread is no longer this pool's (it ended, or is being ended), nor what was posted to it. */
  private forget(thread: Worker): void {
    if (this.thread !== thread) return;
    this.thread = undefined;
    this.posted = [];
    this.answering = false;
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
