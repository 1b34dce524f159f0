// One dashboard build: verify the served tree, read and verify the acks, run the reconciler's fleet
// view, render every page, install the site atomically.
import { statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import {
  ackLogPath,
  listAckLogSegments,
  servedRoot,
  type SignedRoot,
  ACK_LOG_FILE,
  parseIsoTime,
  DEFAULT_CLOCK_SKEW_SECONDS,
  type VerifiedDocumentMemo,
} from '../protocol/index.ts';
import type { HostPhase } from '../reconciler/index.ts';
import {
  ackTrustOf,
  acksDirOf,
  loadReleaseAllowingStale,
  readAckHistory,
  AckCache,
  type AckFileMemo,
  type AckHistory,
  type HashedFiles,
  type LogPrefixMemo,
  type ReleaseLoad,
  type VerificationFailure,
  type VerifiedRelease,
} from '../read-side/index.ts';
import { buildFleetModel, type FleetModel, type ModelMemo } from './model.ts';
import { renderSite, type SitePages } from './pages.ts';
import { installSite } from './site-dir.ts';
import { hashedFilesOf, startAckPreparse, type AckPreparse } from './ack-preparse.ts';
import { expiringCerts } from './attention.ts';
import type { AckFeed } from './ack-feed.ts';

/**
 * The dashboard reads the newest this many bytes of the ack log, so a build's time and memory stay
 * bounded however long the log grows; older history is left out and the footer says so.
 */
export const SITE_ACK_LOG_WINDOW_BYTES = 128 * 1024 * 1024;

/** read-side's VerifiedAckStore, as much of it as a build uses. */
export interface VerifiedStore {
  cache: AckCache;
  documents: VerifiedDocumentMemo;
  /**
   * The latest-ack files the last one-shot build read, by identity, with the acks it verified in them
   * (read-side/ack-file-memo.ts, as the operator views keep it): a file whose identity
   * is unchanged costs one stat instead of open, read, close, SHA-256 and the cache lookup.
   */
  readonly verifiedAckFiles: AckFileMemo;
  /**
   * The verified prefixes of the ack log's segments the last one-shot build read, with their indexes
   * (read-side/log-index.ts): a segment that still begins with its verified prefix is taken from the
   * index (its records are not split, hashed nor parsed again); only the bytes after it are read.
   */
  readonly indexedLogPrefixes: LogPrefixMemo;
  save(): void;
}

export interface SiteInputOptions {
  /** A control plane's tree directory (with `current` and `acks/`) or a tree `nixfleet publish` wrote. */
  treeDir: string;
  pinnedRoot: SignedRoot;
  /** ms since the epoch: the instant the dashboard describes (ages, soaks, freshness). */
  now: number;
  /** The ack endpoint's log for history; default <treeDir>/.ack-log/acks.log when it exists; null = none. */
  ackLogFile?: string | null;
  clockSkewSeconds?: number;
  /** Parsed and verified acks of earlier builds, by digest (watch mode keeps one). */
  ackCache?: AckCache;
  /**
   * What earlier runs verified, persisted in the operator's cache directory (read-side
   * openVerifiedAckStore, as `status` keeps one): acks by the digest of their bytes and host key, release
   * documents by the digests of the root and their bytes. Its cache is this build's ack cache (instead
   * of `ackCache`), its memo the walk's; it is saved right after the ack intake.
   */
  verifiedStore?: VerifiedStore;
  /**
   * Release documents earlier walks verified, by root, bytes and type (protocol VerifiedDocumentMemo;
   * `site watch` keeps the last walk's): used when there is no `verifiedStore`.
   */
  documentMemo?: VerifiedDocumentMemo;
  /** The verified release of an earlier build, reused while no tree file changed (watch mode keeps one). */
  releaseCache?: ReleaseCache;
  /** The control plane's PKI directory: certificates expiring within 30 days go on the overview. */
  pkiDir?: string;
  /**
   * What earlier builds read of the ack log (watch mode keeps one, with `ackCache`): while the
   * verification is reused, only the records appended since are read (ack-feed.ts).
   */
  ackFeed?: AckFeed;
  /** Per-host results of earlier builds (watch mode keeps one, with `ackFeed`): model.ts ModelMemo. */
  modelMemo?: ModelMemo;
  /**
   * Check every signature, as `nixfleet verify` does (tests compare the two sites). Default: the
   * dashboard verifies as a reader (SITE_SIGNATURES): host manifests bound by the verified release
   * index, acks through each host's chain tip; the same facts proved with ~10,000 instead of ~34,000
   * Ed25519 checks at 10,000 hosts (docs/architecture.md "Readers that verify less").
   */
  everySignature?: boolean;
  /**
   * Whether a truly cold build takes the log's acks in on a helper thread while it walks the release
   * (ack-preparse.ts): false never, true always (tests), default when the log is large enough to pay.
   */
  preparseAcks?: boolean;
}

/** How a dashboard build establishes signatures, unless `everySignature` is asked for. */
export const SITE_SIGNATURES = {
  manifests: 'bound-by-index',
  acks: 'chain-tips',
} as const;

/**
 * Watch mode's memory of the last verified release. `site watch` reports every change of a tree file
 * (timestamp.json, current, root/, revocations) with `treeChanged()`; a build whose only triggers were
 * acks reuses the release verified by the previous build instead of re-running verifyTree, as long as
 * nothing it checked against the clock has run out: the timestamp, the root and every release key still
 * in its window are valid beyond `now` + the clock skew. Anything else (a tree change, a stale or failed
 * load, a periodic rebuild) verifies from scratch.
 */
export class ReleaseCache {
  private generation = 0;
  private last: {
    load: Extract<ReleaseLoad, { status: 'verified' }>;
    generation: number;
    validUntil: number;
  } | null = null;

  treeChanged(): void {
    this.generation++;
  }

  /** The verification to reuse at `now`, or null. */
  reusable(now: number): ReleaseLoad | null {
    const l = this.last;
    return l !== null && l.generation === this.generation && now < l.validUntil ? l.load : null;
  }

  /** Records a fresh load (made while the tree was at `generation`). */
  remember(load: ReleaseLoad, generation: number, now: number, skewSeconds: number): void {
    if (load.status !== 'verified') {
      this.last = null;
      return;
    }
    const r = load.release;
    const keyEnds = r.root.releaseKeys
      .map((k) => parseIsoTime(k.validUntil))
      .filter((t) => t > now);
    const validUntil =
      Math.min(parseIsoTime(r.timestamp.expires), parseIsoTime(r.root.expires), ...keyEnds) -
      skewSeconds * 1000;
    this.last = { load, generation, validUntil };
  }

  get currentGeneration(): number {
    return this.generation;
  }
}

export interface BuildSiteOptions extends SiteInputOptions {
  /** Becomes a symlink to the newest build (serve this path). */
  outDir: string;
}

export interface SiteSummary {
  status: ReleaseLoad['status'];
  failure: VerificationFailure | null;
  fleet: string | null;
  release: number | null;
  hosts: number;
  phases: Record<HostPhase, number> | null;
  channels: { channel: string; state: string; reason: string }[];
  acks: { accepted: number; rejected: number };
  pages: number;
}

export interface SiteBuildResult extends SiteSummary {
  outDir: string;
  buildDir: string;
  /** Size of the whole site; `written` pages of `bytesWritten` changed, the rest are linked from the previous build. */
  bytes: number;
  written: number;
  bytesWritten: number;
  /** Pages rendered: the others had the same inputs as in the previous build (site-pages.ts). */
  rendered: number;
  largestPage: { path: string; bytes: number } | null;
  /** The release verified by the previous build was reused (watch mode, only acks changed). */
  verificationReused: boolean;
  timingsMs: {
    verify: number;
    acks: number;
    model: number;
    render: number;
    write: number;
    total: number;
  };
}

export class TreeNotFound extends Error {
  constructor(readonly treeDir: string) {
    super(`${treeDir}: no tree there (neither a published tree nor a control plane directory)`);
    this.name = 'TreeNotFound';
  }
}

export interface RenderedSite {
  /** Every page, rendered when asked (installSite renders those whose inputs changed). */
  pages: SitePages;
  summary: SiteSummary;
  verificationReused: boolean;
  timingsMs: { verify: number; acks: number; model: number };
}

/**
 * The acks a build shows: the ack log (its newest SITE_ACK_LOG_WINDOW_BYTES) and acks/hosts/, verified
 * against `release`; through the ack feed in watch mode (`releaseReused`: only appended records are
 * read). `memos`: the store whose log-prefix indexes and latest-ack file identities this one-shot
 * build reads and keeps (storeMemos). Saves the verified store.
 */
function readSiteAcks(
  o: SiteInputOptions,
  release: VerifiedRelease,
  releaseReused: boolean,
  cache: AckCache | undefined,
  memos: VerifiedStore | null,
  hashedFiles: HashedFiles | undefined,
): AckHistory {
  const logFile = siteAckLog(o);
  const segments = logFile === null ? [] : listAckLogSegments(logFile);
  const source = {
    acksDir: acksDirOf(o.treeDir),
    // A missing log (none yet, or not kept) means: latest acks only, and the footer says so.
    logFile: segments.length > 0 ? logFile : null,
    trust: ackTrustOf(release),
    signatures: o.everySignature ? ('each' as const) : SITE_SIGNATURES.acks,
    // A corrupt log must not take the dashboard down: it is reported, the latest acks still count.
    log: {
      label: basename(logFile ?? ACK_LOG_FILE),
      onCorrupt: 'reject' as const,
      ...logWindow(segments, memos),
    },
  };
  let acks: AckHistory;
  let commit = true;
  if (o.ackFeed !== undefined && cache !== undefined) {
    const fed = o.ackFeed.read({ ...source, cache }, releaseReused);
    acks = fed.history;
    // An incremental read looked up only the new acks: the cache keeps the others for later.
    commit = fed.full;
  } else
    acks = readAckHistory({
      ...source,
      // The endpoint's per-wave bundles repeat the latest acks read from acks/hosts/ and the log.
      bundles: false,
      ...(cache ? { cache } : {}),
      ...(memos === null ? {} : { files: memos.verifiedAckFiles }),
      ...(hashedFiles === undefined ? {} : { hashedFiles }),
    });
  // Saved before commit(): what this build verified or reused is what the store keeps.
  o.verifiedStore?.save();
  if (commit) cache?.commit();
  if (o.ackFeed !== undefined) return acks;
  // A one-shot build shows no ack envelope (watch mode's notifications carry them) and takes no ack
  // in again: the envelopes of ~24,000 acks (the history's, the cache's parsed acks) are let go
  // before the model and the pages, the build's largest heap. A caller building again with the same
  // cache takes those acks in again (what it verified is still known).
  cache?.forgetParsed();
  return { ...acks, envelopes: [] };
}

/**
 * How a build reads the log: its newest SITE_ACK_LOG_WINDOW_BYTES; or, with a persisted store and a
 * log within the window, whole, through the store's verified prefixes and their indexes (a remembered
 * prefix is only for segments read whole from their start, read-side collectAckLog). A log that grows
 * past the window between this look and the read is read whole once (bounded by MAX_ACK_LOG_BYTES).
 */
function logWindow(
  segments: readonly { file: string }[],
  store: VerifiedStore | null,
): { windowBytes: number } | { prefixes: LogPrefixMemo } {
  let bytes = 0;
  for (const s of segments) bytes += statSync(s.file, { throwIfNoEntry: false })?.size ?? 0;
  return store !== null && bytes <= SITE_ACK_LOG_WINDOW_BYTES
    ? { prefixes: store.indexedLogPrefixes }
    : { windowBytes: SITE_ACK_LOG_WINDOW_BYTES };
}

/**
 * The store whose memos a one-shot build reads and keeps: the verified prefixes of the log with their
 * indexes (logWindow) and the latest-ack files by identity; null in watch mode (the ack feed keeps its
 * own), without a store, and for a truly cold build (a store that remembers nothing yet): preparing
 * those memos costs a build that reads everything anyway (encoding ~24,000 acks at 10,000 hosts), so
 * it is left to the next build, which has the store's verified acks. Acks taken from the memos are not
 * looked up in the ack cache, so a warm store's cache may be about empty: the memos count as memory.
 */
function storeMemos(o: SiteInputOptions, logFile: string | null): VerifiedStore | null {
  const store = o.ackFeed === undefined ? o.verifiedStore : undefined;
  if (store === undefined) return null;
  const remembers =
    !store.cache.cold ||
    store.verifiedAckFiles.remembered > 0 ||
    (logFile !== null && takenFromIndexes(store, logFile));
  return remembers ? store : null;
}

/**
 * Whether the log's records will come from remembered prefix indexes, so that their strict intake on
 * a helper thread would be wasted: the store's ack cache is then about empty (acks from an index are
 * not looked up in it), not a sign of a truly cold build.
 */
function takenFromIndexes(store: VerifiedStore, logFile: string): boolean {
  return listAckLogSegments(logFile).some((s) => store.indexedLogPrefixes.indexes(resolve(s.file)));
}

/** The ack log a build reads: `ackLogFile`, else the tree's when it exists; null = none. */
function siteAckLog(o: SiteInputOptions): string | null {
  return o.ackLogFile === undefined ? ackLogPath(o.treeDir) : o.ackLogFile;
}

/** The helper's answer taken in: its digests primed in `cache`, its files' digests for the read. */
async function helped(
  preparse: AckPreparse | null,
  cache: AckCache | undefined,
): Promise<HashedFiles | undefined> {
  if (preparse === null || cache === undefined) return undefined;
  const answer = await preparse.result();
  cache.primeTakenIn(answer.takenIn);
  return hashedFilesOf(answer);
}

/**
 * A truly cold build (nothing reused, an ack cache and a store that know nothing) takes the log's acks
 * in, and reads and hashes the latest-ack files, on a helper thread while it walks the release
 * (ack-preparse.ts); with acks known from earlier builds there is little left to take in.
 */
function startPreparse(o: SiteInputOptions, logFile: string | null): AckPreparse | null {
  if (logFile === null || o.preparseAcks === false) return null;
  return startAckPreparse(
    logFile,
    SITE_ACK_LOG_WINDOW_BYTES,
    // The one-shot read's latest-ack files (watch mode reads them through its ack feed).
    o.ackFeed === undefined ? resolve(acksDirOf(o.treeDir), 'hosts') : null,
    { always: o.preparseAcks === true },
  );
}

export async function renderSitePages(o: SiteInputOptions): Promise<RenderedSite> {
  const t0 = performance.now();
  if (servedRoot(o.treeDir) === null) throw new TreeNotFound(o.treeDir);
  const reused = o.releaseCache?.reusable(o.now) ?? null;
  const logFile = siteAckLog(o);
  let cache = o.verifiedStore?.cache ?? o.ackCache;
  const memos = storeMemos(o, logFile);
  let preparse =
    reused === null && memos === null && (cache?.cold ?? true) ? startPreparse(o, logFile) : null;
  let load: ReleaseLoad;
  if (reused !== null) load = reused;
  else {
    const generation = o.releaseCache?.currentGeneration ?? 0;
    const memo = o.verifiedStore?.documents ?? o.documentMemo;
    load = await loadReleaseAllowingStale(o.treeDir, o.pinnedRoot, {
      now: o.now,
      ...(o.clockSkewSeconds === undefined ? {} : { clockSkewSeconds: o.clockSkewSeconds }),
      ...(memo === undefined ? {} : { memo }),
      manifestSignatures: o.everySignature ? 'each' : SITE_SIGNATURES.manifests,
    });
    o.releaseCache?.remember(
      load,
      generation,
      o.now,
      o.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS,
    );
  }
  // No ack intake follows a failed walk: the helper's work would only keep the process waiting.
  if (load.status === 'failed') preparse?.stop();
  const t1 = performance.now();
  let acks: AckHistory | null = null;
  let model: FleetModel | null = null;
  let t2 = t1;
  if (load.status !== 'failed') {
    if (preparse !== null) cache ??= new AckCache();
    acks = readSiteAcks(
      o,
      load.release,
      reused !== null,
      cache,
      memos,
      await helped(preparse, cache),
    );
    // What the helper handed back (~40,000 strings at 10,000 hosts) is let go once taken in.
    preparse = null;
    t2 = performance.now();
    model = buildFleetModel(load.release, acks, o.now, o.modelMemo);
  }
  // Certificates are the control plane's, not signed fleet data: listed only when --pki is given.
  const certs = o.pkiDir === undefined || model === null ? null : expiringCerts(o.pkiDir, o.now);
  const pages = renderSite(load, model, o.now, o.pinnedRoot.signed.version, { certs });
  const t3 = performance.now();
  const summary: SiteSummary = {
    status: load.status,
    failure: load.status === 'verified' ? null : load.failure,
    fleet: load.status === 'failed' ? null : load.release.report.fleet,
    release: load.status === 'failed' ? null : load.release.report.release.version,
    hosts: model?.hosts.length ?? 0,
    phases: model?.phaseTotals ?? null,
    channels:
      model?.view.channels.map((c) => ({ channel: c.channel, state: c.state, reason: c.reason })) ??
      [],
    acks: {
      accepted:
        model === null ? 0 : [...model.ackHistory.values()].reduce((n, l) => n + l.length, 0),
      rejected: acks?.rejected.length ?? 0,
    },
    pages: pages.count,
  };
  return {
    pages,
    summary,
    verificationReused: reused !== null,
    timingsMs: { verify: t1 - t0, acks: t2 - t1, model: t3 - t2 },
  };
}

export async function buildSite(o: BuildSiteOptions): Promise<SiteBuildResult> {
  const t0 = performance.now();
  const { pages, summary, timingsMs, verificationReused } = await renderSitePages(o);
  const t1 = performance.now();
  const installed = installSite(o.outDir, pages);
  const t2 = performance.now();
  const round = (n: number) => Math.round(n * 10) / 10;
  return {
    ...summary,
    outDir: o.outDir,
    buildDir: installed.buildDir,
    bytes: installed.bytes,
    written: installed.written,
    bytesWritten: installed.bytesWritten,
    rendered: installed.rendered,
    largestPage: installed.largest,
    verificationReused,
    timingsMs: {
      verify: round(timingsMs.verify),
      acks: round(timingsMs.acks),
      // The model includes the pages' inputs; rendering happens as the pages are installed.
      model: round(timingsMs.model),
      render: round(installed.renderMs),
      write: round(t2 - t1 - installed.renderMs),
      total: round(t2 - t0),
    },
  };
}
