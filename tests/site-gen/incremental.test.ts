// Fleet scale and failure views: incremental rebuilds (only changed pages written, the rest shared with
// the previous build, the result equal to a cold build), watch mode's reuse of the verified release,
// paged host lists within the page size target, "what needs you now", quarantine evidence, waves within
// their failure threshold, budgets over their limit, expiring certificates from the PKI directory.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  appendFileSync,
  existsSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { createHash } from 'node:crypto';
import { AckFeed } from '../../site-gen/ack-feed.ts';
import { hostKeysOfPlans } from '../../protocol/index.ts';
import { formatRecord } from '../../protocol/ack-log.ts';
import { sha256Digest } from '../../protocol/canonical.ts';
import { join } from 'node:path';
import { ReleaseCache, buildSite } from '../../site-gen/build.ts';
import { ModelMemo, buildFleetModel } from '../../site-gen/model.ts';
import { renderSite } from '../../site-gen/pages.ts';
import { HOSTS_PER_PAGE } from '../../site-gen/lists.ts';
import { waveChart, PHASE_COLORS } from '../../site-gen/svg.ts';
import { expiringCerts, PkiDirError } from '../../site-gen/attention.ts';
import {
  AckCache,
  ackTrustOf,
  acksDirOf,
  loadReleaseAllowingStale,
  readAckHistory,
} from '../../read-side/load.ts';
import { openVerifiedAckStore } from '../../read-side/verified-cache.ts';
import { escapeHtml } from '../../site-gen/html.ts';
import { requireTool } from '../support/skip.ts';
import {
  HOSTILE_REASON,
  MIN,
  NOW,
  createSiteFixture,
  hostPagePath,
  hostSection,
  readSite,
  type SiteFixture,
} from './fixture.ts';

let fx: SiteFixture;
test.before(() => {
  fx = createSiteFixture();
});
test.after(() => fx.cleanup());

const page = (out: string, rel: string) => readFileSync(join(out, rel), 'utf8');

test('incremental: an unchanged rebuild writes nothing; one new ack rewrites that host page, not the others; the result equals a cold build', async () => {
  const copy = createSiteFixture();
  try {
    const out = join(copy.dir, 'inc');
    const cold = await buildSite({
      treeDir: copy.treeDir,
      pinnedRoot: copy.root,
      outDir: out,
      now: NOW,
    });
    assert.is(cold.written, cold.pages, 'the first build writes every page');
    const again = await buildSite({
      treeDir: copy.treeDir,
      pinnedRoot: copy.root,
      outDir: out,
      now: NOW,
    });
    assert.is(again.written, 0, 'same inputs: every page linked from the previous build');
    // and not rendered: only the pages that show ages (overview, channels, hosts, trust, documents)
    // and the unkeyed assets are
    const unkeyed = 7 + Object.keys(copy.plans).length;
    assert.is(again.rendered, unkeyed, 'pages with unchanged inputs are linked unrendered');
    const host = copy.roles.eligible;
    const other = copy.roles.soaked;
    const otherPage = hostPagePath(readSite(out), other);
    assert.is(
      statSync(join(again.buildDir, otherPage)).ino,
      statSync(join(cold.buildDir, otherPage)).ino,
    );

    // 10 s later one host starts: its section changes; those of others do not (they carry no ages)
    const later = NOW + 10_000;
    const p0 = copy.plans['ch-0']!;
    copy.chains.get(host)!.write({
      at: later - 1000,
      kind: 'started',
      rolloutId: p0.rolloutId,
      target: p0.hosts[host]!.target,
      current: `/nix/store/${'0'.repeat(32)}-nixos-system-${host}-old`,
    });
    const before = readSite(again.buildDir);
    const inc = await buildSite({
      treeDir: copy.treeDir,
      pinnedRoot: copy.root,
      outDir: out,
      now: later,
    });
    const after = readSite(out);
    assert.is.not(hostSection(after, host), hostSection(before, host));
    assert.match(hostSection(after, host), '>activating</a>');
    // exactly the sections whose facts changed: the host that started and those whose verdict quotes
    // it (ch-2 is gated on ch-0's wave 1); none of channel ch-1 (unrelated)
    const gatedOnIt = Object.keys(copy.plans['ch-2']!.hosts);
    const sectionsChanged = Object.keys(copy.hostKeys).filter(
      (h) => hostSection(after, h) !== hostSection(before, h),
    );
    assert.equal(sectionsChanged.sort(), [host, ...gatedOnIt].sort());
    // exactly the pages whose content changed were written: of the detail pages, those holding them
    const changed = [...after].filter(([k, v]) => before.get(k) !== v).map(([k]) => k);
    assert.is(inc.written, changed.length);
    assert.ok(inc.rendered < inc.pages, 'only pages whose inputs changed are rendered');
    assert.equal(
      changed.filter((k) => k.startsWith('hosts/')).sort(),
      [...new Set([host, ...gatedOnIt].map((h) => hostPagePath(after, h)))].sort(),
    );
    assert.not.ok(changed.includes(otherPage));
    assert.is(
      statSync(join(inc.buildDir, otherPage)).ino,
      statSync(join(again.buildDir, otherPage)).ino,
      'unchanged detail page is shared, not rewritten',
    );
    // list pages state signed times, not ages: those of ch-1 (nothing changed there) are not rewritten
    assert.equal(
      changed.filter((k) => k.startsWith('lists/channel-ch-1') || k.startsWith('lists/wave-ch-1')),
      [],
    );
    assert.ok(
      changed.includes('lists/channel-ch-0_1.html') &&
        changed.includes('lists/phase-activating_1.html'),
    );
    assert.ok(inc.bytesWritten < inc.bytes);

    // the incremental site is exactly what a cold build of the same inputs gives
    const fresh = await buildSite({
      treeDir: copy.treeDir,
      pinnedRoot: copy.root,
      outDir: join(copy.dir, 'fresh'),
      now: later,
    });
    assert.is(fresh.written, fresh.pages);
    const coldSite = readSite(join(copy.dir, 'fresh'));
    assert.equal([...after.keys()], [...coldSite.keys()]);
    for (const [k, v] of coldSite) assert.ok(after.get(k) === v, `${k} differs from a cold build`);
  } finally {
    copy.cleanup();
  }
});

