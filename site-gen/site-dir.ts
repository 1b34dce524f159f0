// Installing a built site so that nginx never serves a half-built one: the pages are written into a
// fresh directory next to the output, then the output path (a symlink) is switched to it with one
// rename(2). A reader resolves either the old build or the new one, never a mix. Older builds are kept
// one generation (a request may still be reading from the previous build) and then removed.
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, renameSync, rmSync, rmdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fsyncDir } from '../protocol/atomic-write.ts';
import { tryAcquirePidLock } from '../protocol/pid-lock.ts';

export class SiteOutputError extends Error {
  constructor(readonly path: string, detail: string) {
    super(`${path}: ${detail}`);
    this.name = 'SiteOutputError';
  }
}

export function buildsDirOf(outDir: string): string {
  const abs = resolve(outDir);
  return join(dirname(abs), `.${basename(abs)}.builds`);
}

/** Refuses an output path that is a real directory with content: site-gen never deletes what it did not write. */
function checkOutput(outDir: string): 'absent' | 'link' | 'empty-dir' {
  let st;
  try {
    st = lstatSync(outDir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw e;
  }
  if (st.isSymbolicLink()) return 'link';
  if (st.isDirectory() && readdirSync(outDir).length === 0) return 'empty-dir';
  throw new SiteOutputError(outDir, 'exists and is not a site-gen output (a symlink to a build): choose another --out or remove it');
}

export interface InstalledSite {
  /** The build directory the output now points to. */
  buildDir: string;
  files: number;
  bytes: number;
}

/** Two site-gen processes on one output would prune each other's builds: one at a time. */
function lockBuilds(builds: string): () => void {
  const lock = join(builds, '.lock');
  let r;
  try {
    r = tryAcquirePidLock(lock);
  } catch (e) {
    throw new SiteOutputError(lock, `another site-gen build is installing into this output (${(e as Error).message})`);
  }
  if (r.acquired) return () => r.lock.release();
  if (r.heldBy > 0) throw new SiteOutputError(lock, `another site-gen build (pid ${r.heldBy}) is installing into this output`);
  throw new SiteOutputError(lock, 'another site-gen build is installing into this output');
}

export function installSite(outDir: string, files: ReadonlyMap<string, string | Uint8Array>): InstalledSite {
  const out = resolve(outDir);
  const builds = buildsDirOf(out);
  mkdirSync(builds, { recursive: true });
  const unlock = lockBuilds(builds);
  try {
    return installLocked(out, builds, files);
  } finally {
    unlock();
  }
}

function installLocked(out: string, builds: string, files: ReadonlyMap<string, string | Uint8Array>): InstalledSite {
  const state = checkOutput(out);
  const buildDir = mkdtempSync(join(builds, 'build-'));
  // mkdtemp makes it 0700; nginx's worker user must be able to read the pages.
  chmodSync(buildDir, 0o755);
  let bytes = 0;
  const dirs = new Set<string>();
  try {
    for (const [rel, content] of files) {
      if (rel.startsWith('/') || rel.split('/').some((p) => p === '..' || p === '' || p.startsWith('.'))) throw new SiteOutputError(rel, 'not a plain relative page path');
      const full = join(buildDir, rel);
      const dir = dirname(full);
      if (!dirs.has(dir)) {
        mkdirSync(dir, { recursive: true });
        dirs.add(dir);
      }
      writeFileSync(full, content);
      bytes += typeof content === 'string' ? Buffer.byteLength(content) : content.byteLength;
    }
  } catch (e) {
    rmSync(buildDir, { recursive: true, force: true });
    throw e;
  }
  const previous = state === 'link' ? resolve(dirname(out), readlinkSync(out)) : null;
  const tmpLink = join(dirname(out), `.${basename(out)}.link-${process.pid}-${randomBytes(4).toString('hex')}`);
  symlinkSync(join(basename(builds), basename(buildDir)), tmpLink);
  // An empty directory cannot be replaced by a symlink in one rename; nothing was being served from it.
  if (state === 'empty-dir') rmdirSync(out);
  renameSync(tmpLink, out);
  fsyncDir(dirname(out));
  pruneBuilds(builds, new Set([buildDir, ...(previous ? [previous] : [])]));
  return { buildDir, files: files.size, bytes };
}

function pruneBuilds(builds: string, keep: ReadonlySet<string>): void {
  for (const name of readdirSync(builds)) {
    const full = join(builds, name);
    if (!keep.has(full) && name.startsWith('build-')) rmSync(full, { recursive: true, force: true });
  }
}
