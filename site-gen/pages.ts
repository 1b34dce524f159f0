// Every page of the dashboard, as path -> how to render it (site-pages.ts). Pure: the same load, acks and
// `now` give the same bytes.
import { html, join, type Html } from './html.ts';
import { page } from './layout.ts';
import { duration, relative, shortDigest, utc } from './format.ts';
import {
  footer,
  hostTable,
  keyValueTable,
  legend,
  listHref,
  phaseChip,
  scroll,
  stableBanner,
  verificationBanner,
} from './components.ts';
import { attentionHosts, hostsOfChannel, type FleetModel, type HostRow } from './model.ts';
import { attentionItems, type ExpiringCert } from './attention.ts';
import {
  SEARCH_SCRIPT,
  filterBar,
  hostLists,
  listPages,
  modelListPages,
  searchIndex,
} from './lists.ts';
import { STYLESHEET } from './layout.ts';
import { hostDetailPages } from './host-pages.ts';
import { PageInputs, SitePages } from './site-pages.ts';
import { phaseBar, timelineChart, waveChart } from './svg.ts';
import type { ReleaseLoad } from '../read-side/index.ts';
import { HOST_PHASES, type ChannelView, type HostPhase } from '../reconciler/index.ts';
import { type ChannelPlan, type Threshold, parseIsoTime } from '../protocol/index.ts';

/** Per-channel timelines draw at most this many host lanes; the wave chart always covers every host. */
export const MAX_TIMELINE_LANES = 300;
/** The overview and channel pages list at most this many hosts needing attention (all are on the lists). */
export const MAX_ATTENTION_ROWS = 100;
/** documents.html lists at most this many rejected acks (~0.2 kB each: the page stays under 500 kB). */
export const MAX_REJECTED_ROWS = 1000;

function stateSpan(state: string): Html {
  return html`<span class="state ${state}">${state}</span>`;
}

function thresholdText(t: Threshold): string {
  return 'count' in t ? `${t.count} host(s)` : `${t.percent}%`;
}

/** Phase badges with counts; with `base` each links to the list of hosts in that phase. */
function counts(c: Partial<Record<HostPhase, number>>, base?: string): Html {
  return join(
    HOST_PHASES.filter((p) => (c[p] ?? 0) > 0).map((p) => phaseChip(p, c[p], base)),
    ' ',
  );
}

/** The overview's first panel: what the operator must act on, with the evidence and where to look. */
function needsPanel(m: FleetModel, certs: readonly ExpiringCert[] | null): Html {
  const items = attentionItems(m, certs);
  const certNote =
    certs === null
      ? html`<p class="muted">Certificate expiry not checked (build with <code>--pki DIR</code> to list certificates expiring within 30 days).</p>`
      : null;
  if (items.length === 0)
    return html`<ul class="needs" id="needs"><li class="ok">Nothing needs you now: no halted \
channel, failed, quarantined, deferred or blocking offline host, budget overrun, overdue \
refresh${certs === null ? '' : ' or expiring certificate'}.</li></ul>${certNote}`;
  return html`<ul class="needs" id="needs">${items.map(
    (i) => html`<li class="${i.severity}" \
data-kind="${i.kind}"><b>${i.href === null ? i.title : html`<a href="${i.href}">${i.title}</a>`}</b>\
<br><span class="reason">${i.detail}</span></li>`,
  )}</ul>${certNote}`;
}

