// Watch mode: rebuild the dashboard when what it shows changes: a new timestamp (a publish or a
// scheduled re-sign), an installed tree swap (`current`), a new root, a new ack (acks/ or the ack log);
// and on a timer, because ages, soaks and heartbeat expiry move with time even when no file does.
// Changes are coalesced (one build per burst), and builds never overlap: a change during a build
// schedules exactly one more.
import { watch, type FSWatcher } from 'chokidar';
import { basename, join, relative, resolve, sep } from 'node:path';
import { ACK_LOG_DIR, ackLogPath } from '../protocol/index.ts';
import { ReleaseCache, buildSite, type BuildSiteOptions, type SiteBuildResult } from './build.ts';
import { AckCache } from '../operator/index.ts';
import { HostPageMemo } from './pages.ts';

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

/** Which paths under the tree directory matter to the dashboard. */
export function isRelevantChange(treeDir: string, path: string, ackLogFile: string | null): boolean {
  const abs = resolve(path);
  if (ackLogFile !== null && abs === resolve(ackLogFile)) return true;
  const rel = relative(resolve(treeDir), abs);
  if (rel.startsWith('..')) return false;
  const parts = rel.split(sep);
  const name = basename(abs);
  if (name.startsWith('.') && parts[0] !== ACK_LOG_DIR) return false; // temp files of atomic writes
  if (parts.length === 1) return name === 'timestamp.json' || name === 'current' || /^revocations(-\d+)?\.json$/.test(name);
  if (parts[0] === 'acks') return name.endsWith('.json');
  if (parts[0] === 'root') return name.endsWith('.json');
  return false;
}

/** A new or changed ack (acks/ or the ack log): the tree's signed documents are unchanged. */
export function isAckChange(treeDir: string, path: string, ackLogFile: string | null): boolean {
  const abs = resolve(path);
  if (ackLogFile !== null && abs === resolve(ackLogFile)) return true;
  return relative(resolve(treeDir), abs).split(sep)[0] === 'acks';
}

export async function watchSite(o: WatchSiteOptions): Promise<SiteWatcher> {
  const clock = o.now ?? Date.now;
  const debounceMs = o.debounceMs ?? 300;
  const ackLogFile = o.ackLogFile === undefined ? ackLogPath(o.treeDir) : o.ackLogFile;
  let builds = 0;
  let timer: NodeJS.Timeout | null = null;
  let building = false;
  let dirty: string | null = null;
  let closed = false;
  let idle: (() => void) | null = null;
  const ackCache = new AckCache();
  const releaseCache = new ReleaseCache();
  const hostPageMemo = new HostPageMemo();

  const runBuild = async (trigger: string): Promise<void> => {
    timer = null;
    if (closed) return;
    if (building) {
      dirty = trigger;
      return;
    }
    building = true;
    try {
      const result = await buildSite({
        treeDir: o.treeDir, pinnedRoot: o.pinnedRoot, outDir: o.outDir, ackLogFile, now: clock(), ackCache, releaseCache, hostPageMemo,
        ...(o.pkiDir === undefined ? {} : { pkiDir: o.pkiDir }),
        ...(o.clockSkewSeconds === undefined ? {} : { clockSkewSeconds: o.clockSkewSeconds }),
      });
      builds++;
      o.onBuild?.(result, trigger);
    } catch (e) {
      builds++;
      o.onError?.(e, trigger);
    } finally {
      building = false;
      idle?.();
      idle = null;
    }
    if (dirty !== null && !closed) {
      const next = dirty;
      dirty = null;
      schedule(next);
    }
  };

  const schedule = (trigger: string): void => {
    if (closed) return;
    if (building) {
      dirty = trigger;
      return;
    }
    // One build per burst: the first change arms the timer, later ones ride along.
    if (timer === null) timer = setTimeout(() => runBuild(trigger), debounceMs);
  };

  const paths = [o.treeDir, join(o.treeDir, 'acks'), join(o.treeDir, 'root'), ...(ackLogFile !== null ? [ackLogFile] : [])];
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
      // Only new acks may reuse the previous build's verification; any tree file forces a full one.
      if (!isAckChange(o.treeDir, p, ackLogFile)) releaseCache.treeChanged();
      schedule(`${ev} ${relative(o.treeDir, p) || p}`);
    });
  }
  watcher.on('error', (e) => o.onError?.(e, 'watcher'));
  await new Promise<void>((r) => watcher.once('ready', () => r()));

  // The periodic rebuild verifies from scratch (keys and the root age even when no file changes).
  const interval = (o.intervalSeconds ?? 60) > 0 ? setInterval(() => {
    releaseCache.treeChanged();
    schedule('interval');
  }, (o.intervalSeconds ?? 60) * 1000) : null;
  await runBuild('start');

  return {
    get builds() {
      return builds;
    },
    async close() {
      closed = true;
      if (timer !== null) clearTimeout(timer);
      if (interval !== null) clearInterval(interval);
      await watcher.close();
      if (building) await new Promise<void>((r) => (idle = r));
    },
  };
}
