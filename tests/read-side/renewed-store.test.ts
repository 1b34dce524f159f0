// One verified-ack store kept across looks (read-side/verified-cache.ts renew: a view server's warm
// store) serves each look exactly as a store re-opened from the files its last save wrote: the same
// views, the same recall counts (latest-ack files recalled, acks verified and reused, log prefixes and
// indexes taken, replays resumed, documents recalled and verified) and, its directory sharing the
// re-opened one's key, byte for byte the same files written. Checked over a sequence of fleet,
// one-host (both channels) and trace (both channels) looks with changes between them: a new latest
// ack and its log records, a file tampered in place (refused by both), a new release re-keying a host;
// and the racy rule at each look's own start; a look that did not save keeps nothing. Real published tree, real signed acks, the real store.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { loadFleetState, readPinnedRoot, releaseForOperator } from '../../read-side/load.ts';
import { loadReleaseAllowingStale } from '../../read-side/release.ts';
import { renderStatus, statusReport } from '../../read-side/status.ts';
import { loadAckHistory, traceReport, traceScope } from '../../read-side/trace.ts';
import { openVerifiedAckStore, type VerifiedAckStore } from '../../read-side/verified-cache.ts';
import { RACY_MS } from '../../read-side/ack-file-memo.ts';
import {
  MIN,
  NOW,
  chainedRollout,
  cleanupTempDirs,
  postAcks,
  rekeyingRelease,
  rewriteSignatureInPlace,
  type Fixture,
} from './fixture.ts';

test.after.each(cleanupTempDirs);

/**
 * A look: which view, of which host (none: the fleet); a trace's log (default: the fixture's);
 * `unsaved`: the store is not saved (a look that failed).
 */
type Look = { view: 'status' | 'trace'; host?: string; log?: string; unsaved?: boolean };

/** What a look showed and what it recalled and checked (the counters the memos keep). */
interface Seen {
  view: string;
  rejected: string[];
  counts: Record<string, unknown>;
}

const storeName = (l: Look) =>
  l.view === 'trace' ? 'trace' : l.host === undefined ? 'status' : 'status-host';

/** `nixfleet status [--host H]` as the CLI runs it with a cache, through `store`; saved. */
async function statusLook(
  fx: Fixture,
  store: VerifiedAckStore,
  host?: string,
  save = true,
): Promise<Seen> {
  const state = await loadFleetState(fx.tree, readPinnedRoot(fx.rootFile), {
    now: NOW,
    manifests: host === undefined ? [] : [host],
    ...(host === undefined
      ? { ackCache: store.cache }
      : { host, ackCacheFor: (channel: string) => store.scopeAcks(channel) }),
    ackFiles: () => store.verifiedAckFiles,
    memo: store.documents,
    ackLogs: [],
  });
  if (save) store.save();
  const report = statusReport(state, { host });
  return {
    view: `${renderStatus(report)}\n${JSON.stringify(report)}`,
    rejected: state.acks.rejected.map((r) => `${r.source} ${r.code}`),
    counts: counts(store, false),
  };
}

/** `nixfleet trace --host H --acks-log LOG` as the CLI runs it with a cache, through `store`; saved. */
async function traceLook(
  fx: Fixture,
  store: VerifiedAckStore,
  host: string,
  log = fx.logFile,
  save = true,
): Promise<Seen> {
  const manifests = [host];
  const load = await loadReleaseAllowingStale(fx.tree, readPinnedRoot(fx.rootFile), {
    now: NOW,
    manifests,
    memo: store.documents,
  });
  const { release } = releaseForOperator(load, manifests);
  const subject = { host };
  const scope = traceScope(release, subject);
  const cache = store.scopeAcks(scope.channels[0]!);
  const history = loadAckHistory(
    ...[fx.tree, release, log, cache, [], scope.hosts],
    ...[store.indexedLogPrefixes, store.verifiedAckFiles, true],
  );
  const report = traceReport(release, history, subject, {
    now: NOW,
    scope,
    replays: store.indexedLogPrefixes,
  });
  if (save) store.save();
  return {
    view: JSON.stringify(report),
    rejected: history.rejected.map((r) => `${r.source} ${r.code}`),
    counts: counts(store, true),
  };
}

/** The counters of the memos a look used. */
function counts(store: VerifiedAckStore, trace: boolean): Record<string, unknown> {
  const files = store.verifiedAckFiles;
  const prefixes = trace ? store.indexedLogPrefixes : null;
  return {
    acks: store.cache.counts,
    files: { recalled: files.hits, remembered: files.remembered },
    documents: { recalled: store.documents.hits, verified: store.documents.verified },
    ...(prefixes === null
      ? {}
      : {
          prefixes: [
            prefixes.hits,
            prefixes.indexHits,
            prefixes.identityHits,
            prefixes.resumedReplays,
          ],
        }),
  };
}

