// Installing a built site so that nginx never serves a half-built one: the pages are written into a
// fresh directory next to the output, then the output path (a symlink) is switched to it with one
// rename(2). A reader resolves either the old build or the new one, never a mix. Older builds are kept
// one generation (a request may still be reading from the previous build) and then removed.
//
// Incremental: each build leaves a manifest (`<build>.pages`: every page's sha256, size and inputs
// digest, site-pages.ts) beside its directory. The next build hard-links every page whose inputs are
// unchanged from the build the output points to without rendering it, renders the others one at a
// time as it installs them (the site is never held in memory whole), links those whose bytes came out
// the same and writes only the pages that changed. Files of an installed build are never modified
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
import type { SitePage } from './site-pages.ts';

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
  /** Pages rendered (the rest had the inputs of a page of the previous build), and the time it took. */
  rendered: number;
  renderMs: number;
  largest: { path: string; bytes: number } | null;
}

const MANIFEST_SUFFIX = '.pages';
/** The manifest's format: a manifest of another (older) format is not read, every page is rendered. */
const MANIFEST_FORMAT = 'nixfleet-site-pages v2';

/** What the manifest keeps of a page. */
interface PageRecord {
  sha256: string;
  bytes: number;
  /** site-pages.ts SitePage.inputs; null: rendered every build. */
  inputs: string | null;
}

function manifestOf(buildDir: string): string {
  return buildDir + MANIFEST_SUFFIX;
}

function digestOf(content: string | Uint8Array): string {
  return createHash('sha256').update(content).digest('base64');
}

function isPageRecord(v: unknown): v is PageRecord {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return (
    typeof r.sha256 === 'string' &&
    typeof r.bytes === 'number' &&
    (r.inputs === null || typeof r.inputs === 'string')
  );
}

/**
 * The pages of the build the output points to, or an empty map (first build, a build of another
 * version's manifest format, or a manifest that does not parse: then every page is rendered and written).
 */
function previousPages(builds: string, previous: string | null): Map<string, PageRecord> {
  if (
    previous === null ||
    relative(builds, previous).includes(sep) ||
    !existsSync(manifestOf(previous))
  )
    return new Map();
  try {
    const parsed = JSON.parse(readFileSync(manifestOf(previous), 'utf8')) as {
      format?: unknown;
      pages?: unknown;
    };
    if (parsed.format !== MANIFEST_FORMAT || typeof parsed.pages !== 'object' || !parsed.pages)
      return new Map();
    return new Map(
      Object.entries(parsed.pages as Record<string, unknown>).filter(
        (e): e is [string, PageRecord] => isPageRecord(e[1]),
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

export function installSite(outDir: string, files: Iterable<SitePage>): InstalledSite {
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

/** What installing the pages into a new build directory gave (InstalledSite without the directory). */
type PagesInstalled = Omit<InstalledSite, 'buildDir'> & { manifest: Record<string, PageRecord> };

/**
 * Installs every page into `buildDir`: linked from `previous` unrendered when its inputs are the
 * previous build's (`before`), else rendered, then linked when its bytes are the same, else written.
 */
function installPages(
  buildDir: string,
  previous: string | null,
  before: ReadonlyMap<string, PageRecord>,
  files: Iterable<SitePage>,
): PagesInstalled {
  const r: PagesInstalled = {
    files: 0,
    bytes: 0,
    written: 0,
    bytesWritten: 0,
    rendered: 0,
    renderMs: 0,
    largest: null,
    manifest: {},
  };
  const dirs = new Set<string>();
  for (const page of files) {
    const rel = page.path;
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
    const prev = previous === null ? undefined : before.get(rel);
    const from = previous === null ? '' : join(previous, rel);
    let record: PageRecord;
    if (
      prev !== undefined &&
      page.inputs !== null &&
      prev.inputs === page.inputs &&
      linkUnchanged(from, full)
    ) {
      // The same inputs as the page the previous build installed: its bytes, not rendered again.
      record = prev;
    } else {
      const t0 = performance.now();
      const content = page.render();
      r.renderMs += performance.now() - t0;
      r.rendered++;
      const size = typeof content === 'string' ? Buffer.byteLength(content) : content.byteLength;
      record = { sha256: digestOf(content), bytes: size, inputs: page.inputs };
      if (prev === undefined || prev.sha256 !== record.sha256 || !linkUnchanged(from, full)) {
        writeFileSync(full, content);
        r.written++;
        r.bytesWritten += size;
      }
    }
    r.manifest[rel] = record;
    r.files++;
    r.bytes += record.bytes;
    if (r.largest === null || record.bytes > r.largest.bytes)
      r.largest = { path: rel, bytes: record.bytes };
  }
  return r;
}

function installLocked(out: string, builds: string, files: Iterable<SitePage>): InstalledSite {
  const state = checkOutput(out);
  const previous = state === 'link' ? resolve(dirname(out), readlinkSync(out)) : null;
  const before = previousPages(builds, previous);
  const buildDir = mkdtempSync(join(builds, 'build-'));
  // mkdtemp makes it 0700; nginx's worker user must be able to read the pages.
  chmodSync(buildDir, 0o755);
  let installed: PagesInstalled;
  try {
    installed = installPages(buildDir, previous, before, files);
    writeFileAtomic(
      manifestOf(buildDir),
      JSON.stringify({ format: MANIFEST_FORMAT, pages: installed.manifest }),
    );
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
  const { files: count, bytes, written, bytesWritten, rendered, renderMs, largest } = installed;
  return { buildDir, files: count, bytes, written, bytesWritten, rendered, renderMs, largest };
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
