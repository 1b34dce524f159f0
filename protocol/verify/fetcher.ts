// The one I/O seam of the verification workflow: the agent passes an HTTPS fetcher, the offline
// verifier a disk reader, tests an in-memory map. Everything else in protocol/verify is pure.
import { readFileSync, statSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { Malformed, TooLarge } from '../errors.ts';

/**
 * Returns the bytes of a tree-relative path, or undefined when it does not exist. Implementations must
 * not return more than `maxBytes` bytes (they may throw TooLarge instead); the readers re-check.
 */
export type Fetch = (path: string, maxBytes: number) => Promise<Uint8Array | undefined>;

/** Synchronous read of a tree file with a size cap checked before reading (the offline verifier). */
export function readTreeFile(treeDir: string, path: string, maxBytes: number): Uint8Array | undefined {
  const root = resolve(treeDir);
  const full = resolve(join(root, path));
  if (!full.startsWith(root + sep)) throw new Malformed(path, 'path escapes the tree');
  let size: number;
  try {
    const st = statSync(full);
    if (!st.isFile()) return undefined;
    size = st.size;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw e;
  }
  if (size > maxBytes) throw new TooLarge(path, `${size} bytes exceeds the limit of ${maxBytes}`);
  return readFileSync(full);
}

export function diskFetch(treeDir: string): Fetch {
  return async (path, maxBytes) => readTreeFile(treeDir, path, maxBytes);
}