const lookThrough = (fx: Fixture, store: VerifiedAckStore, l: Look) =>
  l.view === 'trace'
    ? traceLook(fx, store, l.host!, l.log, !l.unsaved)
    : statusLook(fx, store, l.host, !l.unsaved);

/**
 * Two cache directories with one key: `reopened`, whose store each look opens from its files (the
 * one-shot CLI), and `kept`, whose store per view is opened once and renewed before each later look.
 */
function twoCaches(fx: Fixture) {
  const reopened = join(fx.dir, 'cache-reopened');
  const kept = join(fx.dir, 'cache-kept');
  const key = `${createHash('sha256').update(fx.dir).digest('hex')}\n`;
  for (const d of [reopened, kept]) {
    mkdirSync(d, { mode: 0o700 });
    writeFileSync(join(d, 'cache-key'), key, { mode: 0o600 });
  }
  const stores = new Map<string, VerifiedAckStore>();
  /** Each look through both, started at `startedAt`: what each showed. */
  const look = async (l: Look, startedAt = Date.now() + 10 * RACY_MS) => {
    const once = await lookThrough(fx, openVerifiedAckStore(reopened, storeName(l), startedAt), l);
    let store = stores.get(storeName(l));
    if (store === undefined) {
      store = openVerifiedAckStore(kept, storeName(l), startedAt);
      stores.set(storeName(l), store);
    } else store.renew(startedAt);
    const renewed = await lookThrough(fx, store, l);
    return { once, renewed };
  };
  return { reopened, kept, look, stores };
}

/** The files of a cache directory, by name, as text. */
function cacheFiles(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(dir).sort()) out[f] = readFileSync(join(dir, f), 'latin1');
  return out;
}

/** The looks of a step, each through both stores: the same views, counts and files written. */
async function sameLooks(c: ReturnType<typeof twoCaches>, looks: Look[], label: string) {
  const seen: Seen[] = [];
  for (const l of looks) {
    const what = `${label}: ${l.view} ${l.host ?? 'fleet'}`;
    const { once, renewed } = await c.look(l);
    assert.equal(renewed.counts, once.counts, `${what}: counts`);
    assert.equal(renewed.rejected, once.rejected, `${what}: rejected`);
    assert.ok(renewed.view === once.view, `${what}: view`);
    assert.equal(cacheFiles(c.kept), cacheFiles(c.reopened), `${what}: files written`);
    seen.push(renewed);
  }
  return seen;
}

const hostFile = (fx: Fixture, h: string) => join(fx.tree, 'acks', 'hosts', `${h}.json`);

test('a renewed store serves each look as a store re-opened from its files: views, counts and files written, across changes and scopes', async () => {
  const fx = chainedRollout('renewed', { first: 20, ch0: 12, ch1: 5, polling: 5 });
  const c = twoCaches(fx);
  const h1 = fx.wave('ch-1', 1)[0]!;
  const h0 = fx.wave('ch-0', 1)[0]!;
  const ch1: Look[] = [
    { view: 'status' },
    { view: 'status', host: h1 },
    { view: 'trace', host: h1 },
  ];
  await sameLooks(c, ch1, 'cold');
  const warm = await sameLooks(c, ch1, 'warm');
  assert.ok(
    warm.every((s) => (s.counts.files as { recalled: number }).recalled > 0),
    'the warm looks recall files',
  );
  assert.ok((warm[2]!.counts.prefixes as number[])[1]! > 0, 'the warm trace reads the index');

  // A new latest ack (and its log record) of a ch-1 host.
  postAcks(fx, h1, [{ kind: 'started', at: NOW - 2 * MIN }]);
  await sameLooks(c, ch1, 'a new ack');
  await sameLooks(c, ch1, 'after the new ack');

  // The other channel's scope (another one-host and trace scope), then back.
  const ch0: Look[] = [
    { view: 'status', host: h0 },
    { view: 'trace', host: h0 },
  ];
  await sameLooks(c, ch0, 'the other scope');
  await sameLooks(c, [...ch1, ...ch0], 'both scopes');

  // The log read from another path (a copy): the first one's prefix is no longer remembered after.
  const copy = join(fx.dir, 'acks-copy.log');
  copyFileSync(fx.logFile, copy);
  await sameLooks(c, [{ view: 'trace', host: h1, log: copy }, ...ch1], 'a log moved');

  // A file rewritten in place (its signature): read again and refused by both.
  const peer = fx.wave('ch-0', 0)[0]!;
  const second = Math.floor((Date.now() - MIN) / 1000);
  utimesSync(hostFile(fx, peer), second, second);
  rewriteSignatureInPlace(hostFile(fx, peer));
  const tampered = await sameLooks(c, [...ch1, ...ch0], 'tampered');
  for (const s of tampered)
    assert.ok(
      s.rejected.includes(`acks/hosts/${peer}.json BadSignature`),
      'the tampered file is refused',
    );

  // A new release that re-keys a host: changed documents, that host's file verified again.
  rekeyingRelease(fx, h0);
  await sameLooks(c, [...ch1, ...ch0], 'a new release');
  await sameLooks(c, [...ch1, ...ch0], 'after the new release');
});

