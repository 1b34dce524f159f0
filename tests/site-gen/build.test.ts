// The dashboard built from a real published tree and host-signed acks: what it says about phases,
// waves, gates, reasons; escaping of free text; the red banner on a tampered tree; determinism; the
// atomic swap of the output.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { buildSite } from '../../site-gen/build.ts';
import { SiteOutputError, buildsDirOf } from '../../site-gen/site-dir.ts';
import {
  AckCache,
  ackHistoryByHost,
  hostKeysOfPlans,
  readAckHistory,
  type AckHistoryOptions,
} from '../../read-side/load.ts';
import { latestAcks } from '../../reconciler/index.ts';
import { encodeHtml, escapeHtml, html, join as joinHtml } from '../../site-gen/html.ts';
import { encodePage, page as pageText } from '../../site-gen/layout.ts';
import { channelPlanPath } from '../../protocol/layout.ts';
import { newSigningKey } from '../../protocol/keys.ts';
import {
  AckWriter,
  HOSTILE_DETAIL,
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

const build = (f: SiteFixture, out = f.outDir, now = NOW) =>
  buildSite({ treeDir: f.treeDir, pinnedRoot: f.root, outDir: out, now });
const page = (out: string, rel: string) => readFileSync(join(out, rel), 'utf8');
/** The table row of one host in a host table. */
const row = (htmlText: string, host: string) => {
  const m = new RegExp(`<tr id="host-${host}">(.*?)</tr>`).exec(htmlText);
  assert.ok(m, `no row for ${host}`);
  return m[1]!;
};

test('html`` escapes every interpolated value unless it is markup built by html``', async () => {
  const evil = '<b onclick="x">&\'';
  assert.is(html`<p>${evil}</p>`.text, `<p>${escapeHtml(evil)}</p>`);
  assert.is(escapeHtml(evil), '&lt;b onclick=&quot;x&quot;&gt;&amp;&#39;');
  assert.is(html`<div>${html`<i>${evil}</i>`}</div>`.text, `<div><i>${escapeHtml(evil)}</i></div>`);
  assert.is(html`${[1, 'a<', null, false, undefined]}`.text, '1a&lt;');
});

test('encodeHtml: the UTF-8 of the joined markup, part by part (escaped text, nested lists, a row on two pages)', () => {
  const row = html`<tr><td>host-1 ✓</td><td>${'a<b'}</td></tr>`;
  const parts = [html`<p>…</p>`, [row, [row, 'x&y', 7, null, false]], html`<i>→</i>`];
  const joined = joinHtml(parts).text;
  assert.is(encodeHtml(parts).toString('utf8'), joined);
  assert.is(encodeHtml(parts).toString('utf8'), joined, 'the row encoded once, reused');
  assert.is(Buffer.compare(encodeHtml(parts), Buffer.from(joined, 'utf8')), 0);
  const o = {
    title: 't<',
    base: '../',
    banner: html`<b>ok</b>`,
    body: parts,
    footer: 'f',
    script: true,
  };
  assert.is(Buffer.from(encodePage(o)).toString('utf8'), pageText(o));
});

test('overview: verified banner, phase counts, channel states and reasons from the reconciler', async () => {
  const r = await build(fx);
  assert.is(r.status, 'verified');
  assert.is(r.release, 1);
  assert.is(r.hosts, 12);
  assert.is(r.acks.rejected, 0);
  assert.equal(
    r.channels.map((c) => [c.channel, c.state]),
    [
      ['ch-0', 'in-progress'],
      ['ch-1', 'halted'],
      ['ch-2', 'gated'],
    ],
  );
  assert.is(r.phases!.soaked, 1);
  assert.is(r.phases!.healthy, 1);
  assert.is(r.phases!.activating, 1);
  assert.is(r.phases!.failed, 1);
  assert.is(r.phases!.pending, 8);
  const index = page(fx.outDir, 'index.html');
  assert.match(index, 'class="banner ok" id="verification">verified: release 1 of fleet generated');
  assert.match(index, /timestamp expires in \d+ min/);
  assert.match(index, '<span class="state halted">halted</span>');
  assert.match(index, '<span class="state gated">gated</span>');
  assert.match(index, 'rollout of channel ch-1 is halted: wave 1 has 1 failed host(s)');
  assert.match(index, `channel ch-2 waits for channel ch-0 to complete`);
  // the failed host is listed under attention, with its (escaped) reason
  assert.match(row(index, fx.roles.failed), escapeHtml(HOSTILE_REASON));
  assert.not.match(index, '<script>');
});

test('channel pages: wave state, soak progress, failures vs threshold, channel edges, timelines', async () => {
  await build(fx);
  const ch0 = page(fx.outDir, 'channels/ch-0.html');
  assert.match(
    ch0,
    /<tr id="wave-0"><td class="num">0<\/td><td data-l="state"><span class="state complete">complete<\/span>/,
  );
  assert.match(
    ch0,
    /<tr id="wave-1"><td class="num">1<\/td><td data-l="state"><span class="state active">active<\/span>/,
  );
  assert.match(ch0, '10 min; 1 soaking, least 4 min done');
  assert.match(ch0, 'gates</th><td><a href="ch-2.html">ch-2</a> (gated)');
  // timeline lanes: the soaked host soaked 10 min after it became healthy (T0 + 4 min)
  assert.match(ch0, `${fx.roles.soaked}: soaked at 2030-03-01 10:14:00Z`);
  assert.match(ch0, `${fx.roles.activating}: activating from 2030-03-01 10:29:00Z`);
  assert.match(ch0, /<svg class="timeline" role="img" viewBox="0 0 960 \d+"/);
  assert.match(ch0, /<svg class="waves"/);

  const ch1 = page(fx.outDir, 'channels/ch-1.html');
  assert.match(
    ch1,
    /<tr id="wave-0"><td class="num">0<\/td><td data-l="state"><span class="state halted">halted<\/span>/,
  );
  assert.match(ch1, '<td class="num bad-text" data-l="failures">1 / 0 allowed (0 host(s))</td>');
  assert.match(
    ch1,
    `${fx.roles.failed}: rolled-back: ${escapeHtml(HOSTILE_REASON)} at 2030-03-01 10:11:00Z`,
  );
  assert.match(ch1, 'class="fail-mark"');

  const ch2 = page(fx.outDir, 'channels/ch-2.html');
  assert.match(ch2, 'gated by (channel edges)</th><td><a href="ch-0.html">ch-0</a> (in-progress)');
});

test('host table: closures, phase, last ack kind and age, the gate and reason of every waiting host', async () => {
  await build(fx);
  const hosts = page(fx.outDir, 'hosts.html');
  const gated = row(hosts, fx.roles.gated);
  assert.match(gated, '<b>channel-edge</b>: channel ch-2 waits for channel ch-0 to complete');
  assert.match(gated, 'heartbeat <span class="muted">3 min ago</span>');
  const halted = row(hosts, fx.roles.haltedPending);
  assert.match(halted, '<b>halted</b>: rollout of channel ch-1 is halted');
  const eligible = row(hosts, fx.roles.eligible);
  assert.match(eligible, 'every gate passed: starts at its next poll');
  const soaked = row(hosts, fx.roles.soaked);
  assert.match(soaked, '>soaked</a>');
  assert.match(soaked, /nixos-system-host-\d+ ✓<\/td>/); // current == target
  const activating = row(hosts, fx.roles.activating);
  assert.match(activating, '>activating</a>');
  assert.match(activating, 'started <span class="muted">60 s ago</span>');
  assert.match(activating, '-old</td>'); // still on its old closure
});

test('host page: free text from acks is escaped (reason and probe detail), ack history listed', async () => {
  await build(fx);
  const h = hostSection(fx.outDir, fx.roles.failed);
  assert.match(h, escapeHtml(HOSTILE_REASON));
  assert.match(h, escapeHtml(HOSTILE_DETAIL));
  assert.not.match(h, '<script>');
  assert.not.match(h, '<img');
  assert.match(h, 'probe http-ok failed: ');
  assert.match(h, 'Acks (4)');
  assert.match(h, '<td>rolled-back</td>');
  assert.match(h, '<svg class="timeline"');
});

test('trust and documents pages: root, release key windows, every document verified', async () => {
  await build(fx);
  const trust = page(fx.outDir, 'trust.html');
  assert.match(trust, 'Trust root v1');
  assert.match(
    trust,
    '<td>2030-02-19 10:00:00Z</td><td>2030-06-09 10:00:00Z</td><td><span class="state complete">valid</span>',
  );
  assert.match(trust, 'cache.example.org-1:');
  assert.match(trust, 'rejectBefore (compromise switch)</th><td>not set');
  const docs = page(fx.outDir, 'documents.html');
  assert.match(docs, '12 host-manifest');
  assert.match(
    docs,
    '<td class="mono">releases/1/channels/ch-1.json</td><td>channel-plan</td><td class="">verified</td>',
  );
});

test('a tampered channel plan: red "verification failed" banner naming code and file, no fleet data', async () => {
  const copy = createSiteFixture();
  try {
    const planFile = join(copy.treeDir, channelPlanPath(1, 'ch-1'));
    const text = readFileSync(planFile, 'utf8');
    assert.match(text, '"soakSeconds":600');
    writeFileSync(planFile, text.replace('"soakSeconds":600', '"soakSeconds":601'));
    const r = await build(copy);
    assert.is(r.status, 'failed');
    assert.equal(r.failure?.code, 'BadSignature');
    assert.is(r.failure?.file, 'releases/1/channels/ch-1.json');
    assert.is(r.hosts, 0);
    const index = page(copy.outDir, 'index.html');
    assert.match(
      index,
      '<div class="banner bad" id="verification">verification failed: BadSignature releases/1/channels/ch-1.json',
    );
    for (const h of Object.keys(copy.hostKeys)) assert.not.match(index, h);
    assert.not.ok(existsSync(join(copy.outDir, 'hosts')));
    assert.not.ok(existsSync(join(copy.outDir, 'channels')));
    assert.match(page(copy.outDir, 'hosts.html'), 'verification failed: BadSignature');
  } finally {
    copy.cleanup();
  }
});

test('the same tree rebuilt after it was tampered replaces every page: no stale trusted pages survive', async () => {
  const copy = createSiteFixture();
  try {
    await build(copy);
    const detail = hostPagePath(readSite(copy.outDir), copy.roles.failed);
    assert.ok(existsSync(join(copy.outDir, detail)));
    writeFileSync(
      join(copy.treeDir, 'timestamp.json'),
      readFileSync(join(copy.treeDir, 'timestamp.json'), 'utf8').replace(
        '"fleet":"generated"',
        '"fleet":"generatee"',
      ),
    );
    const r = await build(copy);
    assert.is(r.status, 'failed');
    assert.is(r.failure?.file, 'timestamp.json');
    assert.not.ok(existsSync(join(copy.outDir, detail)));
    assert.not.ok(existsSync(join(copy.outDir, 'hosts')));
  } finally {
    copy.cleanup();
  }
});

test('an expired timestamp: red Stale banner, the fleet still shown as verified as of the expiry', async () => {
  const expires = JSON.parse(readFileSync(join(fx.treeDir, 'timestamp.json'), 'utf8')).signed
    .expires as string;
  const later = Date.parse(expires) + 10 * MIN;
  const out = join(fx.dir, 'stale-site');
  const r = await build(fx, out, later);
  assert.is(r.status, 'stale');
  assert.is(r.failure?.code, 'Stale');
  const index = page(out, 'index.html');
  assert.match(
    index,
    '<div class="banner bad" id="verification">verification failed: Stale timestamp.json',
  );
  assert.match(index, 'Hosts activate nothing new until a fresh timestamp is published');
  assert.match(hostSection(out, fx.roles.failed), `Host ${fx.roles.failed}`);
});

test('acks that do not verify are not counted and are listed with their reason', async () => {
  const copy = createSiteFixture({ ackLog: false });
  try {
    // the eligible host's latest ack replaced by one signed with another key, claiming it is healthy
    const forger = new AckWriter(
      copy.treeDir,
      copy.roles.eligible,
      newSigningKey('forger'),
      'generated',
    );
    const plan = copy.plans['ch-0']!;
    forger.write(
      {
        at: NOW - MIN,
        kind: 'healthy',
        rolloutId: plan.rolloutId,
        target: plan.hosts[copy.roles.eligible]!.target,
        current: plan.hosts[copy.roles.eligible]!.target,
        healthySince: '2030-03-01T10:00:00Z',
      },
      { log: false },
    );
    writeFileSync(join(copy.treeDir, 'acks/hosts/garbage.json'), '{"signed":{"a":1,"a":2}}');
    // a genuine ack altered in transit
    const gatedFile = join(copy.treeDir, `acks/hosts/${copy.roles.gated}.json`);
    writeFileSync(
      gatedFile,
      readFileSync(gatedFile, 'utf8').replace('waiting for its turn', 'waiting for its tunr'),
    );
    const r = await build(copy);
    assert.is(r.status, 'verified');
    assert.is(r.acks.rejected, 3);
    assert.is(r.phases!.soaked, 1, 'the forged healthy ack must not count');
    const docs = page(copy.outDir, 'documents.html');
    assert.match(
      docs,
      `acks/hosts/${copy.roles.eligible}.json</td><td class="reason">UnknownKey: no signature by a valid host ${copy.roles.eligible} key`,
    );
    assert.match(docs, `acks/hosts/${copy.roles.gated}.json</td><td class="reason">BadSignature`);
    assert.match(row(page(copy.outDir, 'hosts.html'), copy.roles.gated), '>offline</a>');
    assert.match(docs, 'acks/hosts/garbage.json</td><td class="reason">Malformed');
    assert.match(page(copy.outDir, 'index.html'), 'class="banner warn"');
    assert.match(page(copy.outDir, 'index.html'), '3 ack(s) did not verify and are not counted');
    // without the ack log, timelines come from the latest acks only, and the footer says so
    assert.match(
      page(copy.outDir, 'index.html'),
      'no ack log (timelines from the latest acks only)',
    );
  } finally {
    copy.cleanup();
  }
});

test('ack cache (watch mode): the same verified acks with or without it; a corrupt log is reported, not fatal', async () => {
  const opts: AckHistoryOptions = {
    acksDir: join(fx.treeDir, 'acks'),
    logFile: join(fx.treeDir, '.ack-log/acks.log'),
    bundles: false,
    trust: { fleet: 'generated', hostKeys: hostKeysOfPlans(fx.plans) },
  };
  const cache = new AckCache();
  const first = readAckHistory({ ...opts, cache });
  cache.commit();
  const second = readAckHistory({ ...opts, cache });
  cache.commit();
  const fresh = readAckHistory(opts);
  assert.equal(latestAcks(second.acks), latestAcks(fresh.acks));
  assert.equal([...ackHistoryByHost(second.acks)], [...ackHistoryByHost(first.acks)]);
  assert.equal(second.rejected, fresh.rejected);
  assert.is(cache.size, fresh.sources.logRecords);

  const copy = createSiteFixture();
  try {
    const logFile = join(copy.treeDir, '.ack-log/acks.log');
    const lines = readFileSync(logFile, 'utf8').split('\n');
    lines[2] = lines[2]!.replace('sha256:', 'sha256:0');
    writeFileSync(logFile, lines.join('\n'));
    const r = await build(copy);
    assert.is(r.status, 'verified');
    assert.is(r.phases!.failed, 1, 'latest acks still count');
    assert.match(page(copy.outDir, 'documents.html'), 'corrupt record at byte');
  } finally {
    copy.cleanup();
  }
});

test('deterministic: the same tree, acks and now give byte-identical sites', async () => {
  const a = join(fx.dir, 'det-a');
  const b = join(fx.dir, 'det-b');
  await build(fx, a);
  await build(fx, b);
  const sa = readSite(a);
  const sb = readSite(b);
  assert.equal([...sa.keys()], [...sb.keys()]);
  assert.ok(sa.size >= 12 + 3 + 4);
  for (const [k, v] of sa) assert.ok(v === sb.get(k), `${k} differs`);
  // and a different now changes the ages
  await build(fx, b, NOW + 5 * MIN);
  assert.not.equal(readSite(b).get('hosts.html'), sa.get('hosts.html'));
});

test('atomic install: --out is a symlink switched per build; one previous build kept; foreign dirs refused', async () => {
  const out = join(fx.dir, 'swap-site');
  const r1 = await build(fx, out);
  assert.ok(lstatSync(out).isSymbolicLink());
  assert.is(join(fx.dir, readlinkSync(out)), r1.buildDir);
  const r2 = await build(fx, out);
  const r3 = await build(fx, out);
  assert.is.not(r2.buildDir, r3.buildDir);
  assert.is(join(fx.dir, readlinkSync(out)), r3.buildDir);
  const kept = readdirSync(buildsDirOf(out))
    .filter((n) => n.startsWith('build-'))
    .map((n) => join(buildsDirOf(out), n))
    .sort();
  // each kept build with its page manifest (what the next build compares against)
  assert.equal(
    kept,
    [r2.buildDir, `${r2.buildDir}.pages`, r3.buildDir, `${r3.buildDir}.pages`].sort(),
  );
  assert.is((lstatSync(r3.buildDir).mode & 0o777).toString(8), '755');

  const foreign = join(fx.dir, 'foreign');
  mkdirSync(foreign);
  writeFileSync(join(foreign, 'keep.txt'), 'mine');
  await build(fx, foreign).then(
    () => assert.unreachable('the build succeeded'),
    (e: unknown) => assert.ok(((e: unknown) => e instanceof SiteOutputError)(e), String(e)),
  );
  assert.is(readFileSync(join(foreign, 'keep.txt'), 'utf8'), 'mine');
  const empty = join(fx.dir, 'empty');
  mkdirSync(empty);
  await build(fx, empty);
  assert.ok(lstatSync(empty).isSymbolicLink());
});

test('one builder per output: a live lock holder refuses, a dead one is taken over', async () => {
  const out = join(fx.dir, 'locked-site');
  await build(fx, out);
  const lock = join(buildsDirOf(out), '.lock');
  writeFileSync(lock, `${process.ppid}\n`);
  await build(fx, out).then(
    () => assert.unreachable('the build succeeded'),
    (e: unknown) =>
      assert.ok(
        ((e: unknown) =>
          e instanceof SiteOutputError &&
          e.message.includes(`another site-gen build (pid ${process.ppid})`))(e),
        String(e),
      ),
  );
  writeFileSync(lock, `${spawnSync(process.execPath, ['-e', '0']).pid}\n`);
  const r = await build(fx, out);
  assert.is(join(fx.dir, readlinkSync(out)), r.buildDir);
  assert.not.ok(existsSync(lock), 'released after the build');
});

test('a control plane directory (current -> verified tree, acks/ beside it) builds the same view', async () => {
  const cpDir = join(fx.dir, 'cp');
  mkdirSync(join(cpDir, 'versions'), { recursive: true });
  cpSync(fx.treeDir, join(cpDir, 'versions', 'v1'), {
    recursive: true,
    filter: (src) => !src.includes('/acks') && !src.includes('.ack-log'),
  });
  cpSync(join(fx.treeDir, 'acks'), join(cpDir, 'acks'), { recursive: true });
  cpSync(join(fx.treeDir, '.ack-log'), join(cpDir, '.ack-log'), { recursive: true });
  symlinkSync('versions/v1', join(cpDir, 'current'));
  const r = await buildSite({
    treeDir: cpDir,
    pinnedRoot: fx.root,
    outDir: join(fx.dir, 'cp-site'),
    now: NOW,
  });
  assert.is(r.status, 'verified');
  assert.is(r.phases!.failed, 1);
  assert.is(r.phases!.soaked, 1);
  assert.ok(r.acks.accepted > 12);
});

test.run();
