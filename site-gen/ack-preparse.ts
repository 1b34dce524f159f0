// A truly cold dashboard build takes in every ack of the log (strict JSON + schema, ~24,000 at 10,000
// hosts) after walking the release, on one core. That intake depends only on the bytes, not on the
// release, so a helper thread does it while the main thread walks the release and hands back the
// digests of the acks that passed (AckCache.primeTakenIn: the main thread then only decodes those, as it
// does acks an earlier run took in; handing back the digests, not the acks, keeps the copy between the
// threads small). The claims and signatures are still checked on the main thread against the verified
// release, exactly as for any ack.
import { readFileSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import {
  listAckLogSegments,
  moduleBeside,
  parseAckLog,
  readAck,
  startModuleThread,
} from '../protocol/index.ts';

/** Below this many bytes of log (~1,200 acks) a thread costs more to start than it spares. */
export const PREPARSE_MIN_BYTES = 1024 * 1024;

/** Compiled beside this file in dist/ (scripts/build.mjs), or the source under tsx. */
const PREPARSE_MODULE = moduleBeside('ack-preparse-worker', import.meta.url);

export interface PreparseRequest {
  /** The log's segment files, oldest first (protocol listAckLogSegments). */
  segments: string[];
  /** The build reads the newest this many bytes; whole segments within it are taken in here. */
  windowBytes: number;
}

/** The digests of the records whose acks passed the strict intake. */
export type Preparsed = string[];

/**
 * The strict intake of the records of the newest whole segments within `windowBytes`: every ack that
 * passes, by its record's digest (the SHA-256 of the record's bytes, parseAckLog checked). Anything else (a corrupt segment, a refused ack, a record whose
 * decoding replaced bytes) is left to the build's own intake, which reports it.
 */
export function takeInLogRecords(req: PreparseRequest): Preparsed {
  const out: Preparsed = [];
  let left = req.windowBytes;
  for (const file of [...req.segments].reverse()) {
    try {
      // A segment larger than what is left of the window is read by its tail only: not here.
      if (statSync(file).size > left) break;
      const bytes = readFileSync(file);
      left -= bytes.length;
      for (const r of parseAckLog(bytes, file).records) {
        // Such a record is taken in under its bytes' own digest (AckCollector.addLogRecord).
        if (r.canonical.includes('\uFFFD')) continue;
        try {
          readAck(Buffer.from(r.canonical, 'utf8'), file);
          out.push(r.digest);
        } catch {
          // Refused: the build's intake refuses it again, naming the record.
        }
      }
    } catch {
      break;
    }
  }
  return out;
}

/** A running intake (startAckPreparse). */
export interface AckPreparse {
  /** The digests of the records that passed, once the thread answers. Never rejects. */
  digests(): Promise<Preparsed>;
  /** Ends the thread (a build that failed before its ack intake); digests() then gives none. */
  stop(): void;
}

/**
 * Starts the intake of `logFile`'s records on a helper thread; null when the log is too small to pay
 * for a thread or there is one core, unless `always`. A helper that fails only costs speed (the build
 * takes every ack in itself, given no digests), but it says so on stderr, as a packaging bug would.
 */
export function startAckPreparse(
  logFile: string,
  windowBytes: number,
  opts: { module?: URL; always?: boolean } = {},
): AckPreparse | null {
  const segments = listAckLogSegments(logFile).map((s) => s.file);
  let bytes = 0;
  for (const file of segments) bytes += statSync(file, { throwIfNoEntry: false })?.size ?? 0;
  const pays = bytes >= PREPARSE_MIN_BYTES && availableParallelism() > 1;
  if (segments.length === 0 || (!pays && opts.always !== true)) return null;
  const module = opts.module ?? PREPARSE_MODULE;
  let helper: Worker | undefined;
  const result = new Promise<Preparsed>((resolve) => {
    const failed = (e: unknown) => {
      process.emitWarning(
        `ack intake helper thread (${module.href}) failed, taking acks in on one thread: ${(e as Error).message}`,
      );
      resolve([]);
    };
    try {
      const request: PreparseRequest = { segments, windowBytes };
      const thread = startModuleThread(module, request);
      helper = thread;
      thread.once('message', (m: Preparsed) => {
        resolve(m);
        void thread.terminate();
      });
      thread.once('error', failed);
      thread.once('exit', () => resolve([]));
    } catch (e) {
      failed(e);
    }
  });
  return {
    digests: () => result,
    stop: () => void helper?.terminate(),
  };
}
