// `nixfleet publish` as a library: fleet JSON -> validated, resolved, signed static tree.
// Write order (each step crash-safe, so a kill -9 at any moment leaves the previous tree verifiable):
//   root/<n>.json (immutable copies) -> releases/<v>/ (temp dir, flushed, renamed into place)
//   -> revocations-<r>.json (immutable, only when revocations changed) -> timestamp.json (atomic, mtime
//   advanced) -> revocations.json (a copy of the current revocations, for a fixed URL).
// Only the timestamp switches agents to the new release, and it is written after everything it names.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  writeFileAtomic,
  sha256Digest,
  envelopeBytes,
  signDocument,
  type SigningKey,
  REVOCATIONS_PATH,
  TIMESTAMP_PATH,
  releaseDir,
  rootPath,
  SCHEMA_VERSION,
  isoTime,
  parseIsoTime,
  type FileRef,
  Timestamp,
  type SignedRoot,
  type SignedDocument,
} from '../protocol/index.ts';
import {
  buildRelease,
  buildReleaseConcurrent,
  releaseFileCount,
  type BuildReleaseInput,
  type BuiltRelease,
} from './documents.ts';
import { canonicalJsonData } from './jcs.ts';
import { PublishRefused, writingFile } from './errors.ts';
import { planRevocations, readBoundRevocations } from './revocations.ts';
import {
  acquireLock,
  highestReleaseDir,
  readCurrentTimestamp,
  removeStaleTemps,
  stageReleaseDir,
  type StagedRelease,
} from './tree.ts';
import { checkReleaseKeys, loadTrustChain, loadTrustDir, type TrustChain } from './trust.ts';
import { assertValidFleet } from './validate.ts';
import { noteValidHostKeys } from './host-key.ts';
import { vouchedHostKeys, type VouchedKeys } from './vouched-keys.ts';
import { checkCache, describeCacheProblems, type NarinfoFetcher } from './cache-check.ts';
import { controlsBinding } from './controls.ts';
import { enrolmentBinding } from './enrolment.ts';
import { diffRelease, readCurrentRelease, type ReleaseDiff } from './diff.ts';

/** `cache`: reading the binary cache's narinfos; `commit`: the release directory is in place; revocations
 * and the timestamp are written next. */
export type PublishPhase = 'resolve' | 'cache' | 'sign' | 'write' | 'commit' | 'done';
export interface PublishProgress {
  phase: PublishPhase;
  done: number;
  total: number;
}

export interface PublishOptions {
  treeDir: string;
  /** The fleet JSON value (already read through strict JSON intake). Validated here. */
  fleet: unknown;
  releaseKeys: readonly SigningKey[];
  /** Directory holding root/<n>.json as written by `nixfleet trust init` / `trust rotate`... */
  trustDir?: string;
  /** ...or the root envelopes 1..n themselves. */
  roots?: readonly (Uint8Array | SignedRoot)[];
  /** Publish time, ms since the epoch (signed as issuedAt, second precision). */
  now: number;
  /** Explicit version; must exceed every version already in the tree. Default: previous + 1. */
  version?: number;
  /** Provenance text signed into the index (e.g. git commit). */
  source?: string;
  /** Label of the fleet input in error messages. */
  fleetSource?: string;
  onProgress?: (p: PublishProgress) => void;
  /**
   * A fleet identical to the current release (same fleet JSON digest, same trust root version):
   * 'publish' signs a new release anyway (library default), 'skip' writes nothing and returns status
   * 'unchanged' (`nixfleet publish` without --force).
   */
  ifIdentical?: 'publish' | 'skip';
  /** Build and sign in memory, compute the diff, write nothing (status 'dry-run'). */
  dryRun?: boolean;
}

/** How the synchronous `publishRelease` is told the cache check was skipped on purpose (fabricated store
 * paths in tests, air-gapped pipelines). There is no default: the checked path is `publishReleaseChecked`. */
export interface UncheckedPublishOptions extends PublishOptions {
  cacheCheck: 'skip';
}

