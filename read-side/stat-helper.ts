// Stats of a look's latest-ack files on two threads, for a long-running view server (cli/view-server.ts).
// A warm look at 10,000 hosts stats every file of its scope (6,666 for one host's view, 10,000 for the
// fleet's) to recall each by its identity (read-side/ack-file-memo.ts), and those stats were the largest
// single item of a served look (~45-75 ms; each is ~5 us of Node around ~3 us of system call). A thread
// kept warm stats half of them while the look's own thread stats the other half: the same system call,
// the same fields, at the same moment of the look (after its start, which the racy rule needs); only
// the thread differs. A path the helper could not stat (an error other than a missing file), or all of
// them when the helper is gone or late, is left to the look, which stats it itself as without a helper.
// One-shot looks do not start one: the thread's start costs more than it saves once.
import type { Worker } from 'node:worker_threads';
import { moduleBeside, startModuleThread } from '../protocol/index.ts';
import { statUnlessError, type Seen } from './file-identity.ts';
import {
  NOT_A_FILE,
  NOT_SEEN,
  PATH_SEPARATOR,
  STAT_FIELDS,
  type StatHelperData,
  type StatRequest,
} from './stat-helper-shared.ts';

/**
 * How long the look waits for the helper's half before it stats that half itself: far longer than the
 * helper takes (~20 ms for 5,000 files). A helper that late is not asked again (a stuck helper delays
 * one look, not all).
 */
const HELPER_WAIT_MS = 5_000;
/** Fewer paths than this are stat-ed by the look alone (a message costs more than it saves). */
const MIN_SHARED = 512;

/** Stats files for a look, half of them on a helper thread kept warm. */
export class StatHelper {
  private seq = 0;
  private gone = false;
  /** How many paths of the last statAll the helper stat-ed (observability, tests). */
  lastShared = 0;
  private readonly done: Int32Array;

  private constructor(
    private readonly worker: Worker,
    done: SharedArrayBuffer,
  ) {
    this.done = new Int32Array(done);
    worker.unref();
    worker.on('error', () => (this.gone = true));
    worker.on('exit', () => (this.gone = true));
  }

  static start(): StatHelper {
    const done = new SharedArrayBuffer(4);
    const data: StatHelperData = { done };
    return new StatHelper(
      startModuleThread(moduleBeside('stat-helper-worker', import.meta.url), data),
      done,
    );
  }

  /**
   * statOf of each path, in order; undefined where it is left to the caller (an error other than a
   * missing file, on either thread: the caller's own stat then meets it as it would have).
   */
  statAll(paths: readonly string[]): (Seen | undefined)[] {
    const out = new Array<Seen | undefined>(paths.length);
    const shared = this.gone || paths.length < MIN_SHARED ? 0 : paths.length >> 1;
    const first = paths.length - shared;
    let results: Float64Array | null = null;
    const seq = ++this.seq;
    if (shared > 0) {
      const buffer = new SharedArrayBuffer(shared * STAT_FIELDS * 8);
      results = new Float64Array(buffer);
      const request: StatRequest = {
        seq,
        paths: paths.slice(first).join(PATH_SEPARATOR),
        results: buffer,
      };
      this.worker.postMessage(request);
    }
    for (let i = 0; i < first; i++) out[i] = statUnlessError(paths[i]!);
    this.lastShared = 0;
    if (results !== null && this.waitFor(seq)) {
      for (let i = 0; i < shared; i++) out[first + i] = seenAt(results, i);
      this.lastShared = shared;
    }
    return out;
  }

  /** Whether the helper finished request `seq` within HELPER_WAIT_MS. */
  private waitFor(seq: number): boolean {
    const deadline = Date.now() + HELPER_WAIT_MS;
    for (;;) {
      const now = Atomics.load(this.done, 0);
      if (now >= seq) return true;
      const left = deadline - Date.now();
      if (left <= 0) this.gone = true;
      if (this.gone) return false;
      Atomics.wait(this.done, 0, now, left);
    }
  }

  async close(): Promise<void> {
    this.gone = true;
    await this.worker.terminate();
  }
}

/** Path `i`'s fields in `results` as statOf gives them. */
function seenAt(results: Float64Array, i: number): Seen | undefined {
  const at = i * STAT_FIELDS;
  const dev = results[at]!;
  if (dev === NOT_SEEN) return undefined;
  if (dev === NOT_A_FILE) return null;
  return {
    dev,
    ino: results[at + 1]!,
    size: results[at + 2]!,
    mtimeMs: results[at + 3]!,
    ctimeMs: results[at + 4]!,
  };
}

let installed: StatHelper | null = null;

/** The helper the looks of this process use (a view server installs one; null: none). */
export function installedStatHelper(): StatHelper | null {
  return installed;
}

/**
 * Makes this process's looks use `helper` until the returned function is called (which puts back what
 * was installed before, if `helper` is still the one installed), as installVerifierPool does for the
 * signature batches.
 */
export function installStatHelper(helper: StatHelper): () => void {
  const before = installed;
  installed = helper;
  return () => {
    if (installed === helper) installed = before;
  };
}