test('watch mode caches (acks, the ack feed, verification, per-host results) give byte-identical sites to a cold build, before and after new acks', async () => {
  const copy = createSiteFixture();
  try {
    const caches = {
      ackCache: new AckCache(),
      releaseCache: new ReleaseCache(),
      ackFeed: new AckFeed(),
      modelMemo: new ModelMemo(),
    };
    const watched = join(copy.dir, 'watched');
    const same = async (now: number, tag: string) => {
      const w = await buildSite({
        treeDir: copy.treeDir,
        pinnedRoot: copy.root,
        outDir: watched,
        now,
        ...caches,
      });
      const c = join(copy.dir, `cold-${tag}`);
      await buildSite({ treeDir: copy.treeDir, pinnedRoot: copy.root, outDir: c, now });
      const a = readSite(watched);
      const b = readSite(c);
      assert.equal([...a.keys()], [...b.keys()]);
      // documents.html says when the tree was verified: with reuse, by the earlier build (and says so)
      for (const [k, v] of b)
        if (!(w.verificationReused && k === 'documents.html'))
          assert.ok(a.get(k) === v, `${tag}: ${k} differs from a cold build`);
      return w;
    };
    await same(NOW, 'start');
    const host = copy.roles.soaking;
    const p0 = copy.plans['ch-0']!;
    copy.chains.get(host)!.write({
      at: NOW + 5000,
      kind: 'rolled-back',
      rolloutId: p0.rolloutId,
      target: p0.hosts[host]!.target,
      current: `/nix/store/${'0'.repeat(32)}-nixos-system-${host}-old`,
      reason: 'probe failed after activation',
    });
    const after = await same(NOW + 6000, 'after');
    assert.is(after.verificationReused, true);
    assert.match(page(watched, 'documents.html'), 'Verified at 2030-03-01 10:30:00Z');
    assert.match(hostSection(watched, host), 'probe failed after activation');
    // the eligible host starts: its section, its rows and the lists it leaves and joins follow
    const starting = copy.roles.eligible;
    copy.chains.get(starting)!.write({
      at: NOW + 7000,
      kind: 'started',
      rolloutId: p0.rolloutId,
      target: p0.hosts[starting]!.target,
      current: `/nix/store/${'0'.repeat(32)}-nixos-system-${starting}-old`,
    });
    await same(NOW + 8000, 'started');
    assert.match(hostSection(watched, starting), '>activating</a>');
    // the periodic rebuild verifies the same documents again (per-host results kept) after a new ack
    copy.chains.get(starting)!.write({
      at: NOW + 9000,
      kind: 'activated',
      rolloutId: p0.rolloutId,
      target: p0.hosts[starting]!.target,
      current: p0.hosts[starting]!.target,
    });
    caches.releaseCache.treeChanged();
    assert.is((await same(NOW + 10_000, 'reverified')).verificationReused, false);
  } finally {
    copy.cleanup();
  }
});

test('watch mode release cache: reused after ack-only changes, verified again after a tree change or near expiry', async () => {
  const cache = new ReleaseCache();
  const ackCache = new AckCache();
  const out = join(fx.dir, 'reuse');
  const opts = {
    treeDir: fx.treeDir,
    pinnedRoot: fx.root,
    outDir: out,
    ackCache,
    releaseCache: cache,
  };
  const a = await buildSite({ ...opts, now: NOW });
  assert.is(a.verificationReused, false);
  const b = await buildSite({ ...opts, now: NOW + 1000 });
  assert.is(b.verificationReused, true);
  await buildSite({
    treeDir: fx.treeDir,
    pinnedRoot: fx.root,
    outDir: join(fx.dir, 'reuse-cold'),
    now: NOW + 1000,
  });
  assert.equal(
    readSite(out).get('index.html'),
    readSite(join(fx.dir, 'reuse-cold')).get('index.html'),
  );
  cache.treeChanged();
  assert.is((await buildSite({ ...opts, now: NOW + 2000 })).verificationReused, false);
  assert.is((await buildSite({ ...opts, now: NOW + 3000 })).verificationReused, true);
  // the fixture's timestamp expires at NOW + 30 min: within the clock skew of it, verify again
  const nearExpiry = await buildSite({ ...opts, now: NOW + 30 * MIN - 60_000 });
  assert.is(nearExpiry.verificationReused, false);
  // a failed verification is never reused
  const stale = await buildSite({ ...opts, now: NOW + 31 * MIN });
  assert.is(stale.status, 'stale');
  assert.is((await buildSite({ ...opts, now: NOW + 31 * MIN + 1000 })).verificationReused, false);
});

