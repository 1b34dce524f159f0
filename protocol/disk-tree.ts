// The disk side of verification: a published tree read from a directory, as the Fetch (and manifest
// listing) protocol/verify takes. protocol/verify itself never touches the disk.
import { readdirSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { isNotFound, readCappedFile } from './capped-file.ts';
import { Malformed } from './errors.ts';
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
  const root = resolve(treeDir);
  const full = resolve(join(root, path));
  if (!full.startsWith(root + sep)) throw new Malformed(path, 'path escapes the tree');
  try {
    return readCappedFile(full, maxBytes, path);
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

export function diskFetch(treeDir: string): Fetch {
  return async (path, maxBytes) => readTreeFile(treeDir, path, maxBytes);
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

export function diskTreeSource(treeDir: string): TreeSource {
  return {
    fetch: diskFetch(treeDir),
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