function overview(m: FleetModel, load: ReleaseLoad, certs: readonly ExpiringCert[] | null): string {
  const r = m.release;
  const rep = r.report;
  const tsExpires = parseIsoTime(r.timestamp.expires);
  const rootExpires = parseIsoTime(r.root.expires);
  const total = m.hosts.length;
  const cards = html`<div class="cards">
<div class="card"><div class="n">${total}</div><div class="l">hosts</div></div>
<div class="card"><div class="n">${m.view.channels.length}</div><div class="l">channels</div></div>
<div class="card"><div class="n">v${rep.release.version}</div><div class="l">release, signed ${utc(parseIsoTime(rep.release.issuedAt))}</div></div>
<div class="card"><div \
class="n ${tsExpires <= m.now ? 'bad-text' : ''}">${relative(tsExpires, m.now)}</div><div \
class="l">timestamp expiry (${utc(tsExpires)}), \
issued ${relative(parseIsoTime(r.timestamp.issuedAt), m.now)}</div></div>
<div class="card"><div class="n">root v${r.root.version}</div><div class="l">trust root, expires ${relative(rootExpires, m.now)}</div></div>
<div class="card"><div class="n ${m.phaseTotals.failed > 0 ? 'bad-text' : ''}">${m.phaseTotals.failed}</div><div class="l">failed hosts</div></div>
</div>`;
  const channelRows = m.view.channels.map((c) => {
    const plan = r.plans[c.channel]!;
    const done = c.waves.reduce((n, w) => n + w.counts.soaked + w.counts.converged, 0);
    const hosts = c.waves.reduce((n, w) => n + w.hosts, 0);
    const failures = c.waves.reduce((n, w) => n + w.failures, 0);
    return html`<tr><td><a href="channels/${c.channel}.html">${c.channel}</a></td><td \
data-l="state">${stateSpan(c.state)}</td><td class="num" data-l="waves \
done">${Math.min(c.currentWave, c.waves.length)} / ${c.waves.length}</td><td class="num" \
data-l="soaked / hosts">${done} / ${hosts}</td><td class="num ${failures > 0 ? 'bad-text' : ''}" \
data-l="failed">${failures}</td><td data-l="strategy">${plan.strategy}</td><td data-l="gated \
by">${plan.gatedBy.length ? plan.gatedBy.join(', ') : '—'}</td><td class="reason" \
data-l="reason">${c.reason}</td></tr>`;
  });
  const budgets =
    m.view.budgets.length === 0
      ? html`<p class="muted">No disruption budgets.</p>`
      : scroll(
          html`<table id="budgets"><thead><tr><th>budget</th><th class="num">in flight / max</th>\
<th>hosts in flight</th></tr></thead><tbody>${m.view.budgets.map((b) => {
            // More in flight than the budget allows (hosts that started on their own, or evidence arriving late).
            const over = b.inFlight > b.max;
            return html`<tr class="${over ? 'over' : ''}"><td>${b.id}</td><td \
class="num">${b.inFlight} / ${b.max}${
              over
                ? html` <span class="over-label">over budget \
by ${b.inFlight - b.max}</span>`
                : null
            }</td><td \
class="reason">${b.inFlightHosts.join(', ') || '—'}</td></tr>`;
          })}</tbody></table>`,
        );
  const attention = attentionHosts(m);
  const revs = r.revocations;
  const revocations = html`<p>Revocations v${revs.version}, signed ${utc(parseIsoTime(revs.issuedAt))}.</p>
${
  revs.hosts.length === 0
    ? html`<p class="muted">No revoked hosts.</p>`
    : scroll(html`<table>\
<thead><tr><th>revoked host</th><th>key id</th><th>certificate serial</th><th>since</th>\
<th>reason</th></tr></thead><tbody>${revs.hosts.map(
        (h) => html`<tr><td>${h.host}</td><td \
class="mono">${h.keyid === null ? 'every key' : h.keyid.slice(0, 16)}</td><td \
class="mono">${h.certSerial ?? '—'}</td><td>${utc(parseIsoTime(h.revokedAt))}</td><td \
class="reason">${h.reason}</td></tr>`,
      )}</tbody></table>`)
}
${
  revs.closures.length === 0
    ? html`<p class="muted">No revoked closures.</p>`
    : scroll(html`<table>\
<thead><tr><th>revoked closure</th><th>since</th><th>reason</th></tr></thead>\
<tbody>${revs.closures.map(
        (c) => html`<tr><td class="mono">${c.storePath}</td>\
<td>${utc(parseIsoTime(c.revokedAt))}</td><td class="reason">${c.reason}</td></tr>`,
      )}</tbody></table>`)
}`;
  const body = html`<h1>Fleet ${rep.fleet}: release ${rep.release.version}</h1>
<h2>What needs you now</h2>
${needsPanel(m, certs)}
${cards}
<h2>Hosts by phase</h2>
${phaseBar(
  m.phaseTotals,
  `hosts by phase: ${HOST_PHASES.filter((p) => m.phaseTotals[p] > 0)
    .map((p) => `${p} ${m.phaseTotals[p]}`)
    .join(', ')}`,
)}
<p>${counts(m.phaseTotals, '')}</p>
<h2>Channels</h2>
${scroll(html`<table class="stack"><thead><tr><th>channel</th><th>state</th><th class="num">waves \
done</th><th class="num">soaked / hosts</th><th class="num">failed</th><th>strategy</th><th>gated \
by</th><th>reason</th></tr></thead><tbody>${channelRows}</tbody></table>`)}
<h2>Disruption budgets</h2>
${budgets}
<h2 id="attention">Failed, blocked, deferred and offline hosts (${attention.length})</h2>
${attention.length === 0 ? html`<p class="muted">None.</p>` : hostTable(attention, { now: m.now, base: '', limit: MAX_ATTENTION_ROWS })}
<p><a href="hosts.html">All ${total} hosts</a> (search, and filters by phase, channel and wave)</p>
<h2>Revocations</h2>
${revocations}`;
  return page({
    title: `NixFleet ${rep.fleet}: overview`,
    base: '',
    banner: verificationBanner(load, m.now, m.acks),
    body,
    footer: footer(m.now, m.acks),
  });
}

