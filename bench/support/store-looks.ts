// N looks of one operator view in one process, each made as the CLI makes it (cli/status.ts,
// cli/trace.ts), through a verified-ack store that is either re-opened from its files before every look
// (`reopen`: the one-shot CLI's cost in a warm process) or opened once and renewed before each later
// look (`renew`: read-side/verified-cache.ts renew, what a view server keeps). Prints each look's wall
// and CPU time (all threads) and the process's RSS and heap after it. docs/benchmarks.md "operator",
// "Session 10 (h-keep10)"; bench/store-looks.sh runs it interleaved.
// usage (from the worktree root): node --import tsx bench/support/store-looks.ts DIR MODE VIEW N [live]
//   DIR: a copy of the operator fixture (tree/, root.json, cache/); MODE: reopen | renew;
//   VIEW: status | host:H (status --host H) | trace:H (trace --host H, the tree's ack log);
//   live: after two looks at the fixture's instant, the live minute is applied
//   (bench/support/live-minute.ts), 3 s are let pass (past RACY_MS), the other looks are at its
//   instant, and the tree is put back at the end.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { liveMinute } from './live-minute.ts';
import {
  loadAckHistory,
  loadFleetState,
  loadReleaseAllowingStale,
  openVerifiedAckStore,
  releaseForOperator,
  renderStatus,
  renderTrace,
  statusReport,
  traceReport,
  traceScope,
} from '../../read-side/index.ts';
import { readPinnedRoot } from '../../read-side/load.ts';
import type { VerifiedAckStore } from '../../read-side/verified-cache.ts';

const [dir, mode, view, n, live] = process.argv.slice(2);
if (!dir || (mode !== 'reopen' && mode !== 'renew') || !view || !n)
  throw new Error('usage: store-looks.ts DIR reopen|renew status|host:H|trace:H N [live]');
const pinned = readPinnedRoot(join(dir, 'root.json'));
const tree = join(dir, 'tree');
const cacheDir = join(dir, 'cache');
const [kind, host] = view.split(':');
const storeName = kind === 'status' ? 'status' : kind === 'host' ? 'status-host' : 'trace';
const fixture = JSON.parse(readFileSync(join(dir, 'fixture.json'), 'utf8')) as { now: string };
let now = Date.parse(fixture.now);

/** `nixfleet status [--host H]` with a cache (cli/status.ts treeState), rendered. */
async function statusLook(store: VerifiedAckStore): Promise<string> {
  const state = await loadFleetState(tree, pinned, {
    now,
    manifests: host ? [host] : [],
    ...(host
      ? { host, ackCacheFor: (c: string) => store.scopeAcks(c) }
      : { ackCache: store.cache }),
    ackFiles: () => store.verifiedAckFiles,
    memo: store.documents,
    ackLogs: [],
  });
  store.save();
  return renderStatus(statusReport(state, { host }));
}

/** `nixfleet trace --host H` with a cache (cli/trace.ts), rendered. */
async function traceLook(store: VerifiedAckStore, h: string): Promise<string> {
  const manifests = [h];
  const load = await loadReleaseAllowingStale(tree, pinned, {
    now,
    manifests,
    memo: store.documents,
  });
  const { release } = releaseForOperator(load, manifests);
  const subject = { host: h };
  const scope = traceScope(release, subject);
  const cache = store.scopeAcks(scope.channels[0]!);
  const history = loadAckHistory(
    ...[tree, release, undefined, cache, [], scope.hosts],
    ...[store.indexedLogPrefixes, store.verifiedAckFiles, true],
  );
  const report = traceReport(release, history, subject, {
    now,
    scope,
    replays: store.indexedLogPrefixes,
  });
  store.save();
  return renderTrace(report);
}

const minute = live ? await liveMinute(dir, tree, pinned, fixture.now) : null;
const mb = (bytes: number) => (bytes / 1e6).toFixed(0);
let store: VerifiedAckStore | null = null;
try {
  for (let i = 0; i < Number(n); i++) {
    if (minute !== null && i === 2) {
      minute.apply();
      now = Date.parse(minute.now);
      await new Promise((r) => setTimeout(r, 3000));
    }
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const startedAt = Date.now();
    if (mode === 'reopen' || store === null)
      store = openVerifiedAckStore(cacheDir, storeName, startedAt);
    else store.renew(startedAt);
    const text = kind === 'trace' ? await traceLook(store, host!) : await statusLook(store);
    const c = process.cpuUsage(c0);
    const m = process.memoryUsage();
    console.log(
      `${mode} ${view} look ${i}${minute !== null && i >= 2 ? ' (minute)' : ''}: ` +
        `${(performance.now() - t0).toFixed(0)} ms wall, ${((c.user + c.system) / 1000).toFixed(0)} ms cpu, ` +
        `${text.length} chars, rss ${mb(m.rss)} MB, heap ${mb(m.heapUsed)} MB`,
    );
  }
} finally {
  minute?.restore();
}
