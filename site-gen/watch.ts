// Watch mode: rebuild the dashboard when what it shows changes: a new timestamp (a publish or a
// scheduled re-sign), an installed tree swap (`current`), a new root, a new ack (acks/ or the ack log);
// and on a timer, because ages, soaks and heartbeat expiry move with time even when no file does.
// Changes are coalesced (one build per burst), and builds never overlap: a change during a build
// schedules exactly one more.
import { watch, type FSWatcher } from 'chokidar';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { ACK_LOG_DIR, DocumentMemo, ackLogPath, isAckSegmentName } from '../protocol/index.ts';
import { ReleaseCache, buildSite, type BuildSiteOptions, type SiteBuildResult } from './build.ts';
import { AckCache } from '../read-side/index.ts';
import { AckFeed } from './ack-feed.ts';
import { ModelMemo } from './model.ts';

export interface WatchSiteOptions extends Omit<BuildSiteOptions, 'now'> {
  /** The clock (tests pass their own). */
  now?: () => number;
  /** Changes within this window are coalesced into one build (default 300 ms). */
  debounceMs?: number;
  /** Rebuild at least this often even without changes (default 60 s; 0 = only on changes). */
  intervalSeconds?: number;
  onBuild?: (result: SiteBuildResult, trigger: string) => void;
  onError?: (error: unknown, trigger: string) => void;
}

export interface SiteWatcher {
  /** Stops watching; resolves once no build is running. */
  close(): Promise<void>;
  /** Number of builds finished (successful or not). */
  readonly builds: number;
}

/** Whether `path` is a file of the ack log: the file itself or, for a segmented log, any of its segments. */
function isAckLogChange(path: string, ackLogFile: string | null): boolean {
  if (ackLogFile === null) return false;
  const abs = resolve(path);
  if (abs === resolve(ackLogFile)) return true;
  return (
    isAckSegmentName(basename(ackLogFile)) &&
    dirname(abs) === dirname(resolve(ackLogFile)) &&
    isAckSegmentName(basename(abs))
  );
}

/** Which paths under the tree directory matter to the dashboard. */
export function isRelevantChange(
  treeDir: string,
  path: string,
  ackLogFile: string | null,
): boolean {
  const abs = resolve(path);
  if (isAckLogChange(abs, ackLogFile)) return true;
  const rel = relative(resolve(treeDir), abs);
  if (rel.startsWith('..')) return false;
  const parts = rel.split(sep);
  const name = basename(abs);
  if (name.startsWith('.') && parts[0] !== ACK_LOG_DIR) return false; // temp files of atomic writes
  if (parts.length === 1)
    return (
      name === 'timestamp.json' || name === 'current' || /^revocations(-\d+)?\.json$/.test(name)
    );
  if (parts[0] === 'acks') return name.endsWith('.json');
  if (parts[0] === 'root') return name.endsWith('.json');
  return false;
}

/** A new or changed ack (acks/ or the ack log): the tree's signed documents are unchanged. */
export function isAckChange(treeDir: string, path: string, ackLogFile: string | null): boolean {
  const abs = resolve(path);
  if (isAckLogChange(abs, ackLogFile)) return true;
  return relative(resolve(treeDir), abs).split(sep)[0] === 'acks';
}

export async function watchSite(o: WatchSiteOptions): Promise<SiteWatcher> {
  // The default log's first segment, whether or not it exists yet: a watcher sees it (and any later
  // segment beside it) appear.
  const ackLogFile = o.ackLogFile === undefined ? ackLogPath(o.treeDir) : o.ackLogFile;
  const releaseCache = new ReleaseCache();
  const intervalSeconds = o.intervalSeconds ?? 60;
  // The watcher is ready before the first build and reports every latest-ack file it sees change, so
  // rebuilds need not stat the others; the periodic rebuild reads them all again (a change the
  // watcher missed shows within the interval). Without a periodic rebuild every file is stat'ed.
  const ackFeed = new AckFeed({ changeReports: intervalSeconds > 0 });
  const build = siteBuild(o, ackLogFile, releaseCache, ackFeed);
  const builds = new CoalescedBuilds(o.debounceMs ?? 300, build.run);
  const watcher = await watchTreeChanges(
    o,
    ackLogFile,
    (change, path, acksOnly) => {
      // Only new acks may reuse the previous build's verification; any tree file forces a full one.
      if (!acksOnly) releaseCache.treeChanged();
      else ackFeed.fileChanged(path);
      builds.schedule(change);
    },
    () => ackFeed.changeReportsLost(),
  );
  const interval = periodicRebuild(intervalSeconds, () => {
    // The periodic rebuild verifies from scratch (keys and the root age even when no file changes).
    releaseCache.treeChanged();
    builds.schedule('interval');
  });
  await builds.run('start');

  return {
    get builds() {
      return build.count;
    },
    async close() {
      builds.stop();
      if (interval !== null) clearInterval(interval);
      await watcher.close();
      await builds.idle();
    },
  };
}

