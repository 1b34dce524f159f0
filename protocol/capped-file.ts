// The one way a file from outside is read into memory: the bytes of a regular file, capped before they
// are read. A published tree, a pinned root and the ack endpoint's files all come from places the
// reader does not control, so the read must not be made unbounded or endless by what it finds there.
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { Malformed, TooLarge } from './errors.ts';

/** Reads into `buf` from `position` until it is full or the file ends; the number of bytes read. */
export function readInto(fd: number, buf: Buffer, position: number): number {
  let off = 0;
  while (off < buf.length) {
    const n = readSync(fd, buf, off, buf.length - off, position + off);
    if (n === 0) break;
    off += n;
  }
  return off;
}

/**
 * The bytes of the regular file at `path`, at most `maxBytes`. One descriptor throughout:
 * - opened non-blocking, so a FIFO planted where a file belongs returns instead of waiting for a writer;
 * - fstat of what was opened (not a second look at the path, which could by then name something else);
 *   a device or FIFO reports size 0 and may never end, so only regular files are read;
 * - the size is checked against the cap before any byte is read, and the read stops at that size, so a
 *   file that grows meanwhile cannot make it unbounded.
 * Throws Malformed or TooLarge naming `label`, or the file system's error (ENOENT, ...) as it is.
 */
export function readCappedFile(path: string, maxBytes: number, label: string): Buffer {
  return readCapped(path, maxBytes, label, (size) => Buffer.allocUnsafe(size));
}

/**
 * readCappedFile into `scratch` (at least `maxBytes` long): the bytes are a view of it, valid until
 * the next read into it. For a reader that only hashes or parses each file of many (no buffer per
 * file to allocate and collect).
 */
export function readCappedFileInto(
  path: string,
  maxBytes: number,
  label: string,
  scratch: Buffer,
): Buffer {
  if (scratch.length < maxBytes) throw new RangeError(`scratch buffer shorter than ${maxBytes}`);
  return readCapped(path, maxBytes, label, (size) => scratch.subarray(0, size));
}

function readCapped(
  path: string,
  maxBytes: number,
  label: string,
  bufferOf: (size: number) => Buffer,
): Buffer {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Malformed(label, 'not a regular file');
    if (st.size > maxBytes)
      throw new TooLarge(label, `${st.size} bytes exceeds the limit of ${maxBytes}`);
    const buf = bufferOf(st.size);
    const n = readInto(fd, buf, 0);
    return n === st.size ? buf : buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

/** True for the errors that mean "nothing is there" (the path or one of its directories is missing). */
export function isNotFound(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}