function channelFacts(plan: ChannelPlan, c: ChannelView, m: FleetModel): Html {
  const gates = Object.values(m.release.plans)
    .filter((p) => p.gatedBy.includes(plan.channel))
    .map((p) => p.channel)
    .sort();
  const stateOf = (ch: string) => m.view.channels.find((x) => x.channel === ch)?.state ?? 'unknown';
  const edgeLinks = (list: string[]) =>
    list.length === 0
      ? html`—`
      : join(
          list.map((g) => html`<a href="${g}.html">${g}</a> (${stateOf(g)})`),
          ', ',
        );
  return keyValueTable([
    ['state', html`${stateSpan(c.state)}: ${c.reason}`],
    [
      'rollout id',
      html`<span class="mono" title="${plan.rolloutId}">${shortDigest(plan.rolloutId)}</span> \
(release ${plan.releaseVersion}, plan signed ${utc(parseIsoTime(plan.issuedAt))})`,
    ],
    ['strategy', `${plan.strategy}, on failure: ${plan.onFailure}`],
    ['gated by (channel edges)', edgeLinks(plan.gatedBy)],
    ['gates', edgeLinks(gates)],
    [
      'host edges',
      plan.hostEdges.length === 0
        ? '—'
        : plan.hostEdges.map((e) => `${e.before} → ${e.after}`).join(', '),
    ],
    [
      'timing',
      `heartbeat ${duration(plan.heartbeatSeconds)}, offline ` +
        `window ${duration(plan.offlineWindowSeconds)}, confirm ` +
        `deadline ${duration(plan.confirmDeadlineSeconds)}, ` +
        `freshness ${duration(plan.freshnessSeconds)}`,
    ],
    [
      'maintenance windows',
      plan.maintenanceWindows.length === 0
        ? 'none (any time)'
        : plan.maintenanceWindows.map((w) => `${w.cron} for ${w.durationMinutes} min`).join('; '),
    ],
    [
      'reboots',
      `${c.reboot}; a deferred host ${c.deferredHosts === 'excuse' ? 'is excused from its wave' : 'holds its wave'} (deferredHosts: ${c.deferredHosts})`,
    ],
  ]);
}

function soakCell(m: FleetModel, rows: readonly HostRow[], soakSeconds: number): string {
  if (soakSeconds === 0) return 'none';
  const soaking = rows.filter((h) => h.phase === 'healthy');
  if (soaking.length === 0) return duration(soakSeconds);
  const least = Math.min(...soaking.map((h) => h.healthySeconds));
  return `${duration(soakSeconds)}; ${soaking.length} soaking, least ${duration(Math.min(least, soakSeconds))} done`;
}

