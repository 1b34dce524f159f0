// `cp sync`: installs a tree pushed by CI. The control plane signs nothing; it only checks:
//   1. copy the incoming tree into versions/.staging-* (no symlinks, no special files, acks/ skipped),
//   2. verify the COPY completely against the pinned trust root (the release walk, as verifyTree), so nothing can change
//      between verification and serving,
//   3. refuse anything older than what is installed (release version, timestamp, revocations, controls, enrolment),
//   4. rename the copy into versions/ and swap the `current` symlink atomically (rename over it),
//   5. turn the signed revocations into nginx map files, and reload nginx (SIGHUP) if asked.
// On any refusal the current tree keeps serving, untouched.
import {
  closeSync,
  existsSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeSync,
} from 'node:fs';
import { join, relative } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  fsyncDir,
  stampPastPrevious,
  writeFileAtomic,
  Malformed,
  MixAndMatch,
  RollbackAttempt,
  TIMESTAMP_PATH,
  REVOCATIONS_PATH,
  NIX_CACHE_DIR,
  LIMITS,
  sha256Digest,
  readTimestamp,
  type TreeReport,
  pidAlive,
  type SignedRoot,
} from '../protocol/index.ts';
import { loadVerifiedReleaseView, normalizeSerial, type ReleaseView } from './release-view.ts';
import {
  ACKS_DIR,
  CURRENT_LINK,
  REVOKED_HOSTS_MAP,
  REVOKED_SERIALS_MAP,
  VERSIONS_DIR,
  hasInstalledTree,
  servedRoot,
} from './tree-dir.ts';

export interface SyncOptions {
  from: string;
  treeDir: string;
  pinnedRoot: SignedRoot;
  now?: number;
  /** nginx pid file: nginx is sent SIGHUP after the swap so it re-reads the revocation maps. */
  nginxPidFile?: string;
  /** Old versions kept besides the current one (in-flight reads of the previous tree finish). */
  keepVersions?: number;
}

export interface SyncResult {
  installed: boolean;
  /** Why nothing changed (same tree already installed). */
  reason?: string;
  releaseVersion: number;
  timestampIssuedAt: string;
  previousReleaseVersion: number | null;
  versionDir: string;
  revokedSerials: number;
  revokedHosts: number;
  nginxReloaded: boolean;
  report: TreeReport;
}

