// Crash-safe file replacement: write a temp file in the same directory, fsync it, rename over the
// target, fsync the directory. A reader (or nginx) sees the old bytes or the new bytes, never a mix,
// and after a successful return the new bytes survive power loss.
import {
  openSync,
  writeSync,
  fsyncSync,
  closeSync,
  renameSync,
  mkdirSync,
  unlinkSync,
  utimesSync,
  statSync,
} from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';

export interface AtomicWriteOptions {
  mode?: number;
  /** Skip the directory fsync (callers batching many writes fsync the directory once themselves). */
  skipDirSync?: boolean;
  /**
   * nginx's ETag is mtime+size: a same-size rewrite within the same second would keep the old ETag.
   * With this set, the new file's mtime is forced strictly past the previous file's mtime.
   */
  advanceMtime?: boolean;
  /**
   * false: no fsync of the file or the directory (derived files rebuilt from a durable record after a
   * crash, e.g. the published acks): still atomic for readers, not for power loss. Default true.
   */
  durable?: boolean;
}

/**
 * Sets `path`'s mtime to a whole second strictly past `previousMtimeMs` (and not before now): nginx's
 * ETag is mtime (whole seconds) + size, so a same-size replacement must change the second. Set
 * explicitly because the mtime the kernel would stamp comes from its coarse clock, which can still be in
 * the previous second for a few ms after Date.now() moved on.
 */
export function stampPastPrevious(path: string, previousMtimeMs: number): void {
  const sec = Math.max(Math.floor(Date.now() / 1000), Math.floor(previousMtimeMs / 1000) + 1);
  utimesSync(path, sec, sec);
}

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * `data`: the bytes, or text (UTF-8), or text made piece by piece (an iterable of strings, written in
 * batches of about WRITE_BATCH characters as it is made: a large file never exists as one string nor
 * one buffer, e.g. a dashboard's 17 MB document memo, saved while the build's heap is at its largest).
 */
export function writeFileAtomic(
  path: string,
  data: string | Uint8Array | Iterable<string>,
  opts: AtomicWriteOptions = {},
): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let previousMtimeMs = -1;
  if (opts.advanceMtime) {
    try {
      previousMtimeMs = statSync(path).mtimeMs;
    } catch {
      /* no previous file */
    }
  }
  const fd = openSync(tmp, 'w', opts.mode ?? 0o644);
  try {
    if (typeof data === 'string' || data instanceof Uint8Array) writeAll(fd, data);
    else {
      let batch = '';
      for (const piece of data) {
        batch += piece;
        if (batch.length < WRITE_BATCH) continue;
        // A surrogate pair split between two pieces is encoded whole, with the next batch.
        const cut = isHighSurrogate(batch.charCodeAt(batch.length - 1)) ? -1 : batch.length;
        writeAll(fd, batch.slice(0, cut));
        batch = batch.slice(cut);
      }
      writeAll(fd, batch);
    }
    if (opts.durable !== false) fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    throw e;
  }
  closeSync(fd);
  if (previousMtimeMs >= 0) stampPastPrevious(tmp, previousMtimeMs);
  renameSync(tmp, path);
  if (!opts.skipDirSync && opts.durable !== false) fsyncDir(dir);
}

/** Characters of text written at a time by writeFileAtomic (pieces are joined up to this). */
const WRITE_BATCH = 1 << 20;

const isHighSurrogate = (c: number) => c >= 0xd800 && c <= 0xdbff;

function writeAll(fd: number, data: string | Uint8Array): void {
  const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  let off = 0;
  while (off < buf.byteLength) off += writeSync(fd, buf, off, buf.byteLength - off);
}
