// A truly cold dashboard build takes in every ack of the log (strict JSON + schema, ~24,000 at 10,000
// hosts) after walking the release, on one core. That intake depends only on the bytes, not on the
// release, so a helper thread does it while the main thread walks the release and hands back the
// digests of the acks that passed (AckCache.primeTakenIn: the main thread then only decodes those, as it
// does acks an earlier run took in; handing back the digests, not the acks, keeps the copy between the
// threads small). The claims and signatures are still checked on the main thread against the verified
// release, exactly as for any ack. The thread then reads and hashes the tree's latest-ack files
// (acks/hosts/, 10,000 opened, read and closed at 10,000 hosts), taking in those whose bytes are no
// log record's, and hands back each file's digest: the main thread does not read again a file whose
// bytes are an ack it already took in as that host's (read-side collectTreeAcks `hashedFiles`).
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import {
  LIMITS,
  listAckLogSegments,
  moduleBeside,
  parseAckLog,
  readAck,
  readCappedFileInto,
  sha256Digest,
  startModuleThread,
} from '../protocol/index.ts';
import { MAX_ACK_FILES, isLatestAckFile, type HashedFiles } from '../read-side/index.ts';

/** Below this many bytes of log (~1,200 acks) a thread costs more to start than it spares. */
export const PREPARSE_MIN_BYTES = 1024 * 1024;

/** Compiled beside this file in dist/ (scripts/build.mjs), or the source under tsx. */
const PREPARSE_MODULE = moduleBeside('ack-preparse-worker', import.meta.url);

export interface PreparseRequest {
  /** The log's segment files, oldest first (protocol listAckLogSegments). */
  segments: string[];
  /** The build reads the newest this many bytes; whole segments within it are taken in here. */
  windowBytes: number;
  /** The tree's latest-ack files' directory (absolute: acks/hosts), or null: none read here. */
  hostsDir: string | null;
}

export interface Preparsed {
  /** The digests of the records and latest-ack files whose acks passed the strict intake. */
  takenIn: string[];
  /** The latest-ack files read: path (`hostsDir`/name), the SHA-256 of their bytes, their size. */
  files: { paths: string[]; digests: string[]; sizes: number[] };
}

const NOTHING: Preparsed = { takenIn: [], files: { paths: [], digests: [], sizes: [] } };

/** The log's records, then the latest-ack files, as one answer. */
export function preparse(req: PreparseRequest): Preparsed {
  const takenIn = takeInLogRecords(req);
  const files = req.hostsDir === null ? NOTHING.files : hashLatestFiles(req.hostsDir, takenIn);
  return { takenIn, files };
}

/**
 * Reads and hashes every latest-ack file of `hostsDir` (named as collectTreeAcks lists them; none past
 * its MAX_ACK_FILES, which it refuses), and takes in the acks of those whose digest is not in
 * `takenIn` yet (appending the ones that pass). A file that cannot be read (missing, too large) is
 * left out: the build reads it and reports it.
 */
export function hashLatestFiles(hostsDir: string, takenIn: string[]): Preparsed['files'] {
  const files: Preparsed['files'] = { paths: [], digests: [], sizes: [] };
  let names: string[];
  try {
    names = readdirSync(hostsDir).filter(isLatestAckFile);
  } catch {
    return files;
  }
  if (names.length > MAX_ACK_FILES) return files;
  const known = new Set(takenIn);
  // Each file is hashed (and some taken in) right after it is read: one buffer serves them all.
  const scratch = Buffer.allocUnsafe(LIMITS.ack);
  for (const name of names) {
    const path = `${hostsDir}/${name}`;
    let bytes: Buffer;
    try {
      bytes = readCappedFileInto(path, LIMITS.ack, path, scratch);
    } catch {
      continue;
    }
    const digest = sha256Digest(bytes);
    files.paths.push(path);
    files.digests.push(digest);
    files.sizes.push(bytes.length);
    if (known.has(digest)) continue;
    known.add(digest);
    try {
      readAck(bytes, path);
      takenIn.push(digest);
    } catch {
      // Refused: the build's intake refuses it again, naming the file.
    }
  }
  return files;
}

/** What the build gives collectTreeAcks of a helper's answer. */
export function hashedFilesOf(p: Preparsed): HashedFiles {
  const out = new Map<string, { digest: string; size: number }>();
  const { paths, digests, sizes } = p.files;
  for (let i = 0; i < paths.length; i++)
    out.set(paths[i]!, { digest: digests[i]!, size: sizes[i]! });
  return out;
}

/**
 * The strict intake of the records of the newest whole segments within `windowBytes`: every ack that
 * passes, by its record's digest (the SHA-256 of the record's bytes, parseAckLog checked). Anything else (a corrupt segment, a refused ack, a record whose
 * decoding replaced bytes) is left to the build's own intake, which reports it.
 */
export function takeInLogRecords(req: Omit<PreparseRequest, 'hostsDir'>): string[] {
  const out: string[] = [];
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
          // The text, not its bytes again: the record's bytes decoded without a replacement are
          // valid UTF-8 and are this text, which is what the bytes' intake would parse (except a
          // leading BOM, which it drops and the text's intake refuses: such a record is not vouched
          // for, and the build takes its bytes in itself).
          readAck(r.canonical, file);
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
  /** What the thread took in and hashed, once it answers. Never rejects. */
  result(): Promise<Preparsed>;
  /** Ends the thread (a build that failed before its ack intake); result() then gives nothing. */
  stop(): void;
}

/**
 * Starts the intake of `logFile`'s records, then of `hostsDir`'s latest-ack files (null: none), on a
 * helper thread; null when the log is too small to pay for a thread or there is one core, unless `always`. A helper that fails only costs speed (the build
 * takes every ack in itself, given no digests), but it says so on stderr, as a packaging bug would.
 */
export function startAckPreparse(
  logFile: string,
  windowBytes: number,
  hostsDir: string | null,
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
      resolve(NOTHING);
    };
    try {
      const request: PreparseRequest = { segments, windowBytes, hostsDir };
      const thread = startModuleThread(module, request);
      helper = thread;
      thread.once('message', (m: Preparsed) => {
        resolve(m);
        void thread.terminate();
      });
      thread.once('error', failed);
      thread.once('exit', () => resolve(NOTHING));
    } catch (e) {
      failed(e);
    }
  });
  return {
    result: () => result,
    stop: () => void helper?.terminate(),
  };
}
