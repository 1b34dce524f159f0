// Reading and writing the published tree's on-disk state: the current timestamp, existing release
// directories, the publisher lock, and the crash-safe installation of a whole release directory.
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
  fsyncSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import {
  fsyncDir,
  tryAcquirePidLock,
  readEnvelope,
  LIMITS,
  TIMESTAMP_PATH,
  releaseDir,
  Timestamp,
  type SignedDocument,
} from '../protocol/index.ts';
import type { TreeFile } from './documents.ts';
import { PublishRefused, writingFile } from './errors.ts';

const LOCK_FILE = '.publish.lock';
const TMP_PREFIX = '.tmp-';

export function readCurrentTimestamp(treeDir: string): SignedDocument<Timestamp> | undefined {
  const path = join(treeDir, TIMESTAMP_PATH);
  if (!existsSync(path)) return undefined;
  return readEnvelope(readFileSync(path), Timestamp, {
    file: TIMESTAMP_PATH,
    maxBytes: LIMITS.timestamp,
    expectType: 'timestamp',
  });
}

/** Highest releases/<n> directory present, complete or not referenced yet (0 if none). */
export function highestReleaseDir(treeDir: string): number {
  const dir = join(treeDir, 'releases');
  if (!existsSync(dir)) return 0;
  let max = 0;
  for (const name of readdirSync(dir))
    if (/^[1-9][0-9]*$/.test(name)) max = Math.max(max, Number(name));
  return max;
}

/** Temp directories left by a publisher that was killed: never referenced, safe to remove under the lock. */
export function removeStaleTemps(treeDir: string): void {
  const dir = join(treeDir, 'releases');
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir))
    if (name.startsWith(TMP_PREFIX)) rmSync(join(dir, name), { recursive: true, force: true });
}

/** One publisher per tree. A lock left by a killed publisher (dead pid) is taken over (protocol/pid-lock.ts). */
export function acquireLock(treeDir: string): () => void {
  mkdirSync(treeDir, { recursive: true });
  const path = join(treeDir, LOCK_FILE);
  const r = tryAcquirePidLock(path);
  if (r.acquired) return () => r.lock.release();
  if (r.heldBy > 0)
    throw new PublishRefused(`${treeDir} is being published by process ${r.heldBy} (lock ${path})`);
  throw new PublishRefused(`could not take the publish lock ${path}`);
}

/**
 * Flushes everything written so far to disk with one syncfs (coreutils `sync -f`): one call instead of
 * an fsync per file, which costs seconds for 10,000 manifests. Falls back to per-file fsync (`paths`,
 * asked for only then).
 */
function flushFiles(dir: string, paths: () => Iterable<string>): void {
  try {
    execFileSync('sync', ['-f', dir], { stdio: 'ignore' });
    return;
  } catch {
    /* no coreutils sync -f: fsync each file */
  }
  for (const p of paths()) {
    const fd = openSync(p, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}

/** releases/<v>/ being written: invisible (a temp directory) until `install`. */
export interface StagedRelease {
  /** Writes one file of the release (tree-relative path under releases/<v>/) into the temp directory. */
  write(file: TreeFile): void;
  /** Whether `path` was written already. */
  has(path: string): boolean;
  /**
   * Starts writing the files written so far to disk without waiting (a second core is idle while the
   * caller finishes the release), so that `install`'s flush, which waits, has little left to do.
   */
  flushSoFar(): void;
  /** Settles when flushSoFar's `sync` has ended (at once if none was started): no process outlives a publish. */
  flushedSoFar(): Promise<void>;
  /** Flushes every file to disk and renames the temp directory to releases/<v> (or discards it and throws). */
  install(): void;
  /** Removes the temp directory (a publish that failed before `install`). */
  discard(): void;
}

/**
 * Starts releases/<v>/ as a temp directory in releases/ (removed by removeStaleTemps if this process
 * dies), so that its files can be written as soon as each is signed; `install` makes it visible whole.
 * Refuses when releases/<v> exists (releases are immutable). `onWritten` gets the count written so far.
 */
export function stageReleaseDir(
  treeDir: string,
  version: number,
  onWritten?: (done: number) => void,
): StagedRelease {
  const prefix = releaseDir(version) + '/';
  const finalDir = join(treeDir, releaseDir(version));
  if (existsSync(finalDir))
    throw new PublishRefused(`${releaseDir(version)} already exists; releases are immutable`);
  const tmp = join(treeDir, 'releases', `${TMP_PREFIX}${version}-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  // A failed write (a full disk) must not leave the partial copy behind: it would keep the disk full,
  // and the next `refresh` (a few KB) would fail too until the timestamp expires.
  const cleanedUp = `the partial ${releaseDir(version)} (${tmp}) was removed and the tree still serves the previous release`;
  const written = new Set<string>();
  const made = new Set<string>();
  const discard = () => rmSync(tmp, { recursive: true, force: true });
  let background = Promise.resolve();
  return {
    write(f) {
      if (!f.path.startsWith(prefix)) throw new Error(`internal: ${f.path} is outside ${prefix}`);
      const p = join(tmp, f.path.slice(prefix.length));
      const d = dirname(p);
      if (!made.has(d)) {
        writingFile(d, cleanedUp, () => mkdirSync(d, { recursive: true }));
        made.add(d);
      }
      writingFile(p, cleanedUp, () => writeFileSync(p, f.bytes, { mode: 0o644 }));
      written.add(f.path);
      if (onWritten && written.size % 500 === 0) onWritten(written.size);
    },
    has: (path) => written.has(path),
    flushSoFar() {
      // Best effort (install flushes everything anyway): a missing `sync` is install's to handle.
      background = new Promise((settle) => {
        const sync = spawn('sync', ['-f', tmp], { stdio: 'ignore' });
        sync.on('error', () => settle());
        sync.on('close', () => settle());
      });
    },
    flushedSoFar: () => background,
    install() {
      try {
        onWritten?.(written.size);
        writingFile(tmp, cleanedUp, () => {
          flushFiles(tmp, () => [...written].map((path) => join(tmp, path.slice(prefix.length))));
          for (const d of made) fsyncDir(d);
          renameSync(tmp, finalDir);
        });
      } catch (e) {
        discard();
        throw e;
      }
      fsyncDir(dirname(finalDir));
    },
    discard,
  };
}
