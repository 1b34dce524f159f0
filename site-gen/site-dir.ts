// Installing a built site so that nginx never serves a half-built one: the pages are written into a
// fresh directory next to the output, then the output path (a symlink) is switched to it with one
// rename(2). A reader resolves either the old build or the new one, never a mix. Older builds are kept
// one generation (a request may still be reading from the previous build) and then removed.
//
// Incremental: each build leaves a manifest (`<build>.pages`, the sha256 of every page) beside its
// directory. The next build hard-links every page whose digest is unchanged from the build the output
// points to and writes only the pages that changed. Files of an installed build are never modified
// (changed pages are new files in the new directory), so sharing inodes keeps the swap atomic.
import {
  chmodSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  rmdirSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileAtomic, fsyncDir, tryAcquirePidLock } from '../protocol/index.ts';

export class SiteOutputError extends Error {
  constructor(
    readonly path: string,
    detail: string,
  ) {
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
  throw new SiteOutputError(
    outDir,
    'exists and is not a site-gen output (a symlink to a build): choose another --out or remove it',
  );
}

export interface InstalledSite {
  /** The build directory the output now points to. */
  buildDir: string;
  files: number;
  /** Size of the whole site. */
  bytes: number;
  /** Pages written (new or changed) and their size; the rest were linked from the previous build. */
  written: number;
  bytesWritten: number;
  largest: { path: string; bytes: number } | null;
}

const MANIFEST_SUFFIX = '.pages';

function manifestOf(buildDir: string): string {
  return buildDir + MANIFEST_SUFFIX;
}

function digestOf(content: string | Uint8Array): string {
  return createHash('sha256').update(content).digest('base64');
}

/**
 * The page digests of the build the output points to, or an empty map (first build, a build of an
 * older version without a manifest, or a manifest that does not parse: then every page is written).
 */
function previousPages(builds: string, previous: string | null): Map<string, string> {
  if (
    previous === null ||
    relative(builds, previous).includes(sep) ||
    !existsSync(manifestOf(previous))
  )
    return new Map();
  try {
    const parsed = JSON.parse(readFileSync(manifestOf(previous), 'utf8')) as unknown;
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return new Map();
    return new Map(
      Object.entries(parsed as Record<string, unknown>).filter(
        (e): e is [string, string] => typeof e[1] === 'string',
      ),
    );
  } catch {
    return new Map();
  }
}

/** Two site-gen processes on one output would prune each other's builds: one at a time. */
function lockBuilds(builds: string): () => void {
  const lock = join(builds, '.lock');
  let r;
  try {
    r = tryAcquirePidLock(lock);
  } catch (e) {
    throw new SiteOutputError(
      lock,
      `another site-gen build is installing into this output (${(e as Error).message})`,
    );
  }
  if (r.acquired) return () => r.lock.release();
  if (r.heldBy > 0)
    throw new SiteOutputError(
      lock,
      `another site-gen build (pid ${r.heldBy}) is installing into this output`,
    );
  throw new SiteOutputError(lock, 'another site-gen build is installing into this output');
}

export function installSite(
  outDir: string,
  files: Iterable<[path: string, content: string | Uint8Array]>,
): InstalledSite {
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

function installLocked(
  out: string,
  builds: string,
  files: Iterable<[path: string, content: string | Uint8Array]>,
): InstalledSite {
  const state = checkOutput(out);
  const previous = state === 'link' ? resolve(dirname(out), readlinkSync(out)) : null;
  const before = previousPages(builds, previous);
  const buildDir = mkdtempSync(join(builds, 'build-'));
  // mkdtemp makes it 0700; nginx's worker user must be able to read the pages.
  chmodSync(buildDir, 0o755);
  let bytes = 0;
  let count = 0;
  let written = 0;
  let bytesWritten = 0;
  let largest: InstalledSite['largest'] = null;
  const manifest: Record<string, string> = {};
  const dirs = new Set<string>();
  try {
    for (const [rel, content] of files) {
      if (
        rel.startsWith('/') ||
        rel.split('/').some((p) => p === '..' || p === '' || p.startsWith('.'))
      )
        throw new SiteOutputError(rel, 'not a plain relative page path');
      const full = join(buildDir, rel);
      const dir = dirname(full);
      if (!dirs.has(dir)) {
        mkdirSync(dir, { recursive: true });
        dirs.add(dir);
      }
      const size = typeof content === 'string' ? Buffer.byteLength(content) : content.byteLength;
      const digest = digestOf(content);
      manifest[rel] = digest;
      count++;
      bytes += size;
      if (largest === null || size > largest.bytes) largest = { path: rel, bytes: size };
      if (
        previous !== null &&
        before.get(rel) === digest &&
        linkUnchanged(join(previous, rel), full)
      )
        continue;
      writeFileSync(full, content);
      written++;
      bytesWritten += size;
    }
    writeFileAtomic(manifestOf(buildDir), JSON.stringify(manifest));
  } catch (e) {
    rmSync(buildDir, { recursive: true, force: true });
    rmSync(manifestOf(buildDir), { force: true });
    throw e;
  }
  const tmpLink = join(
    dirname(out),
    `.${basename(out)}.link-${process.pid}-${randomBytes(4).toString('hex')}`,
  );
  symlinkSync(join(basename(builds), basename(buildDir)), tmpLink);
  // An empty directory cannot be replaced by a symlink in one rename; nothing was being served from it.
  if (state === 'empty-dir') rmdirSync(out);
  renameSync(tmpLink, out);
  fsyncDir(dirname(out));
  pruneBuilds(builds, new Set([buildDir, ...(previous ? [previous] : [])]));
  return { buildDir, files: count, bytes, written, bytesWritten, largest };
}

/** Shares an unchanged page with the previous build; false (then it is written) when that file is gone. */
function linkUnchanged(from: string, to: string): boolean {
  try {
    linkSync(from, to);
    return true;
  } catch {
    return false;
  }
}

function pruneBuilds(builds: string, keep: ReadonlySet<string>): void {
  for (const name of readdirSync(builds)) {
    const full = join(builds, name);
    const owner = name.endsWith(MANIFEST_SUFFIX) ? full.slice(0, -MANIFEST_SUFFIX.length) : full;
    if (!keep.has(owner) && name.startsWith('build-'))
      rmSync(full, { recursive: true, force: true });
  }
}