function channelPage(m: FleetModel, load: ReleaseLoad, c: ChannelView): string {
  const plan = m.release.plans[c.channel]!;
  const cm = m.channels.get(c.channel)!;
  const rows = hostsOfChannel(m, c.channel);
  const waveRows = c.waves.map((w) => {
    const pw = plan.waves[w.index]!;
    const members = rows.filter((h) => h.wave === w.index);
    return html`<tr id="wave-${w.index}"><td class="num">${w.index}</td><td \
data-l="state">${stateSpan(w.state)}</td><td class="num" data-l="hosts"><a \
href="${listHref('../', `wave-${c.channel}-${w.index}`)}">${w.hosts}</a></td><td \
data-l="phases">${counts(w.counts, '../')}</td><td \
data-l="soak">${soakCell(m, members, w.soakSeconds)}</td><td \
class="num ${w.failures > w.allowedFailures ? 'bad-text' : ''}" \
data-l="failures">${w.failures} / ${w.allowedFailures} allowed \
(${thresholdText(pw.failureThreshold)})</td><td class="num" data-l="offline \
excuses">${pw.offlineExcuseLimit}</td><td data-l="waiting for">${
      w.blockingHosts.length === 0
        ? '—'
        : join(
            w.blockingHosts.map(
              (h) => html`<a href="../${m.byHost.get(h)?.href ?? 'hosts.html'}">${h}</a>`,
            ),
            ', ',
          )
    }</td><td class="reason" data-l="reason">${w.reason}</td></tr>`;
  });
  const lanes = cm.timelines.slice(0, MAX_TIMELINE_LANES);
  const attention = attentionHosts(m).filter((h) => h.channel === c.channel);
  const body = html`<h1>Channel ${c.channel} ${stateSpan(c.state)}</h1>
${channelFacts(plan, c, m)}
<h2>Waves</h2>
${scroll(html`<table class="stack"><thead><tr><th class="num">wave</th><th>state</th><th \
class="num">hosts</th><th>phases</th><th>soak</th><th class="num">failures vs threshold</th><th \
class="num">offline excuses</th><th>waiting for</th><th>reason</th></tr></thead>\
<tbody>${waveRows}</tbody></table>`)}
${waveChart(cm.spans, c.waves, m.now, `waves of channel ${c.channel} over time`)}
<h2>Timeline</h2>
${legend()}
${timelineChart(lanes, { now: m.now, hostHref: (h) => `../${m.byHost.get(h)?.href ?? 'hosts.html'}`, title: `rollout timeline of channel ${c.channel}` })}
${
  cm.timelines.length > lanes.length
    ? html`<p class="muted">Showing the \
first ${lanes.length} of ${cm.timelines.length} hosts in wave order; the wave chart above covers \
all of them.</p>`
    : null
}
<h2>Hosts</h2>
<p><a href="${listHref('../', `channel-${c.channel}`)}">All ${rows.length} hosts of ${c.channel}</a>; by wave: ${join(
    c.waves.map(
      (w) =>
        html`<a href="${listHref('../', `wave-${c.channel}-${w.index}`)}">wave ${w.index} (${w.hosts})</a>`,
    ),
    ', ',
  )}</p>
<h3>Failed, blocked, deferred and offline hosts of ${c.channel} (${attention.length})</h3>
${attention.length === 0 ? html`<p class="muted">None.</p>` : hostTable(attention, { now: m.now, base: '../', limit: MAX_ATTENTION_ROWS })}`;
  return page({
    title: `NixFleet ${m.release.report.fleet}: channel ${c.channel}`,
    base: '../',
    banner: verificationBanner(load, m.now, m.acks),
    body,
    footer: footer(m.now, m.acks),
  });
}

/** The way into the host lists: search, filters, and the first page of every host. */
function hostsPage(m: FleetModel, load: ReleaseLoad): string {
  const [first, second] = modelListPages(m, m.hosts);
  const more =
    second !== undefined
      ? html`<p>Showing hosts 1–${first!.rows.length} of ${m.hosts.length}: <a href="${listHref('', 'all', second.n)}">next page →</a></p>`
      : null;
  const body = html`<h1>Hosts (${m.hosts.length})</h1>
${filterBar(m, '', true)}
${more}
${hostTable(first!.rows, { now: m.now, base: '' })}
${more}`;
  return page({
    title: `NixFleet ${m.release.report.fleet}: hosts`,
    base: '',
    banner: verificationBanner(load, m.now, m.acks),
    body,
    footer: footer(m.now, m.acks),
    script: true,
  });
}

function keyStatus(from: number, until: number, now: number): Html {
  if (now < from)
    return html`<span class="muted">not yet valid (from ${relative(from, now)})</span>`;
  if (now >= until) return html`<span class="bad-text">retired ${relative(until, now)}</span>`;
  return html`<span class="state complete">valid</span>, until ${relative(until, now)}`;
}

