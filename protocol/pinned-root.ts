// The one loader of a pinned trust root file (an operator's `--root`, the agent's trustRootFile): only a
// regular file, capped before it is read (a pinned root is small; a huge or endless file is refused
// rather than buffered), parsed strictly, and its own threshold checked, so a root that could never
// start a chain is refused where it is loaded, naming the file.
import { readCappedFile } from './capped-file.ts';
import { LIMITS } from './limits.ts';
import { readRoot, verifyPinnedRoot, type SignedRoot } from './trust-root.ts';

/** Throws a VerificationError (TooLarge, Malformed, ThresholdNotMet, ...) or the file system's error. */
export function readPinnedRoot(file: string): SignedRoot {
  const root = readRoot(readCappedFile(file, LIMITS.root, file), file);
  verifyPinnedRoot(root, file);
  return root;
}