test('host lists: every filter paged, no page over the size target, phase badges link to their list', async () => {
  const big = createSiteFixture({ hosts: HOSTS_PER_PAGE * 2 + 30 });
  try {
    const r = await buildSite({
      treeDir: big.treeDir,
      pinnedRoot: big.root,
      outDir: big.outDir,
      now: NOW,
    });
    const site = readSite(big.outDir);
    assert.ok(site.has('lists/all_3.html') && !site.has('lists/all_4.html'));
    assert.match(site.get('lists/all_3.html')!, '(30 on this page), page 3 of 3');
    for (const ch of ['ch-0', 'ch-1', 'ch-2'])
      assert.ok(
        site.has(`lists/channel-${ch}_1.html`) &&
          site.has(`lists/wave-${ch}-0_1.html`) &&
          site.has(`lists/wave-${ch}-1_1.html`),
      );
    for (const p of ['pending', 'failed', 'soaked', 'blocked'])
      assert.ok(site.has(`lists/phase-${p}_1.html`), p);
    // every host appears exactly once across the pages of "all"
    const listed = [...site]
      .filter(([k]) => k.startsWith('lists/all_'))
      .flatMap(([, v]) => [...v.matchAll(/<tr id="host-([a-z0-9-]+)">/g)].map((m) => m[1]));
    assert.is(listed.length, r.hosts);
    assert.is(new Set(listed).size, r.hosts);
    assert.match(site.get('lists/phase-failed_1.html')!, `id="host-${big.roles.failed}"`);
    assert.not.match(site.get('lists/phase-failed_1.html')!, `id="host-${big.roles.soaked}"`);
    assert.match(
      site.get('hosts.html')!,
      '<a class="phase p-failed" href="lists/phase-failed_1.html">failed 1</a>',
    );
    assert.match(site.get('index.html')!, 'href="lists/phase-pending_1.html"');
    // channel pages no longer carry every host of the channel
    const largest = Math.max(...[...site.values()].map((v) => Buffer.byteLength(v)));
    assert.ok(largest < 500_000, `largest page ${largest} bytes`);
    assert.is(r.largestPage!.bytes, largest);
    // the search index names every host once
    const index = site.get('search-index.js')!;
    assert.is([...index.matchAll(/\["host-/g)].length, r.hosts);
  } finally {
    big.cleanup();
  }
});

test('what needs you now: halted channel, failed and quarantined hosts with their evidence and links', async () => {
  const r = await buildSite({
    treeDir: fx.treeDir,
    pinnedRoot: fx.root,
    outDir: fx.outDir,
    now: NOW,
  });
  assert.is(r.status, 'verified');
  const index = page(fx.outDir, 'index.html');
  const needs = /<ul class="needs" id="needs">(.*?)<\/ul>/s.exec(index)![1]!;
  const kinds = [...needs.matchAll(/data-kind="([a-z-]+)"/g)].map((m) => m[1]);
  assert.equal(kinds, ['halted-channel', 'failed', 'quarantined']);
  assert.match(needs, '<a href="channels/ch-1.html">channel ch-1 is halted</a>');
  assert.match(needs, `<a href="lists/quarantined_1.html">1 host(s) quarantined a closure</a>`);
  assert.match(index, 'Certificate expiry not checked');
  // after the default quarantine (24 h) the host is no longer counted as quarantined
  assert.is((await modelAt(NOW)).model.quarantines.size, 1);
  assert.is((await modelAt(NOW + 25 * 3600_000)).model.quarantines.size, 0);
});

test('what needs you now, 16 min later: an offline host of an active wave blocks it; the timestamp refresh is overdue', async () => {
  const copy = createSiteFixture();
  try {
    // the activating host completes its switch, so that ch-0 stays in progress (not presumed failed)
    const h = copy.roles.activating;
    const p0 = copy.plans['ch-0']!;
    const mine = {
      rolloutId: p0.rolloutId,
      target: p0.hosts[h]!.target,
      current: p0.hosts[h]!.target,
    };
    copy.chains.get(h)!.write({ at: NOW + 30_000, kind: 'activated', ...mine });
    copy.chains.get(h)!.write({
      at: NOW + MIN,
      kind: 'healthy',
      ...mine,
      healthySince: new Date(NOW + MIN).toISOString().replace('.000Z', 'Z'),
    });
    const out = join(copy.dir, 'later');
    const r = await buildSite({
      treeDir: copy.treeDir,
      pinnedRoot: copy.root,
      outDir: out,
      now: NOW + 16 * MIN,
    });
    assert.is(r.channels[0]!.state, 'in-progress');
    const needs = /<ul class="needs" id="needs">(.*?)<\/ul>/s.exec(page(out, 'index.html'))![1]!;
    const offline = /<li class="bad" data-kind="offline-blocking">(.*?)<\/li>/s.exec(needs);
    assert.ok(offline, needs);
    assert.match(offline[1]!, `${copy.roles.eligible} (ch-0 wave 1)`);
    // ch-2's hosts are offline too, but their waves wait behind the channel edge: they block nothing yet
    for (const g of Object.keys(copy.plans['ch-2']!.hosts)) assert.not.match(offline[1]!, `${g} (`);
    assert.match(needs, '<li class="warn" data-kind="refresh-overdue">');
  } finally {
    copy.cleanup();
  }
});

async function modelAt(now: number) {
  const load = await loadReleaseAllowingStale(fx.treeDir, fx.root, { now: NOW });
  if (load.status !== 'verified') throw new Error('fixture does not verify');
  const acks = readAckHistory({
    acksDir: acksDirOf(fx.treeDir),
    logFile: join(fx.treeDir, '.ack-log/acks.log'),
    trust: ackTrustOf(load.release),
    bundles: false,
  });
  return { load, model: buildFleetModel(load.release, acks, now) };
}

test('host page: quarantine from the signed rolled-back ack (closure, since, until by default, why) and the failure', async () => {
  await buildSite({ treeDir: fx.treeDir, pinnedRoot: fx.root, outDir: fx.outDir, now: NOW });
  const h = hostSection(fx.outDir, fx.roles.failed);
  const q = /<table class="quarantine stack">(.*?)<\/table>/s.exec(h)![1]!;
  assert.match(
    q,
    `<td class="mono" data-l="closure">${fx.plans['ch-1']!.hosts[fx.roles.failed]!.target}</td>`,
  );
  assert.match(
    q,
    '<td data-l="since">2030-03-01 10:11:00Z</td><td data-l="until">2030-03-02 10:11:00Z</td><td data-l="from">rolled-back ack, seq 4</td>',
  );
  assert.match(q, escapeHtml(HOSTILE_REASON));
  assert.match(h, 'assumes the default 24 h');
  assert.match(
    h,
    `failure (this rollout)</th><td><span class="bad-text">rolled-back: ${escapeHtml(HOSTILE_REASON)}</span> (signed 2030-03-01 10:11:00Z)`,
  );
  const soaked = page(fx.outDir, hostPagePath(readSite(fx.outDir), fx.roles.soaked));
  assert.match(soaked, 'its agent has quarantined nothing that it reported');
  assert.not.match(soaked, 'failure (this rollout)');
  // host pages do not depend on the build's now (ages live on the overview and lists)
  assert.not.match(soaked, / ago\b/);
});

test('wave chart: failures within the threshold are a red share of a green bar; over it the bar is red', async () => {
  const span = {
    wave: 0,
    hosts: 4,
    firstStart: NOW - 20 * MIN,
    settledAt: NOW - 5 * MIN,
    started: 4,
    soaked: 3,
    failed: 1,
  };
  const within = waveChart([span], [{ allowedFailures: 1 }], NOW, 'w').text;
  assert.match(within, `fill="${PHASE_COLORS.soaked}" class="wave-bar"`);
  assert.match(within, `fill="${PHASE_COLORS.failed}" class="failed-share"`);
  assert.match(within, '1 failed (within the threshold of 1)');
  const over = waveChart([span], [{ allowedFailures: 0 }], NOW, 'w').text;
  assert.match(over, `fill="${PHASE_COLORS.failed}" class="wave-bar"`);
  assert.not.match(over, 'failed-share');
  assert.match(over, '(over the threshold of 0)');
});

test('budgets: more in flight than allowed is highlighted on the overview and under what needs you now', async () => {
  const { load, model } = await modelAt(NOW);
  model.view.budgets = [
    { id: 'web', max: 1, inFlight: 3, inFlightHosts: ['host-000', 'host-003', 'host-006'] },
    { id: 'db', max: 2, inFlight: 1, inFlightHosts: ['host-001'] },
  ];
  const index = renderSite(load, model, NOW, 1).get('index.html')!;
  assert.match(
    index,
    '<tr class="over"><td>web</td><td class="num">3 / 1 <span class="over-label">over budget by 2</span></td>',
  );
  assert.match(index, '<tr class=""><td>db</td><td class="num">1 / 2</td>');
  assert.match(index, 'data-kind="over-budget"');
});

test('expiring certificates from --pki: listed within 30 days, soonest first; a directory without ca.crt is refused', async () => {
  assert.throws(
    () => expiringCerts(fx.dir, NOW),
    (e: unknown) => e instanceof PkiDirError && e.message.includes('no ca.crt'),
  );
  if (!requireTool('openssl', 'issuing certificates for the PKI panel')) return;
  const { initPki, issueHostCert } = await import('../../control-plane/pki.ts');
  const pki = join(fx.dir, 'pki');
  initPki(pki);
  issueHostCert(pki, fx.roles.failed);
  const { X509Certificate } = await import('node:crypto');
  const notAfter = Date.parse(
    new X509Certificate(readFileSync(join(pki, 'hosts', `${fx.roles.failed}.crt`))).validTo,
  );
  assert.equal(
    expiringCerts(pki, notAfter - 40 * 86400_000).filter((c) => c.file.startsWith('hosts/')),
    [],
  );
  const soon = expiringCerts(pki, notAfter - 10 * 86400_000);
  assert.ok(
    soon.some((c) => c.file === `hosts/${fx.roles.failed}.crt`),
    JSON.stringify(soon),
  );
  // the overview lists it (the build's now is the fixture's; the certificate's window is checked at NOW)
  const out = join(fx.dir, 'pki-site');
  writeFileSync(join(pki, 'hosts', 'not-a-cert.txt'), 'ignored: only *.crt files are read');
  await buildSite({ treeDir: fx.treeDir, pinnedRoot: fx.root, outDir: out, now: NOW, pkiDir: pki });
  const index = page(out, 'index.html');
  assert.not.match(index, 'Certificate expiry not checked');
  const expiring = expiringCerts(pki, NOW);
  for (const c of expiring) assert.match(index, `certificate ${c.file}`);
  if (expiring.length === 0) assert.not.match(index, 'data-kind="cert-expiring"');
});

test('one-shot builds with a persisted store: the second checks digests (same site); a forged ack is still refused', async () => {
  const copy = createSiteFixture();
  try {
    const cacheDir = join(copy.dir, 'cache');
    const oneShot = async (outDir: string, store: string | null) => {
      const verifiedStore = openVerifiedAckStore(store, 'site');
      const r = await buildSite({
        treeDir: copy.treeDir,
        pinnedRoot: copy.root,
        outDir,
        now: NOW,
        verifiedStore,
      });
      return { r, verifiedStore };
    };
    const first = await oneShot(join(copy.dir, 'first'), cacheDir);
    assert.is(first.verifiedStore.documents.hits, 0, 'an empty store: everything verified');
    assert.ok(existsSync(join(cacheDir, 'site.verified-acks')));
    assert.ok(existsSync(join(cacheDir, 'site.verified-docs')));
    const second = await oneShot(join(copy.dir, 'second'), cacheDir);
    assert.ok(second.verifiedStore.documents.hits > 0, 'release documents from the store');
    assert.is(second.verifiedStore.cache.changed, false, 'every ack from the store');
    const uncached = await oneShot(join(copy.dir, 'uncached'), null);
    const a = readSite(join(copy.dir, 'second'));
    const b = readSite(join(copy.dir, 'uncached'));
    assert.equal([...a.keys()], [...b.keys()]);
    for (const [k, v] of b) assert.ok(a.get(k) === v, `${k} differs from an uncached build`);
    assert.equal(second.r.acks, uncached.r.acks);

    // bytes the store never saw are verified in full: a genuine ack altered in transit is refused
    const gatedFile = join(copy.treeDir, `acks/hosts/${copy.roles.gated}.json`);
    writeFileSync(
      gatedFile,
      readFileSync(gatedFile, 'utf8').replace('waiting for its turn', 'waiting for its tunr'),
    );
    const third = await oneShot(join(copy.dir, 'third'), cacheDir);
    assert.is(third.r.acks.rejected, 1);
    assert.match(
      readFileSync(join(copy.dir, 'third', 'documents.html'), 'utf8'),
      `acks/hosts/${copy.roles.gated}.json</td><td class="reason">BadSignature`,
    );
  } finally {
    copy.cleanup();
  }
});

/** A one-shot `site build` of `copy` into `outDir` with the store in `storeDir` (null: none), as of NOW. */
async function oneShotBuild(
  copy: ReturnType<typeof createSiteFixture>,
  storeDir: string | null,
  startedAt: number,
  outDir: string,
) {
  const store = openVerifiedAckStore(storeDir, 'site', startedAt);
  const r = await buildSite({
    treeDir: copy.treeDir,
    pinnedRoot: copy.root,
    outDir,
    now: NOW,
    verifiedStore: store,
  });
  return { r, site: readSite(outDir), store };
}

test('one-shot builds recall unchanged latest-ack files by identity and the log from its verified prefix index; a file or record written since is read and refused', async () => {
  const copy = createSiteFixture();
  try {
    const cacheDir = join(copy.dir, 'cache');
    // Every fixture file is older than this "start" by more than the racy margin, so all are remembered.
    const startedAt = Date.now() + 60_000;
    const oneShot = async (name: string) => {
      const { r, site, store } = await oneShotBuild(
        copy,
        cacheDir,
        startedAt,
        join(copy.dir, name),
      );
      return { r, files: store.verifiedAckFiles, log: store.indexedLogPrefixes, site };
    };
    // A truly cold build leaves the memos to the next build, which has the store's verified acks.
    const first = await oneShot('first');
    assert.not.ok(existsSync(join(cacheDir, 'site.latest-acks')));
    assert.not.ok(existsSync(join(cacheDir, 'site.log-index.current')));
    const hostFiles = first.r.hosts;
    const warm = await oneShot('warm');
    assert.is(warm.files.hits, 0, 'nothing remembered yet: every file read');
    assert.is(warm.log.indexHits, 0);
    assert.ok(existsSync(join(cacheDir, 'site.latest-acks')));
    assert.ok(existsSync(join(cacheDir, 'site.log-index.current')));
    const second = await oneShot('second');
    assert.is(second.files.hits, hostFiles, 'every latest-ack file recalled, none read');
    assert.is(second.log.indexHits, 1, "the log's acks from the index of its verified prefix");
    assert.equal(second.r.acks, first.r.acks);
    for (const [k, v] of first.site) assert.ok(second.site.get(k) === v, `${k} differs`);
    // Its acks from the index, not the ack cache: that cache is now about empty, the build still warm.
    const again = await oneShot('again');
    assert.is(again.files.hits, hostFiles);
    assert.is(again.log.indexHits, 1);

    // The same size, another byte: the file's change time moved, so it is read and verified again.
    const gatedFile = join(copy.treeDir, `acks/hosts/${copy.roles.gated}.json`);
    const genuine = readFileSync(gatedFile, 'utf8');
    writeFileSync(gatedFile, genuine.replace('waiting for its turn', 'waiting for its tunr'));
    const third = await oneShot('third');
    assert.is(third.files.hits, hostFiles - 1, 'only the rewritten file read');
    assert.is(third.r.acks.rejected, 1);
    assert.match(
      third.site.get('documents.html')!,
      `acks/hosts/${copy.roles.gated}.json</td><td class="reason">BadSignature`,
    );
    assert.is(third.log.indexHits, 1, "the log's acks from its index");

    // A record of the log's verified prefix changed (valid framing, same length): the prefix is not
    // the one remembered, so the log is read and verified in full, and the record refused.
    const logFile = join(copy.treeDir, '.ack-log', 'acks.log');
    const lines = readFileSync(logFile, 'utf8').split('\n');
    const host = copy.roles.soaked;
    const at = lines.findIndex((l) => l.includes(`"host":"${host}"`) && l.includes('"activated"'));
    const canonical = lines[at]!.slice(lines[at]!.indexOf('{'));
    const forged = canonical.replace(/("time":"[0-9T:-]+:)00Z"/, '$101Z"');
    assert.is.not(forged, canonical);
    lines[at] = formatRecord({ digest: sha256Digest(forged), canonical: forged })
      .toString('utf8')
      .trimEnd();
    writeFileSync(logFile, lines.join('\n'));
    const fourth = await oneShot('fourth');
    assert.is(fourth.log.indexHits, 0, 'the changed log read in full');
    assert.is(fourth.r.acks.rejected, 2);
  } finally {
    copy.cleanup();
  }
});

test('one-shot builds with the log from its index: appended records, a corrupt record, a torn tail give the site a build without a cache gives', async () => {
  const copy = createSiteFixture();
  try {
    const cacheDir = join(copy.dir, 'cache');
    const startedAt = Date.now() + 60_000;
    const logFile = join(copy.treeDir, '.ack-log', 'acks.log');
    let n = 0;
    const same = async (tag: string) => {
      const build = async (storeDir: string | null) => {
        const outDir = join(copy.dir, `${tag}-${storeDir === null ? 'uncached' : 'cached'}-${n++}`);
        const { r, site, store } = await oneShotBuild(copy, storeDir, startedAt, outDir);
        return { r, site, indexHits: store.indexedLogPrefixes.indexHits };
      };
      const cached = await build(cacheDir);
      const uncached = await build(null);
      const strip = (r: typeof cached.r) => ({
        ...r,
        outDir: '',
        buildDir: '',
        timingsMs: null,
        written: 0,
        bytesWritten: 0,
        rendered: 0,
      });
      assert.equal(strip(cached.r), strip(uncached.r), tag);
      for (const [k, v] of uncached.site)
        assert.ok(cached.site.get(k) === v, `${tag}: ${k} differs`);
      return cached;
    };
    await same('cold');
    await same('warm');
    assert.is((await same('indexed')).indexHits, 1);
    const host = copy.roles.soaking;
    // an appended record (a host's new ack, written to its file and the log as the endpoint does)
    copy.chains.get(host)!.write({ at: NOW - 1000, kind: 'heartbeat' });
    assert.is(
      (await same('appended')).indexHits,
      1,
      'the prefix still indexed, the new record read',
    );
    await same('appended again');
    // a corrupt record followed by a valid one: the log's acks are not counted, as without a cache
    appendFileSync(logFile, 'not a record\n');
    copy.chains.get(host)!.write({ at: NOW - 500, kind: 'heartbeat' });
    const corrupt = await same('corrupt');
    assert.ok(corrupt.r.acks.rejected > 0);
    // a torn tail (half a record)
    const text = readFileSync(logFile, 'utf8').split('\n');
    writeFileSync(logFile, text.filter((l) => l !== 'not a record').join('\n'));
    await same('repaired');
    appendFileSync(logFile, text.find((l) => l.includes('"host"'))!.slice(0, 40));
    await same('torn tail');
  } finally {
    copy.cleanup();
  }
});

test('one-shot builds without a log: from the second build on every latest-ack file is recalled by identity, build after build', async () => {
  const copy = createSiteFixture();
  try {
    const cacheDir = join(copy.dir, 'cache');
    const startedAt = Date.now() + 60_000;
    const hits: number[] = [];
    for (const name of ['first', 'second', 'third', 'fourth']) {
      const verifiedStore = openVerifiedAckStore(cacheDir, 'site', startedAt);
      const outDir = join(copy.dir, name);
      const r = await buildSite({
        treeDir: copy.treeDir,
        pinnedRoot: copy.root,
        outDir,
        now: NOW,
        ackLogFile: null,
        verifiedStore,
      });
      assert.is(r.acks.rejected, 0);
      hits.push(verifiedStore.verifiedAckFiles.hits / r.hosts);
    }
    // Recalled acks are not looked up in the ack cache, which is then about empty: the memo itself
    // makes the next build warm (no build reads and verifies every file again).
    assert.equal(hits, [0, 0, 1, 1]);
  } finally {
    copy.cleanup();
  }
});

test('ack feed (watch mode): appended records read alone; a torn tail, a corrupt record, a replaced log read in full; always equal to a full read', async () => {
  const copy = createSiteFixture();
  try {
    const logFile = join(copy.treeDir, '.ack-log', 'acks.log');
    const trust = { fleet: 'generated', hostKeys: hostKeysOfPlans(copy.plans) };
    const log = { label: 'acks.log', windowBytes: 1 << 30, onCorrupt: 'reject' as const };
    const opts = { acksDir: join(copy.treeDir, 'acks'), logFile, trust, log };
    const cache = new AckCache();
    // Ahead of the files' times by more than the racy margin: the files just written are recalled
    // by their identity (in use, only files older than 2 s are).
    const feed = new AckFeed({ clock: () => Date.now() + 60_000 });
    const same = (tag: string, incremental: boolean) => {
      const fed = feed.read({ ...opts, cache }, true);
      const full = readAckHistory({ ...opts, bundles: false });
      assert.is(fed.full, !incremental, `${tag}: read in full`);
      assert.equal(fed.history.acks, full.acks, `${tag}: acks`);
      assert.equal(fed.history.digests, full.digests, `${tag}: digests`);
      assert.equal(fed.history.rejected, full.rejected, `${tag}: rejected`);
      assert.equal(fed.history.sources, full.sources, `${tag}: sources`);
      return fed.history;
    };
    assert.is(feed.read({ ...opts, cache }, false).full, true);
    same('unchanged', true);
    const host = copy.roles.eligible;
    const p0 = copy.plans['ch-0']!;
    const mine = { rolloutId: p0.rolloutId, target: p0.hosts[host]!.target };
    copy.chains.get(host)!.write({ at: NOW + 1000, kind: 'started', ...mine });
    assert.is(same('one appended ack', true).rejected.length, 0);
    // a forged record (valid framing, bad signature) is refused with its line number
    const forged = readFileSync(logFile, 'utf8')
      .trimEnd()
      .split('\n')
      .at(-1)!
      .replace('"started"', '"activated"');
    const rec = (canonical: string) =>
      `sha256:${createHash('sha256').update(canonical).digest('hex')}\t${canonical}\n`;
    appendFileSync(logFile, rec(forged.slice(forged.indexOf('\t') + 1)));
    assert.ok(same('forged ack', true).rejected.some((r) => /^acks\.log:\d+$/.test(r.source)));
    // a torn tail (a crash mid-append) is skipped and reported; later the endpoint truncates it
    const before = statSync(logFile).size;
    appendFileSync(logFile, 'sha256:0123');
    assert.is(same('torn tail', true).sources.logTornBytes, 11);
    truncateSync(logFile, before);
    copy.chains
      .get(host)!
      .write({ at: NOW + 2000, kind: 'activated', ...mine, current: mine.target });
    same('after the torn tail', true);
    // a corrupt record followed by a valid one: the whole log is read (and reported corrupt)
    appendFileSync(logFile, 'not a record\n');
    copy.chains
      .get(host)!
      .write({ at: NOW + 3000, kind: 'healthy', ...mine, current: mine.target });
    assert.ok(same('corrupt', false).rejected.some((r) => r.code === 'AckLogCorrupt'));
    // a replaced log (a new file at the path) is read in full
    const text = readFileSync(logFile, 'utf8').split('\n');
    writeFileSync(`${logFile}.new`, text.filter((l) => l !== 'not a record').join('\n'));
    renameSync(`${logFile}.new`, logFile);
    same('replaced', false);
    same('unchanged again', true);
    // latest-ack files are taken again only when their metadata changed: a file rewritten in place
    // with its modification time set back (only the change time moves) is still read and refused
    const hostFile = join(copy.treeDir, 'acks', 'hosts', `${host}.json`);
    const original = readFileSync(hostFile);
    // a whole-second modification time, which utimes can set back exactly
    utimesSync(hostFile, 1_800_000_000, 1_800_000_000);
    same('host file touched', true);
    const tampered = Buffer.from(original.toString().replace('"healthy"', '"started"'));
    assert.is(tampered.length, original.length);
    writeFileSync(hostFile, tampered);
    utimesSync(hostFile, 1_800_000_000, 1_800_000_000);
    assert.ok(
      same('host file tampered in place', true).rejected.some(
        (r) => r.source === `acks/hosts/${host}.json`,
      ),
    );
    // replaced by a rename (as the endpoint writes), then removed
    writeFileSync(`${hostFile}.tmp`, original);
    renameSync(`${hostFile}.tmp`, hostFile);
    assert.not.ok(
      same('host file restored', true).rejected.some((r) => r.source.startsWith('acks/hosts/')),
    );
    rmSync(hostFile);
    same('host file removed', true);
    // a latest-ack file that does not parse while the log holds a refused record: the same
    // rejections, in the same order, as a full read
    const other = join(copy.treeDir, 'acks', 'hosts', `${copy.roles.soaking}.json`);
    writeFileSync(`${other}.tmp`, 'not json');
    renameSync(`${other}.tmp`, other);
    appendFileSync(
      logFile,
      rec(forged.slice(forged.indexOf('\t') + 1).replace('"activated"', '"healthy"')),
    );
    const both = same('unparsable file and refused record', true).rejected.map((r) => r.source);
    assert.ok(both.includes(`acks/hosts/${copy.roles.soaking}.json`), both.join(', '));
    assert.ok(
      both.some((s) => /^acks\.log:\d+$/.test(s)),
      both.join(', '),
    );
  } finally {
    copy.cleanup();
  }
});

/** What an AckFeed reads in a site fixture: its tree's acks and log under the fixture's trust. */
function feedOptions(copy: ReturnType<typeof createSiteFixture>) {
  return {
    acksDir: join(copy.treeDir, 'acks'),
    logFile: join(copy.treeDir, '.ack-log', 'acks.log'),
    trust: { fleet: 'generated', hostKeys: hostKeysOfPlans(copy.plans) },
    log: { label: 'acks.log', windowBytes: 1 << 30, onCorrupt: 'reject' as const },
    cache: new AckCache(),
  };
}

test("ack feed (watch mode): git's racy rule: files changed within RACY_MS of a read are read again by the next one, older ones are taken by their identity", async () => {
  const copy = createSiteFixture();
  try {
    const opts = feedOptions(copy);
    const files = readdirSync(join(copy.treeDir, 'acks', 'hosts')).length;
    assert.ok(files > 0);
    // The real clock: every file was written just now, none is clearly older than the read, so a
    // rewrite in the same clock tick (same size and times) could go unseen: each is read every time.
    const now = new AckFeed();
    assert.is(now.read(opts, false).filesRead, files);
    assert.is(now.read(opts, true).filesRead, files, 'files within the racy margin read again');
    // A read well after the files' times takes them by their identity, once it has seen them.
    const later = new AckFeed({ clock: () => Date.now() + 60_000 });
    assert.is(later.read(opts, false).filesRead, files);
    assert.is(later.read(opts, true).filesRead, 0, 'unchanged old files taken as read');
  } finally {
    copy.cleanup();
  }
});

test('ack feed with change reports (site watch): reported files are read again, unreported ones are taken as read until a full read', async () => {
  const copy = createSiteFixture();
  try {
    const opts = feedOptions(copy);
    const feed = new AckFeed({ changeReports: true });
    const rejectedFiles = (incremental: boolean) =>
      feed
        .read(opts, incremental)
        .history.rejected.filter((r) => r.source.startsWith('acks/hosts/'))
        .map((r) => r.source);
    assert.equal(rejectedFiles(false), []);
    const host = copy.roles.soaked;
    const hostFile = join(copy.treeDir, 'acks', 'hosts', `${host}.json`);
    const original = readFileSync(hostFile);
    const tampered = Buffer.from(original.toString().replace('"generated"', '"generatee"'));
    assert.is.not(tampered.toString(), original.toString());
    writeFileSync(hostFile, tampered);
    // reported: read again and refused
    feed.fileChanged(hostFile);
    assert.equal(rejectedFiles(true), [`acks/hosts/${host}.json`]);
    // restored but not reported: the bytes read before are taken again (still refused, never
    // shown as verified) until a full read
    writeFileSync(hostFile, original);
    assert.equal(rejectedFiles(true), [`acks/hosts/${host}.json`]);
    assert.equal(rejectedFiles(false), []);
    // reports lost (the watcher failed): every file is stat'ed again
    writeFileSync(hostFile, tampered);
    feed.changeReportsLost();
    assert.equal(rejectedFiles(false), [`acks/hosts/${host}.json`]);
    writeFileSync(hostFile, original);
    assert.equal(rejectedFiles(true), []);
  } finally {
    copy.cleanup();
  }
});

test.run();