function trustPage(m: FleetModel, load: ReleaseLoad): string {
  const root = m.release.root;
  const body = html`<h1>Trust root v${root.version}</h1>
${keyValueTable([
  ['fleet', root.fleet],
  [
    'chain verified',
    m.release.chain.map((r) => `v${r.signed.version}`).join(' → ') + ' (from the pinned root)',
  ],
  ['issued', utc(parseIsoTime(root.issuedAt))],
  [
    'expires',
    html`${utc(parseIsoTime(root.expires))} (${relative(parseIsoTime(root.expires), m.now)})`,
  ],
  ['root threshold', `${root.rootThreshold} of ${root.rootKeys.length}`],
  ['release threshold', `${root.releaseThreshold} of ${root.releaseKeys.length}`],
  [
    'rejectBefore (compromise switch)',
    root.rejectBefore === null
      ? 'not set'
      : html`<b>${utc(parseIsoTime(root.rejectBefore))}</b>: release-signed documents issued earlier are refused`,
  ],
])}
<h2>Root keys</h2>
<table class="kv"><thead><tr><th>name</th><th>key id</th></tr></thead>\
<tbody>${root.rootKeys.map(
    (k) => html`<tr><td>${k.name}</td><td class="mono">${k.keyid}</td>\
</tr>`,
  )}</tbody></table>
<h2>Release keys</h2>
<table class="kv"><thead><tr><th>name</th><th>key id</th><th>valid from</th><th>valid until</th>\
<th>status now</th></tr></thead><tbody>${root.releaseKeys.map(
    (k) => html`<tr><td>${k.name}</td><td \
class="mono">${k.keyid}</td><td>${utc(parseIsoTime(k.validFrom))}</td>\
<td>${utc(parseIsoTime(k.validUntil))}</td>\
<td>${keyStatus(parseIsoTime(k.validFrom), parseIsoTime(k.validUntil), m.now)}</td></tr>`,
  )}</tbody></table>
<h2>Nix binary cache keys</h2>
${
  root.cacheKeys.length === 0
    ? html`<p class="muted">None: hosts trust no binary cache signature \
from this root.</p>`
    : html`<ul>${root.cacheKeys.map((k) => html`<li class="mono">${k}</li>`)}</ul>`
}`;
  return page({
    title: `NixFleet ${m.release.report.fleet}: trust`,
    base: '',
    banner: verificationBanner(load, m.now, m.acks),
    body,
    footer: footer(m.now, m.acks),
  });
}

const HOST_MANIFEST = 'host-manifest';

function documentsPage(m: FleetModel, load: ReleaseLoad): string {
  const rep = m.release.report;
  const byType = new Map<string, number>();
  for (const d of rep.documents) byType.set(d.type, (byType.get(d.type) ?? 0) + 1);
  // One manifest per host: every document with a finding and every other document is listed, the
  // host manifests that verified cleanly are counted.
  const listed = rep.documents.filter((d) => d.type !== HOST_MANIFEST || d.result !== 'ok');
  const okManifests = rep.documents.length - listed.length;
  const body = html`<h1>Verification of every document</h1>
<p>Verified at ${utc(parseIsoTime(rep.verifiedAt))} against the pinned trust root: ${[...byType].map(([t, n]) => `${n} ${t}`).join(', ')}.</p>
${
  rep.unlistedManifests.length > 0
    ? html`<h2 class="bad-text">Manifests not listed in the release \
index</h2><ul>${rep.unlistedManifests.map((f) => html`<li class="mono">${f}</li>`)}</ul>`
    : null
}
<h2>Acks that did not verify (${m.acks.rejected.length})</h2>
${
  m.acks.rejected.length === 0
    ? html`<p class="muted">None.</p>`
    : scroll(html`<table><thead><tr>\
<th>source</th><th>reason</th></tr></thead>\
<tbody>${m.acks.rejected.slice(0, MAX_REJECTED_ROWS).map(
        (a) => html`<tr><td \
class="mono">${a.source}</td><td class="reason">${a.code}: ${a.reason}</td></tr>`,
      )}</tbody>\
</table>`)
}${
    m.acks.rejected.length > MAX_REJECTED_ROWS
      ? html`<p \
class="muted">First ${MAX_REJECTED_ROWS} of ${m.acks.rejected.length} shown.</p>`
      : null
  }
<h2>Documents</h2>
${
  okManifests > 0
    ? html`<p>${okManifests} host manifest(s) verified without findings (one per \
host; not listed one by one, so that this page stays small at fleet scale).</p>`
    : null
}
${scroll(html`<table><thead><tr><th>file</th><th>type</th><th>result</th></tr></thead>\
<tbody>${listed.map(
  (d) => html`<tr><td class="mono">${d.file}</td><td>${d.type}</td><td \
class="${d.result === 'ok' ? '' : 'bad-text'}">${d.result === 'ok' ? 'verified' : `verified, ${d.result}: ${d.detail ?? ''}`}</td>\
</tr>`,
)}</tbody></table>`)}`;
  return page({
    title: `NixFleet ${rep.fleet}: documents`,
    base: '',
    banner: verificationBanner(load, m.now, m.acks),
    body,
    footer: footer(m.now, m.acks),
  });
}