/** Copies a tree file by file, fsyncing each; refuses symlinks and anything that is not a file or dir. */
function copyTree(src: string, dst: string, top = src): void {
  mkdirSync(dst, { recursive: true });
  for (const name of readdirSync(src)) {
    const from = join(src, name);
    const rel = relative(top, from);
    if (name.startsWith('.')) continue; // temp files of a publisher mid-write, editor droppings
    if (src === top && name === ACKS_DIR) continue; // acks belong to the endpoint, never to CI
    const st = lstatSync(from);
    if (st.isSymbolicLink())
      throw new Malformed(rel, 'is a symlink; a published tree holds plain files only');
    if (st.isDirectory()) {
      copyTree(from, join(dst, name), top);
    } else if (st.isFile()) {
      const bytes = readFileSync(from);
      const fd = openSync(join(dst, name), 'w', 0o644);
      try {
        let off = 0;
        while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    } else {
      throw new Malformed(rel, 'is not a regular file or directory');
    }
  }
  fsyncDir(dst);
}

/** Tree paths whose bytes change from one tree to the next; every other path names immutable bytes. */
const MUTABLE_PATHS = [TIMESTAMP_PATH, REVOCATIONS_PATH, `${NIX_CACHE_DIR}/nix-cache-info`];

/**
 * nginx's ETag is mtime (whole seconds) + size, and agents fetch with If-None-Match: a changed file of
 * the same size, copied within the same second as the installed one (or stamped with that second by the
 * kernel's coarse clock just after a boundary), would be answered 304 and agents would keep the old
 * bytes. So each mutable file is stamped a whole second past the installed copy (an unchanged one then
 * costs agents one full GET of a small file, once).
 */
function advanceMutableMtimes(staging: string, installed: string | null): void {
  if (!installed) return;
  for (const rel of MUTABLE_PATHS) {
    const next = join(staging, rel);
    let previousMtimeMs: number;
    try {
      previousMtimeMs = statSync(join(installed, rel)).mtimeMs;
    } catch {
      continue; // not in the installed tree
    }
    if (existsSync(next)) stampPastPrevious(next, previousMtimeMs);
  }
}

interface InstalledState {
  root: string;
  releaseVersion: number;
  issuedAt: string;
  revocationsVersion: number;
  controlsVersion: number;
  enrolmentVersion: number;
  timestampDigest: string;
}

function installedState(treeDir: string): InstalledState | null {
  if (!hasInstalledTree(treeDir)) return null;
  const root = servedRoot(treeDir);
  if (!root || !existsSync(join(root, TIMESTAMP_PATH))) return null;
  const bytes = readFileSync(join(root, TIMESTAMP_PATH));
  if (bytes.length > LIMITS.timestamp) return null;
  const ts = readTimestamp(bytes, TIMESTAMP_PATH).signed;
  return {
    root,
    releaseVersion: ts.release.version,
    issuedAt: ts.issuedAt,
    revocationsVersion: ts.revocations.version,
    controlsVersion: ts.controls?.version ?? 0,
    enrolmentVersion: ts.enrolment?.version ?? 0,
    timestampDigest: sha256Digest(bytes),
  };
}

/** nginx `map` bodies: serials in both spellings (with/without a leading zero), hosts by CN. */
export function revocationMaps(view: Pick<ReleaseView, 'revokedSerials' | 'revokedHosts'>): {
  serials: string;
  hosts: string;
} {
  const serialLines = new Set<string>();
  for (const s of [...view.revokedSerials].sort()) {
    const n = normalizeSerial(s);
    serialLines.add(`${n} 1;`);
    if (n.length % 2 === 1) serialLines.add(`0${n} 1;`);
  }
  const header =
    '# Generated by `nixfleet cp sync` from the signed revocations.json. Do not edit.\n';
  return {
    serials: header + [...serialLines].map((l) => l + '\n').join(''),
    hosts:
      header +
      [...view.revokedHosts]
        .sort()
        .map((h) => `${h} 1;\n`)
        .join(''),
  };
}

export function writeRevocationMaps(
  treeDir: string,
  view: Pick<ReleaseView, 'revokedSerials' | 'revokedHosts'>,
): void {
  const maps = revocationMaps(view);
  writeFileAtomic(join(treeDir, REVOKED_SERIALS_MAP), maps.serials);
  writeFileAtomic(join(treeDir, REVOKED_HOSTS_MAP), maps.hosts);
}

/** Ensures the map files exist (nginx refuses to start on a missing include). */
export function ensureRevocationMaps(treeDir: string): void {
  if (
    !existsSync(join(treeDir, REVOKED_SERIALS_MAP)) ||
    !existsSync(join(treeDir, REVOKED_HOSTS_MAP))
  ) {
    writeRevocationMaps(treeDir, { revokedSerials: new Set(), revokedHosts: new Set() });
  }
}

export function reloadNginx(pidFile: string): void {
  const text = readFileSync(pidFile, 'utf8').trim();
  const pid = Number(text);
  if (!/^\d+$/.test(text) || pid <= 1)
    throw new Error(`${pidFile}: not a pid (${JSON.stringify(text.slice(0, 20))})`);
  process.kill(pid, 'SIGHUP');
}

function pruneVersions(treeDir: string, keep: number, currentDir: string): void {
  const dir = join(treeDir, VERSIONS_DIR);
  const versions = readdirSync(dir)
    .filter((n) => !n.startsWith('.'))
    .sort();
  const others = versions.filter((n) => join(dir, n) !== currentDir);
  for (const n of others.slice(0, Math.max(0, others.length - keep)))
    rmSync(join(dir, n), { recursive: true, force: true });
}

const STAGING = /^\.staging-(\d+)-[0-9a-f]+$/;

/** Staging copies that syncs running in this process are filling right now. */
const stagingInUse = new Set<string>();

/**
 * A sync killed mid-copy (kill -9, power loss) leaves its staging copy behind, a whole tree each time.
 * Staging copies of dead processes are removed, and so are those named after this very process that no
 * sync of ours is using (left by an earlier process that had the same PID). A live sync's copy stays.
 */
function removeAbandonedStaging(versionsDir: string): void {
  for (const name of readdirSync(versionsDir)) {
    const pid = Number(STAGING.exec(name)?.[1] ?? NaN);
    if (Number.isNaN(pid)) continue;
    const path = join(versionsDir, name);
    if (pid === process.pid ? stagingInUse.has(path) : pidAlive(pid)) continue;
    rmSync(path, { recursive: true, force: true });
  }
}

export async function syncTree(opts: SyncOptions): Promise<SyncResult> {
  const now = opts.now ?? Date.now();
  const versionsDir = join(opts.treeDir, VERSIONS_DIR);
  mkdirSync(versionsDir, { recursive: true });
  removeAbandonedStaging(versionsDir);
  if (!existsSync(opts.from)) throw new Malformed(opts.from, 'incoming tree does not exist');
  const staging = join(versionsDir, `.staging-${process.pid}-${randomBytes(4).toString('hex')}`);
  stagingInUse.add(staging);
  try {
    copyTree(opts.from, staging);
    advanceMutableMtimes(staging, servedRoot(opts.treeDir));
    // One walk verifies the copy and yields the documents the release view is built from.
    const { view, report } = await loadVerifiedReleaseView(staging, opts.pinnedRoot, now);
    if (!report.ok)
      throw new MixAndMatch(
        report.unlistedManifests[0] ?? 'releases',
        `manifests not bound by the release index: ${report.unlistedManifests.join(', ')}`,
      );
    const tsBytes = readFileSync(join(staging, TIMESTAMP_PATH));
    const incoming = readTimestamp(tsBytes, TIMESTAMP_PATH).signed;
    const current = installedState(opts.treeDir);
    if (current) {
      if (incoming.release.version < current.releaseVersion) {
        throw new RollbackAttempt(
          TIMESTAMP_PATH,
          `incoming release ${incoming.release.version} is older than the installed release ${current.releaseVersion}`,
        );
      }
      if (Date.parse(incoming.issuedAt) < Date.parse(current.issuedAt)) {
        throw new RollbackAttempt(
          TIMESTAMP_PATH,
          `incoming timestamp issued at ${incoming.issuedAt} is older than the installed one (${current.issuedAt})`,
        );
      }
      if (incoming.revocations.version < current.revocationsVersion) {
        throw new RollbackAttempt(
          TIMESTAMP_PATH,
          `incoming revocations v${incoming.revocations.version} are older than the installed v${current.revocationsVersion}`,
        );
      }
      if ((incoming.controls?.version ?? 0) < current.controlsVersion) {
        throw new RollbackAttempt(
          TIMESTAMP_PATH,
          `incoming controls v${incoming.controls?.version ?? 'none'} are older than the installed v${current.controlsVersion}`,
        );
      }
      // An older nonce document would allow a withdrawn enrolment token again.
      if ((incoming.enrolment?.version ?? 0) < current.enrolmentVersion) {
        throw new RollbackAttempt(
          TIMESTAMP_PATH,
          `incoming enrolment v${incoming.enrolment?.version ?? 'none'} is older than the installed v${current.enrolmentVersion}`,
        );
      }
    }
    if (current && current.timestampDigest === sha256Digest(tsBytes)) {
      rmSync(staging, { recursive: true, force: true });
      writeRevocationMaps(opts.treeDir, view);
      return {
        installed: false,
        reason: 'this exact tree is already installed',
        releaseVersion: incoming.release.version,
        timestampIssuedAt: incoming.issuedAt,
        previousReleaseVersion: current.releaseVersion,
        versionDir: current.root,
        revokedSerials: view.revokedSerials.size,
        revokedHosts: view.revokedHosts.size,
        nginxReloaded: false,
        report,
      };
    }
    const name = `${String(incoming.release.version).padStart(8, '0')}-${incoming.issuedAt.replace(/[-:]/g, '')}-${randomBytes(3).toString('hex')}`;
    const finalDir = join(versionsDir, name);
    renameSync(staging, finalDir);
    fsyncDir(versionsDir);
    const tmpLink = join(opts.treeDir, `.${CURRENT_LINK}.${process.pid}.tmp`);
    rmSync(tmpLink, { force: true });
    symlinkSync(join(VERSIONS_DIR, name), tmpLink);
    renameSync(tmpLink, join(opts.treeDir, CURRENT_LINK));
    fsyncDir(opts.treeDir);
    mkdirSync(join(opts.treeDir, ACKS_DIR), { recursive: true });
    writeRevocationMaps(opts.treeDir, view);
    let nginxReloaded = false;
    if (opts.nginxPidFile) {
      reloadNginx(opts.nginxPidFile);
      nginxReloaded = true;
    }
    pruneVersions(opts.treeDir, opts.keepVersions ?? 2, finalDir);
    return {
      installed: true,
      releaseVersion: incoming.release.version,
      timestampIssuedAt: incoming.issuedAt,
      previousReleaseVersion: current?.releaseVersion ?? null,
      versionDir: finalDir,
      revokedSerials: view.revokedSerials.size,
      revokedHosts: view.revokedHosts.size,
      nginxReloaded,
      report,
    };
  } finally {
    rmSync(staging, { recursive: true, force: true });
    stagingInUse.delete(staging);
  }
}
