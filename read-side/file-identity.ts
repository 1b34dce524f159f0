// A file's identity as the latest-ack memo keeps it (read-side/ack-file-memo.ts, whose header argues
// why an unchanged identity means unchanged bytes), in a module of its own so that the stat helper's
// thread (read-side/stat-helper-worker.ts) takes the very same stat without loading the read side.
import { statSync } from 'node:fs';

/**
 * What identifies a file's exact bytes without reading them (the argument is at the top of
 * ack-file-memo.ts): device, inode, size, modification and change times (ms, with the fractions the
 * stat gives).
 */
export interface FileStat {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
}

/** A file's identity (as recall gives it for remember): null when missing or not a regular file. */
export type Seen = FileStat | null;

/**
 * A file's identity now: null when it is missing or not a regular file (then it is read as always).
 * Number stats (not bigint: a warm status stats 10,000 files): the times keep sub-microsecond
 * fractions, far finer than the racy margin that makes them sufficient (an inode number above 2^53
 * loses precision as a number; a file replaced under one still has a newer change time). Compared as
 * numbers: no text is made of 10,000 identities.
 */
export function statOf(path: string): Seen {
  const st = statSync(path, { throwIfNoEntry: false });
  return st === undefined || !st.isFile()
    ? null
    : { dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs };
}

/**
 * statOf, or undefined when the stat fails (an error other than a missing file): readers that only
 * save work by a stat leave such a file to the look, whose own stat meets the error as it would have.
 */
export function statUnlessError(path: string): Seen | undefined {
  try {
    return statOf(path);
  } catch {
    return undefined;
  }
}

/** A file's newest time (ms): what the racy rule compares (ack-file-memo.ts racyCutoff). */
export function newestTime(seen: FileStat): number {
  return Math.max(seen.mtimeMs, seen.ctimeMs);
}