/** What a tree that does not verify gets: the failure, and nothing that could pass for fleet data. */
function failurePage(
  load: Extract<ReleaseLoad, { status: 'failed' }>,
  now: number,
  pinnedRootVersion: number,
): string {
  const f = load.failure;
  const body = html`<h1>The published tree does not verify</h1>
${keyValueTable([
  ['error', f.code],
  ['file', html`<span class="mono">${f.file}</span>`],
  ['detail', f.detail],
  ['pinned trust root', `v${pinnedRootVersion}`],
])}
<p>Agents refuse this tree as well: no host activates anything from it. Check the file named above \
(and <code>nixfleet verify</code> on the tree), then republish from CI.</p>`;
  return page({
    title: 'NixFleet: verification failed',
    base: '',
    banner: verificationBanner(load, now, null),
    body,
    footer: footer(now, null),
    nav: false,
  });
}

export { SitePages } from './site-pages.ts';

export interface RenderOptions {
  /** Certificates from --pki expiring soon; null = not checked (no --pki). */
  certs?: readonly ExpiringCert[] | null;
}

/**
 * What every stable page (lists, host details) shows of the release beyond its own rows: the signed
 * documents (the timestamp names the release index, which pins every plan and manifest, and the
 * revocations and controls) and the verdict banner.
 */
export function releaseInputs(m: FleetModel, load: ReleaseLoad): string {
  const r = m.release;
  return new PageInputs('release')
    .add(r.root.fleet)
    .add(r.root.version)
    .add(JSON.stringify(r.timestamp.release))
    .add(JSON.stringify(r.timestamp.revocations))
    .add(JSON.stringify(r.timestamp.controls ?? null))
    .add(stableBanner(load, m.acks).text)
    .digest();
}

/**
 * Every page of the site, unrendered (site-pages.ts): the pages that show ages are rendered every
 * build, the lists and host details only when their inputs changed.
 */
export function renderSite(
  load: ReleaseLoad,
  model: FleetModel | null,
  now: number,
  pinnedRootVersion: number,
  o: RenderOptions = {},
): SitePages {
  const pages = new SitePages();
  pages.add('style.css', null, () => STYLESHEET);
  if (load.status === 'failed' || model === null) {
    if (load.status !== 'failed') throw new Error('a verified release needs its fleet model');
    // The top-level pages an operator may have bookmarked all show the failure, none a stale fleet view.
    for (const p of ['index.html', 'hosts.html', 'trust.html', 'documents.html'])
      pages.add(p, null, () => failurePage(load, now, pinnedRootVersion));
    return pages;
  }
  const m = model;
  pages.add('index.html', null, () => overview(m, load, o.certs ?? null));
  pages.add('hosts.html', null, () => hostsPage(m, load));
  pages.add('search.js', null, () => SEARCH_SCRIPT);
  pages.add('search-index.js', null, () => searchIndex(m));
  const release = releaseInputs(m, load);
  listPages(m, load, hostLists(m), release, pages);
  pages.add('trust.html', null, () => trustPage(m, load));
  pages.add('documents.html', null, () => documentsPage(m, load));
  for (const c of m.view.channels)
    pages.add(`channels/${c.channel}.html`, null, () => channelPage(m, load, c));
  hostDetailPages(m, load, release, pages);
  return pages;
}