export interface CheckedPublishOptions extends PublishOptions {
  /**
   * 'skip' = --no-cache-check. Otherwise the closures must be in the fleet's cacheUrl, signed by a root cache
   * key. `checkAt` reads that same cache by another URL (--cache-check-at): a cache shipped inside the tree
   * (`<tree>/nix-cache/`, served by the control plane at cacheUrl) is only reachable there after `cp sync`
   * installs the release being checked, so it is checked as `file://<tree>/nix-cache` before.
   */
  cacheCheck?: 'skip' | { concurrency?: number; fetchNarinfo?: NarinfoFetcher; checkAt?: string };
}

/** What the publish did about the binary cache (printed by the CLI; not part of the signed release). */
export type CacheCheckSummary =
  | { skipped: true }
  | {
      skipped: false;
      cacheUrl: string;
      targets: number;
      checked: number;
      keysUsed: string[];
      ms: number;
    };

export interface PublishResult {
  /** 'published'; 'unchanged' (identical fleet, ifIdentical 'skip': version is the current one); 'dry-run' (nothing written). */
  status: 'published' | 'unchanged' | 'dry-run';
  /** What this publish changes against the tree's current release, per channel. */
  diff: ReleaseDiff;
  version: number;
  previousVersion: number;
  rootVersion: number;
  hosts: number;
  /** Channel -> rollout id. */
  rolloutIds: Record<string, string>;
  index: FileRef;
  revocations: { version: number; file: FileRef };
  timestamp: { issuedAt: string; expires: string };
  warnings: string[];
  cacheCheck: CacheCheckSummary;
  /** Wall time per phase, ms. */
  timings: { resolve: number; sign: number; write: number; total: number };
  /** CPU time (user + system) of this process per phase, ms: comparable across runs on a busy machine. */
  cpu: { resolve: number; sign: number; write: number; total: number };
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * Timestamp lifetime: the LARGEST freshness window of any channel. Each agent holds the timestamp to its
 * own channel's `freshnessSeconds` (signed in its channel plan; `channelFreshness` in protocol/verify),
 * so a strict channel no longer sets the pace for all; the expiry is the outer bound for every reader.
 */
export function timestampLifetimeSeconds(freshness: readonly number[]): number {
  return freshness.length > 0 ? Math.max(...freshness) : 3600;
}

export function signTimestamp(o: {
  fleet: string;
  now: number;
  lifetimeSeconds: number;
  rootVersion: number;
  release: { version: number; index: FileRef };
  revocations: { version: number; file: FileRef };
  controls?: { version: number; file: FileRef } | undefined;
  enrolment?: { version: number; file: FileRef } | undefined;
  keys: readonly SigningKey[];
}): Buffer {
  const issuedAtSec = Math.floor(o.now / 1000) * 1000;
  const doc = Timestamp.parse({
    type: 'timestamp',
    schemaVersion: SCHEMA_VERSION,
    fleet: o.fleet,
    issuedAt: isoTime(issuedAtSec),
    expires: isoTime(issuedAtSec + o.lifetimeSeconds * 1000),
    rootVersion: o.rootVersion,
    release: o.release,
    revocations: o.revocations,
    ...(o.controls ? { controls: o.controls } : {}),
    ...(o.enrolment ? { enrolment: o.enrolment } : {}),
  });
  return envelopeBytes(signDocument(doc, o.keys));
}

function loadTrust(opts: PublishOptions): TrustChain {
  if (opts.roots && opts.roots.length > 0) return loadTrustChain(opts.roots, opts.now);
  if (opts.trustDir) return loadTrustDir(opts.trustDir, opts.now);
  throw new PublishRefused(
    'no trust root given (--trust DIR with root/1.json from `nixfleet trust init`)',
  );
}

/** Copies the chain into tree/root/. An existing root file with other bytes means two different chains. */
/** Root versions of the trust chain the tree does not have yet (existing ones must be byte-identical). */
function rootsToInstall(treeDir: string, trust: TrustChain): { path: string; bytes: Uint8Array }[] {
  const missing: { path: string; bytes: Uint8Array }[] = [];
  for (const { version, bytes } of trust.chain) {
    const path = join(treeDir, rootPath(version));
    if (existsSync(path)) {
      if (!readFileSync(path).equals(bytes))
        throw new PublishRefused(
          `${rootPath(version)} in the tree differs from the trust directory's root v${version}; refusing to mix two trust chains`,
        );
      continue;
    }
    missing.push({ path: rootPath(version), bytes });
  }
  const beyond = join(treeDir, rootPath(trust.root.signed.version + 1));
  if (existsSync(beyond))
    throw new PublishRefused(
      `the tree already has ${rootPath(trust.root.signed.version + 1)}, newer than the trust directory: update the trust directory first`,
    );
  return missing;
}

interface Prepared {
  fleet: ReturnType<typeof assertValidFleet>['fleet'];
  resolved: ReturnType<typeof assertValidFleet>['resolved'];
  warnings: string[];
  trust: TrustChain;
  /** The tree's current release as read (and verified) before the lock, for reuse under it. */
  previous: VouchedKeys;
  t0: number;
  c0: number;
  resolveMs: number;
  resolveCpuMs: number;
}

/** Validates the fleet and the trust chain: everything the publish and the cache check need. */
function prepare(opts: PublishOptions): Prepared {
  const t0 = performance.now();
  const c0 = cpuMs();
  opts.onProgress?.({ phase: 'resolve', done: 0, total: 1 });
  const trust = loadTrust(opts);
  // Keys the verified current release already carries are not decoded again (only new keys are).
  const previous = vouchedHostKeys(opts.treeDir, trust.root.signed);
  noteValidHostKeys(previous.keys);
  const { fleet, resolved, warnings } = assertValidFleet(opts.fleet, opts.fleetSource ?? 'fleet');
  const root = trust.root.signed;
  if (root.fleet !== fleet.fleet)
    throw new PublishRefused(
      `the trust root is for fleet "${root.fleet}", the fleet JSON is "${fleet.fleet}"`,
    );
  checkReleaseKeys(trust.root, opts.releaseKeys, opts.now);
  return {
    fleet,
    resolved,
    warnings,
    trust,
    previous,
    t0,
    c0,
    resolveMs: performance.now() - t0,
    resolveCpuMs: cpuMs() - c0,
  };
}

/** Publishes without looking at the binary cache; the caller says so explicitly (`cacheCheck: 'skip'`). */
export function publishRelease(opts: UncheckedPublishOptions): PublishResult {
  if (opts.cacheCheck !== 'skip')
    throw new PublishRefused(
      'publishRelease publishes only with cacheCheck: "skip"; use publishReleaseChecked to check the binary cache',
    );
  return commit(opts, prepare(opts), { skipped: true });
}

/**
 * `nixfleet publish`: validates, then (unless cacheCheck is 'skip') refuses when any target closure is not
 * in the fleet's cacheUrl with a narinfo signed by one of the trust root's cache keys, then publishes.
 */
export async function publishReleaseChecked(opts: CheckedPublishOptions): Promise<PublishResult> {
  const prepared = prepare(opts);
  if (opts.cacheCheck === 'skip') return commitConcurrent(opts, prepared, { skipped: true });
  const { fleet, trust } = prepared;
  const cacheKeys = trust.root.signed.cacheKeys;
  if (fleet.cacheUrl === undefined) {
    throw new PublishRefused(
      'the fleet has no cacheUrl, so hosts could not fetch their closures and the ' +
        'publisher cannot check them; set cacheUrl in the fleet, or pass ' +
        '--no-cache-check if hosts get their closures another way',
    );
  }
  if (cacheKeys.length === 0) {
    throw new PublishRefused(
      `trust root v${trust.root.signed.version} lists no cache keys, so hosts trust ` +
        `no closure signature; add one (nixfleet trust rotate --cache-key ` +
        `name:base64), or pass --no-cache-check`,
    );
  }
  const t = performance.now();
  const progress = opts.onProgress;
  const report = await checkCache({
    cacheUrl: (opts.cacheCheck !== undefined && opts.cacheCheck.checkAt) || fleet.cacheUrl,
    storePaths: Object.values(fleet.hosts).map((h) => h.target),
    trustedKeys: cacheKeys,
    ...(opts.cacheCheck?.concurrency !== undefined
      ? { concurrency: opts.cacheCheck.concurrency }
      : {}),
    ...(opts.cacheCheck?.fetchNarinfo ? { fetchNarinfo: opts.cacheCheck.fetchNarinfo } : {}),
    ...(progress
      ? { onProgress: (done: number, total: number) => progress({ phase: 'cache', done, total }) }
      : {}),
  });
  if (report.problems.length > 0) {
    throw new PublishRefused(
      `${report.problems.length} store path(s) are not in the binary ` +
        `cache ${report.cacheUrl} with a valid signature by a cache key of trust root ` +
        `v${trust.root.signed.version} (checked ${report.checked} ` +
        `paths: ${report.targets} targets and their ` +
        `closures):\n${describeCacheProblems(report)}\npush the closures with \`nix ` +
        `copy --to '<cache>?secret-key=<key file>'\`, or pass --no-cache-check`,
    );
  }
  return commitConcurrent(opts, prepared, {
    skipped: false,
    cacheUrl: report.cacheUrl,
    targets: report.targets,
    checked: report.checked,
    keysUsed: report.keysUsed,
    ms: performance.now() - t,
  });
}

/** Wall and CPU time at one moment, ms. */
interface Clock {
  wall: number;
  cpu: number;
}
function clock(): Clock {
  return { wall: performance.now(), cpu: cpuMs() };
}

/**
 * Under the tree's lock: pick the version, leave an identical fleet alone (ifIdentical 'skip'), build and
 * sign the release, diff it against the current one, then (unless a dry run) write it in the crash-safe
 * order at the top of this file. `publishRelease` signs in line (synchronous).
 */
function commit(
  opts: PublishOptions,
  prepared: Prepared,
  cacheCheck: CacheCheckSummary,
): PublishResult {
  const unlock = acquireLock(opts.treeDir);
  try {
    const started = startCommit(opts, prepared, cacheCheck);
    if ('unchanged' in started) return started.unchanged;
    return finishCommit(opts, prepared, cacheCheck, started, buildRelease(started.release));
  } finally {
    unlock();
  }
}

/**
 * commit, with the host manifests signed on a second thread (buildReleaseConcurrent) and written into
 * releases/<v>'s temp directory as their signatures come in, so that both cores sign and write at once
 * (`nixfleet publish`). The same bytes, the same write order: the temp directory is invisible until
 * writeRelease flushes it and renames it into place after the roots; a failure removes it. The lock is
 * held across the wait like across the synchronous work.
 */
async function commitConcurrent(
  opts: PublishOptions,
  prepared: Prepared,
  cacheCheck: CacheCheckSummary,
): Promise<PublishResult> {
  const unlock = acquireLock(opts.treeDir);
  try {
    const started = startCommit(opts, prepared, cacheCheck);
    if ('unchanged' in started) return started.unchanged;
    const staged = opts.dryRun ? undefined : stageRelease(opts, started.release);
    try {
      const built = await buildReleaseConcurrent(
        started.release,
        // Flushing starts when the last manifest is written, while this thread signs the index.
        staged && { write: (f) => staged.write(f), end: () => staged.flushSoFar() },
      );
      return finishCommit(opts, prepared, cacheCheck, started, built, staged);
    } catch (e) {
      staged?.discard();
      throw e;
    } finally {
      await staged?.flushedSoFar();
    }
  } finally {
    unlock();
  }
}

/** releases/<v>/ as a temp directory (tree.ts stageReleaseDir), its writes reported as the 'write' phase. */
function stageRelease(opts: PublishOptions, release: BuildReleaseInput): StagedRelease {
  const total = releaseFileCount(release);
  return stageReleaseDir(opts.treeDir, release.version, (done) =>
    opts.onProgress?.({ phase: 'write', done, total }),
  );
}

/** What the lock-holding steps before the signing found: the version, the current release, the input. */
interface StartedCommit {
  /** The sign phase starts here, after the cache check (reported on its own in cacheCheck.ms). */
  signStart: Clock;
  current: SignedDocument<Timestamp> | undefined;
  currentRelease: CurrentRelease | null;
  version: number;
  previousVersion: number;
  fleetDigest: string;
  /** What buildRelease signs. */
  release: BuildReleaseInput;
}

/** The steps under the lock before the release is built, or the result of a publish that changes nothing. */
function startCommit(
  opts: PublishOptions,
  prepared: Prepared,
  cacheCheck: CacheCheckSummary,
): StartedCommit | { unchanged: PublishResult } {
  const rootVersion = prepared.trust.root.signed.version;
  const signStart = clock();
  removeStaleTemps(opts.treeDir);
  const current = readCurrentTimestamp(opts.treeDir);
  const { version, previousVersion } = nextVersion(opts, current);
  // JCS of the fleet as read (2.6 MB at 10,000 hosts) through JSON.stringify (publisher/jcs.ts).
  const fleetDigest = sha256Digest(canonicalJsonData(opts.fleet));
  const currentRelease = readIntactRelease(opts.treeDir, current, prepared.previous);
  // An identical fleet keeps every rollout id anyway; a new release would only restate the current one.
  if (
    opts.ifIdentical === 'skip' &&
    !opts.dryRun &&
    currentRelease &&
    currentRelease.index.fleetDigest === fleetDigest &&
    currentRelease.index.rootVersion === rootVersion
  )
    return { unchanged: unchangedResult(current!.signed, currentRelease, prepared, cacheCheck) };
  return {
    signStart,
    current,
    currentRelease,
    version,
    previousVersion,
    fleetDigest,
    release: releaseInput(opts, prepared, version, fleetDigest),
  };
}

/**
 * Signs what the built release binds (revocations, timestamp), diffs it, and writes it unless a dry run
 * (into `staged` when its directory was started already, holding some of its files).
 */
function finishCommit(
  opts: PublishOptions,
  prepared: Prepared,
  cacheCheck: CacheCheckSummary,
  {
    signStart,
    current,
    currentRelease,
    version,
    previousVersion,
    fleetDigest,
    release,
  }: StartedCommit,
  built: BuiltRelease,
  staged?: StagedRelease,
): PublishResult {
  const rootVersion = prepared.trust.root.signed.version;
  const signed = signRelease(opts, prepared, current, version, built);
  const signEnd = clock();
  const facts: PublishFacts = {
    diff: diffRelease(currentRelease, signed.built, { fleetDigest, rootVersion }),
    version,
    previousVersion,
    signed,
    cacheCheck,
  };
  if (opts.dryRun) return publishResult('dry-run', facts, prepared, [signStart, signEnd, clock()]);
  writeRelease(opts, prepared.trust, staged ?? stageRelease(opts, release), signed);
  const written = clock();
  opts.onProgress?.({ phase: 'done', done: 1, total: 1 });
  return publishResult('published', facts, prepared, [signStart, signEnd, written]);
}

/** The version to publish (opts.version or the next one) and the highest the tree already has. */
function nextVersion(
  opts: PublishOptions,
  current: SignedDocument<Timestamp> | undefined,
): { version: number; previousVersion: number } {
  const previousVersion = Math.max(
    current?.signed.release.version ?? 0,
    highestReleaseDir(opts.treeDir),
  );
  if (current && opts.now < parseIsoTime(current.signed.issuedAt)) {
    throw new PublishRefused(
      `the publish time ${isoTime(opts.now)} is before the current timestamp's issuedAt ` +
        `${current.signed.issuedAt}; is the clock wrong?`,
    );
  }
  const version = opts.version ?? previousVersion + 1;
  if (!Number.isSafeInteger(version) || version < 1)
    throw new PublishRefused(`version must be a positive integer, got ${version}`);
  if (version <= previousVersion)
    throw new PublishRefused(
      `version ${version} is not greater than the tree's version ${previousVersion}; ` +
        `release versions strictly increase`,
    );
  return { version, previousVersion };
}

type CurrentRelease = ReturnType<typeof readCurrentRelease>;

/**
 * The current release, for the diff and the identical-fleet check only: a current release whose files
 * are damaged or gone is replaced by this publish like before, and diffed as if there were none.
 * The documents verified before the lock (`previous`) are used while the timestamp under the lock still
 * names the same index (same digest); the index binds every other document by digest.
 */
function readIntactRelease(
  treeDir: string,
  current: SignedDocument<Timestamp> | undefined,
  previous: VouchedKeys,
): CurrentRelease | null {
  if (!current) return null;
  if (previous.release && previous.release.index.digest === current.signed.release.index.digest)
    return previous.release.documents;
  try {
    return readCurrentRelease(treeDir, current.signed);
  } catch {
    return null;
  }
}

/** The result of a publish that leaves the tree as it is: the current release, every channel unchanged. */
function unchangedResult(
  ts: Timestamp,
  currentRelease: CurrentRelease,
  prepared: Prepared,
  cacheCheck: CacheCheckSummary,
): PublishResult {
  return {
    status: 'unchanged',
    diff: {
      currentVersion: ts.release.version,
      identical: true,
      channels: [...currentRelease.plans.values()].map((p) => ({
        channel: p.channel,
        change: 'unchanged' as const,
        rolloutId: { from: p.rolloutId, to: p.rolloutId },
        restartsRollout: false,
        targets: [],
        settings: [],
      })),
      budgets: [],
    },
    version: ts.release.version,
    previousVersion: ts.release.version,
    rootVersion: prepared.trust.root.signed.version,
    hosts: Object.keys(currentRelease.index.hosts).length,
    rolloutIds: Object.fromEntries(
      Object.entries(currentRelease.index.channels).map(([c, e]) => [c, e.rolloutId]),
    ),
    index: ts.release.index,
    revocations: ts.revocations,
    timestamp: { issuedAt: ts.issuedAt, expires: ts.expires },
    warnings: prepared.warnings,
    cacheCheck,
    timings: {
      resolve: prepared.resolveMs,
      sign: 0,
      write: 0,
      total: performance.now() - prepared.t0,
    },
    cpu: { resolve: prepared.resolveCpuMs, sign: 0, write: 0, total: cpuMs() - prepared.c0 },
  };
}

/** A release signed in memory: its files, its revocations and the timestamp that will switch to it. */
interface SignedRelease {
  built: BuiltRelease;
  revocations: ReturnType<typeof planRevocations>;
  timestamp: Buffer;
  /** The timestamp's signed fields, as written. */
  ts: Timestamp;
}

/** What buildRelease signs as release `version`. */
function releaseInput(
  opts: PublishOptions,
  { fleet, resolved, trust }: Prepared,
  version: number,
  fleetDigest: string,
): BuildReleaseInput {
  return {
    fleet,
    resolved,
    version,
    issuedAt: isoTime(opts.now),
    rootVersion: trust.root.signed.version,
    fleetDigest,
    source: opts.source ?? null,
    keys: opts.releaseKeys,
    onSigned: (done, total) => opts.onProgress?.({ phase: 'sign', done, total }),
  };
}

/** Signs the revocations the built release `version` binds and the timestamp that will switch to it. */
function signRelease(
  opts: PublishOptions,
  prepared: Prepared,
  current: SignedDocument<Timestamp> | undefined,
  version: number,
  built: BuiltRelease,
): SignedRelease {
  const { fleet, trust } = prepared;
  const root = trust.root.signed;
  const issuedAt = isoTime(opts.now);
  const previousRevocations = readBoundRevocations(opts.treeDir, current?.signed);
  const revocations = planRevocations(
    fleet,
    previousRevocations && current
      ? { doc: previousRevocations, ref: current.signed.revocations.file }
      : undefined,
    current?.signed.revocations.version ?? 0,
    issuedAt,
    opts.releaseKeys,
    root.rejectBefore,
  );
  const timestamp = signTimestamp({
    fleet: fleet.fleet,
    now: opts.now,
    lifetimeSeconds: timestampLifetimeSeconds(
      Object.values(fleet.channels).map((c) => c.freshnessSeconds),
    ),
    rootVersion: root.version,
    release: { version, index: built.index },
    revocations: { version: revocations.version, file: revocations.ref },
    controls: controlsBinding(opts.treeDir, root, current?.signed),
    enrolment: enrolmentBinding(opts.treeDir, root, current?.signed),
    keys: opts.releaseKeys,
  });
  const ts = (JSON.parse(timestamp.toString('utf8')) as { signed: Timestamp }).signed;
  return { built, revocations, timestamp, ts };
}

/** What a signed (published or dry-run) release's result reports. */
interface PublishFacts {
  diff: ReleaseDiff;
  version: number;
  previousVersion: number;
  signed: SignedRelease;
  cacheCheck: CacheCheckSummary;
}

/** The result, with the sign phase from the first to the second clock and the write phase to the third. */
function publishResult(
  status: 'published' | 'dry-run',
  facts: PublishFacts,
  prepared: Prepared,
  [signStart, signEnd, written]: [Clock, Clock, Clock],
): PublishResult {
  const { built, revocations, ts } = facts.signed;
  return {
    status,
    diff: facts.diff,
    version: facts.version,
    previousVersion: facts.previousVersion,
    rootVersion: prepared.trust.root.signed.version,
    hosts: Object.keys(prepared.fleet.hosts).length,
    rolloutIds: Object.fromEntries(
      Object.values(prepared.resolved.channels).map((c) => [c.name, c.rolloutId]),
    ),
    index: built.index,
    revocations: { version: revocations.version, file: revocations.ref },
    timestamp: { issuedAt: ts.issuedAt, expires: ts.expires },
    warnings: prepared.warnings,
    cacheCheck: facts.cacheCheck,
    timings: {
      resolve: prepared.resolveMs,
      sign: signEnd.wall - signStart.wall,
      write: written.wall - signEnd.wall,
      total: written.wall - prepared.t0,
    },
    cpu: {
      resolve: prepared.resolveCpuMs,
      sign: signEnd.cpu - signStart.cpu,
      write: written.cpu - signEnd.cpu,
      total: written.cpu - prepared.c0,
    },
  };
}

/**
 * Writes the signed release in the crash-safe order: new roots, releases/<v>/ (the files `staged` does
 * not hold yet, then flushed and renamed into place), revocations, the timestamp (which switches agents
 * to it), then the revocations.json mirror.
 */
function writeRelease(
  opts: PublishOptions,
  trust: TrustChain,
  staged: StagedRelease,
  { built, revocations, timestamp, ts }: SignedRelease,
): void {
  const progress = opts.onProgress ?? (() => {});
  const version = ts.release.version;
  const notPublished = `release ${version} was not published and the tree still serves the previous release`;
  const write = (path: string, bytes: Uint8Array, o: { advanceMtime?: boolean } = {}) =>
    writingFile(join(opts.treeDir, path), notPublished, () =>
      writeFileAtomic(join(opts.treeDir, path), bytes, o),
    );
  try {
    for (const r of rootsToInstall(opts.treeDir, trust)) write(r.path, r.bytes);
    for (const f of built.files) if (!staged.has(f.path)) staged.write(f);
  } catch (e) {
    staged.discard();
    throw e;
  }
  staged.install();
  progress({ phase: 'commit', done: 0, total: 1 });
  try {
    if (revocations.file) write(revocations.file.path, revocations.file.bytes);
    write(TIMESTAMP_PATH, timestamp, { advanceMtime: true });
  } catch (e) {
    // Until timestamp.json names it, releases/<v> is unreferenced: remove it so that a failed commit
    // (full disk) frees what it took and `refresh` of the previous release keeps working.
    if (readCurrentTimestamp(opts.treeDir)?.signed.release.version !== version)
      rmSync(join(opts.treeDir, releaseDir(version)), { recursive: true, force: true });
    throw e;
  }
  mirrorRevocations(opts.treeDir, version, revocations.ref);
}

/** revocations.json, the fixed-URL copy of the current revocations, follows the release's. */
function mirrorRevocations(treeDir: string, version: number, current: FileRef): void {
  const revocationBytes = readFileSync(join(treeDir, current.path));
  const mirror = join(treeDir, REVOCATIONS_PATH);
  if (!existsSync(mirror) || !readFileSync(mirror).equals(revocationBytes))
    writingFile(
      mirror,
      `release ${version} is published; the ${REVOCATIONS_PATH} mirror stays stale until the next publish`,
      () => writeFileAtomic(mirror, revocationBytes, { advanceMtime: true }),
    );
}
