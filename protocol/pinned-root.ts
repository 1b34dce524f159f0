// The one loader of a pinned trust root file (an operator's `--root`, the agent's trustRootFile): only a
// regular file, capped before it is read (a pinned root is small; a huge or endless file is refused
// rather than buffered), parsed strictly, and its own threshold checked, so a root that could never
// start a chain is refused where it is loaded, naming the file.
import { readFileSync, statSync } from 'node:fs';
import { Malformed, TooLarge } from './errors.ts';
import { LIMITS } from './limits.ts';
import { readRoot, verifyPinnedRoot, type SignedRoot } from './trust-root.ts';

/** Throws a VerificationError (TooLarge, Malformed, ThresholdNotMet, ...) or the file system's error. */
export function readPinnedRoot(file: string): SignedRoot {
  const st = statSync(file);
  // A device or FIFO reports size 0 and may never end: only regular files are read.
  if (!st.isFile()) throw new Malformed(file, 'not a regular file');
  if (st.size > LIMITS.root)
    throw new TooLarge(file, `${st.size} bytes exceeds the limit of ${LIMITS.root}`);
  const root = readRoot(readFileSync(file), file);
  verifyPinnedRoot(root, file);
  return root;
}