test('a renewed store forgets the scopes no recent look chose, and serves them from their files next: the same looks', async () => {
  const fx = chainedRollout('renewed-forget', { first: 20, ch0: 12, ch1: 5, polling: 5 });
  const c = twoCaches(fx);
  const h0 = fx.wave('ch-0', 1)[0]!;
  const h1 = fx.wave('ch-1', 1)[0]!;
  const t = Date.now() + 10 * RACY_MS;
  await c.look({ view: 'status', host: h0 }, t);
  await c.look({ view: 'status', host: h1 }, t + 1000);
  const store = c.stores.get('status-host')!;
  assert.is(store.scopesKept, 2, 'one scope per channel');
  assert.is(store.forgetScopesUsedBefore(t), 0, 'both chosen at or after t');
  assert.is(store.forgetScopesUsedBefore(t + 1000), 1, "the first channel's scope is dropped");
  assert.is(store.scopesKept, 1);
  // A new ack meanwhile, then both scopes again: the dropped one is read from its files.
  postAcks(fx, h0, [{ kind: 'started', at: NOW - 2 * MIN }]);
  const looks: Look[] = [
    { view: 'status', host: h0 },
    { view: 'status', host: h1 },
  ];
  const seen = await sameLooks(c, looks, 'after forgetting');
  assert.ok((seen[1]!.counts.files as { recalled: number }).recalled > 0, 'the kept one recalls');
  assert.is(store.scopesKept, 2);
  await sameLooks(c, looks, 'again');
});

test('the racy rule holds at each look of a renewed store: a file younger than RACY_MS at a look is not recalled by the next', async () => {
  const fx = chainedRollout('renewed-racy', { first: 20, ch0: 12, ch1: 5, polling: 5 });
  const c = twoCaches(fx);
  const fleet: Look = { view: 'status' };
  const files = readdirSync(join(fx.tree, 'acks', 'hosts')).length;
  const recalled = (s: Seen) => (s.counts.files as { recalled: number }).recalled;
  await c.look(fleet);
  const warm = await c.look(fleet);
  assert.is(recalled(warm.renewed), files);

  // A new ack just written: at a look started now it is younger than RACY_MS, so not remembered...
  const h = fx.wave('ch-1', 0)[0]!;
  postAcks(fx, h, [{ kind: 'heartbeat', at: NOW - MIN, healthySince: NOW - 16 * MIN }]);
  const racy = await c.look(fleet, Date.now());
  assert.is(recalled(racy.renewed), files - 1);
  // ...and read again by the next look, started well after it: remembered then, recalled after.
  const next = await c.look(fleet);
  assert.is(recalled(next.renewed), files - 1, 'the racy file is read again');
  assert.equal(next.renewed.counts, next.once.counts);
  const after = await c.look(fleet);
  assert.is(recalled(after.renewed), files);
  assert.equal(after.renewed.counts, after.once.counts);
  assert.equal(cacheFiles(c.kept), cacheFiles(c.reopened));
});

test('a look that did not save (it failed): the next look of a renewed store is served as a re-opened one, nothing of it kept', async () => {
  const fx = chainedRollout('renewed-unsaved', { first: 20, ch0: 12, ch1: 5, polling: 5 });
  const c = twoCaches(fx);
  const h1 = fx.wave('ch-1', 1)[0]!;
  const looks: Look[] = [
    { view: 'status' },
    { view: 'status', host: h1 },
    { view: 'trace', host: h1 },
  ];
  await sameLooks(c, looks, 'cold');
  await sameLooks(c, looks, 'warm');
  postAcks(fx, h1, [{ kind: 'started', at: NOW - 2 * MIN }]);
  await sameLooks(
    c,
    looks.map((l) => ({ ...l, unsaved: true })),
    'a look not saved',
  );
  const after = await sameLooks(c, looks, 'after a look not saved');
  const files = readdirSync(join(fx.tree, 'acks', 'hosts')).length;
  assert.is(
    (after[0]!.counts.files as { recalled: number }).recalled,
    files - 1,
    'the new file read again: the look that read it kept nothing',
  );
});

test('a store without a cache directory renews to a fresh one', async () => {
  const fx = chainedRollout('renewed-none', { first: 20, ch0: 12, ch1: 5, polling: 5 });
  const none = openVerifiedAckStore(null, 'status');
  const first = await statusLook(fx, none);
  none.renew(Date.now());
  const second = await statusLook(fx, none);
  assert.equal(second, first, 'each look as cold as the first');
  assert.is((second.counts.files as { recalled: number }).recalled, 0);
  assert.ok(
    (second.counts.documents as { verified: number }).verified > 0,
    'documents verified again',
  );
});

test.run();