/** One dashboard build per call, reusing the caches across builds; reports to onBuild/onError and counts both. */
function siteBuild(
  o: WatchSiteOptions,
  ackLogFile: string | null,
  releaseCache: ReleaseCache,
  ackFeed: AckFeed,
): { run: (trigger: string) => Promise<void>; readonly count: number } {
  const clock = o.now ?? Date.now;
  // A persisted store (--cache-dir) serves the start build and is saved by it; from then on its cache
  // lives in memory and keeps exactly what the last build used.
  let store = o.verifiedStore;
  const ackCache = store?.cache ?? new AckCache();
  const modelMemo = new ModelMemo();
  // The release documents the last full walk verified (by root, bytes and type): the periodic rebuild
  // walks the same tree again every interval, and only documents with other bytes need their
  // signatures checked (every claim, binding and expiry is checked by each walk). Renewed after each
  // walk with what it used, so it holds one tree's documents, not every release's since the start.
  // (The start build with a persisted store uses the store's; the next walks start from what it used.)
  let documents = new DocumentMemo();
  let count = 0;
  return {
    get count() {
      return count;
    },
    run: async (trigger) => {
      try {
        const result = await buildSite({
          treeDir: o.treeDir,
          pinnedRoot: o.pinnedRoot,
          outDir: o.outDir,
          ackLogFile,
          now: clock(),
          ...(store === undefined
            ? { ackCache, documentMemo: documents }
            : { verifiedStore: store }),
          releaseCache,
          ackFeed,
          modelMemo,
          ...(o.pkiDir === undefined ? {} : { pkiDir: o.pkiDir }),
          ...(o.clockSkewSeconds === undefined ? {} : { clockSkewSeconds: o.clockSkewSeconds }),
        });
        if (!result.verificationReused)
          documents = new DocumentMemo(
            store?.documents instanceof DocumentMemo ? store.documents.used() : documents.used(),
          );
        store = undefined;
        count++;
        o.onBuild?.(result, trigger);
      } catch (e) {
        count++;
        o.onError?.(e, trigger);
      }
    },
  };
}

/** Builds one at a time: a burst of changes within debounceMs is one build; a change during a build schedules exactly one more. */
class CoalescedBuilds {
  private timer: NodeJS.Timeout | null = null;
  private building = false;
  /** The trigger of a change seen during a build. */
  private dirty: string | null = null;
  private stopped = false;
  private onIdle: (() => void) | null = null;

  constructor(
    private readonly debounceMs: number,
    private readonly build: (trigger: string) => Promise<void>,
  ) {}

  schedule(trigger: string): void {
    if (this.stopped) return;
    if (this.building) {
      this.dirty = trigger;
      return;
    }
    // One build per burst: the first change arms the timer, later ones ride along.
    if (this.timer === null) this.timer = setTimeout(() => this.run(trigger), this.debounceMs);
  }

  async run(trigger: string): Promise<void> {
    this.timer = null;
    if (this.stopped) return;
    if (this.building) {
      this.dirty = trigger;
      return;
    }
    this.building = true;
    try {
      await this.build(trigger);
    } finally {
      this.building = false;
      this.onIdle?.();
      this.onIdle = null;
    }
    if (this.dirty !== null && !this.stopped) {
      const next = this.dirty;
      this.dirty = null;
      this.schedule(next);
    }
  }

  /** No build starts after this; one already running finishes (see idle). */
  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
  }

  /** Resolves once no build is running. */
  async idle(): Promise<void> {
    if (this.building) await new Promise<void>((r) => (this.onIdle = r));
  }
}

/**
 * Watches what the dashboard shows (isRelevantChange); calls onChange with "<event> <tree-relative path>",
 * the path and whether only acks changed. Resolves once the watcher is ready.
 */
async function watchTreeChanges(
  o: WatchSiteOptions,
  ackLogFile: string | null,
  onChange: (change: string, path: string, acksOnly: boolean) => void,
  onWatcherError: () => void,
): Promise<FSWatcher> {
  const paths = [
    o.treeDir,
    join(o.treeDir, 'acks'),
    join(o.treeDir, 'root'),
    // The log's directory: a segmented log gains files as it rolls.
    ...(ackLogFile !== null ? [ackLogFile, dirname(ackLogFile)] : []),
  ];
  const watcher: FSWatcher = watch(paths, {
    ignoreInitial: true,
    followSymlinks: false,
    // The tree root: its own entries only (timestamp.json, current, revocations); acks/ and root/ deeper.
    depth: 3,
    ignored: (p: string) => {
      const rel = relative(resolve(o.treeDir), resolve(p));
      const top = rel.split(sep)[0];
      return top === 'releases' || top === 'versions' || top === 'nix-cache' || top === 'nginx';
    },
  });
  for (const ev of ['add', 'change', 'unlink'] as const) {
    watcher.on(ev, (p: string) => {
      if (!isRelevantChange(o.treeDir, p, ackLogFile)) return;
      onChange(`${ev} ${relative(o.treeDir, p) || p}`, p, isAckChange(o.treeDir, p, ackLogFile));
    });
  }
  watcher.on('error', (e) => {
    // A watcher that failed may miss changes from now on.
    onWatcherError();
    o.onError?.(e, 'watcher');
  });
  await new Promise<void>((r) => watcher.once('ready', () => r()));
  return watcher;
}

/** Ages, soaks and heartbeat expiry move with time even when no file does; 0 seconds = no timer. */
function periodicRebuild(intervalSeconds: number, rebuild: () => void): NodeJS.Timeout | null {
  return intervalSeconds > 0 ? setInterval(rebuild, intervalSeconds * 1000) : null;
}
