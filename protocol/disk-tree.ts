// The disk side of verification: a published tree read from a directory, as the Fetch (and manifest
// listing) protocol/verify takes. protocol/verify itself never touches the disk.
import { readdirSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { isNotFound, readCappedFile } from './capped-file.ts';
import { Malformed } from './errors.ts';
import { startReadAhead, type ReadAhead } from './read-ahead.ts';
import {
  type Fetch,
  verifyTree,
  type TreeReport,
  type TreeSource,
  type VerifyTreeOptions,
} from './verify/index.ts';
import type { SignedRoot } from './trust-root.ts';

/** Synchronous read of a tree file (readCappedFile: a regular file, capped before reading). Undefined = not found. */
export function readTreeFile(
  treeDir: string,
  path: string,
  maxBytes: number,
): Uint8Array | undefined {
  const full = treeFilePath(treeDir, path);
  if (full === null) throw new Malformed(path, 'path escapes the tree');
  try {
    return readCappedFile(full, maxBytes, path);
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

/** The absolute path of a tree-relative `path`, or null when it escapes the tree. */
function treeFilePath(treeDir: string, path: string): string | null {
  const root = resolve(treeDir);
  const full = resolve(join(root, path));
  return full.startsWith(root + sep) ? full : null;
}

/**
 * When a disk fetch reads the files a walk names ahead (Fetch.readAhead) on a helper thread
 * (protocol/read-ahead.ts): 'auto' when there are enough of them to pay for a thread, 'always'
 * (tests), none when not given.
 */
export type ReadAheadMode = 'auto' | 'always';

export function diskFetch(treeDir: string, readAhead?: ReadAheadMode): Fetch {
  let ahead: ReadAhead | null = null;
  const fetch: Fetch = async (path, maxBytes) =>
    ahead?.take(path, maxBytes) ?? readTreeFile(treeDir, path, maxBytes);
  if (readAhead !== undefined)
    fetch.readAhead = (paths, maxBytes) => {
      // A path that escapes the tree is not read ahead: the fetch refuses it as always.
      const inside: string[] = [];
      const files: string[] = [];
      for (const p of paths) {
        const full = treeFilePath(treeDir, p);
        if (full !== null) (inside.push(p), files.push(full));
      }
      ahead?.stop();
      ahead = startReadAhead(files, inside, maxBytes, { always: readAhead === 'always' });
      return () => {
        ahead?.stop();
        ahead = null;
      };
    };
  return fetch;
}

/** Manifest file names of releases/<version>/hosts/ (dotfiles are a publisher's temp files). */
export function listManifestFiles(treeDir: string, version: number): string[] {
  try {
    return readdirSync(join(treeDir, 'releases', String(version), 'hosts')).filter(
      (f) => !f.startsWith('.'),
    );
  } catch {
    return [];
  }
}

export function diskTreeSource(treeDir: string, readAhead?: ReadAheadMode): TreeSource {
  return {
    fetch: diskFetch(treeDir, readAhead),
    listManifests: (version) => listManifestFiles(treeDir, version),
  };
}

/** verifyTree of a tree directory (the auditor, cp sync, the publisher's self-check). */
export function verifyTreeDir(
  treeDir: string,
  pinnedRoot: SignedRoot,
  opts: VerifyTreeOptions,
): Promise<TreeReport> {
  return verifyTree(diskTreeSource(treeDir), pinnedRoot, opts);
}
