// The per-host detail at fleet scale: not one file per host (10,000 files to write, link and prune on
// every build, 100,000 at 100k) but one page per chunk of HOSTS_PER_DETAIL_PAGE hosts of one wave,
// each host a section with its own anchor (`hosts/<channel>_w<wave>_<n>.html#h-<host>`). Which chunk a
// host is in depends only on the signed plan (channel, wave, name order), so a new ack changes only
// the chunks of the hosts whose facts it changes. Plain HTML: the anchor works with JavaScript off.
import { html, join, type Html } from './html.ts';
import { encodePage } from './layout.ts';
import { shortDigest, shortStorePath, utc } from './format.ts';
import {
  stableBanner,
  stableFooter,
  withoutAges,
  keyValueTable,
  hostAnchor,
  listHref,
  phaseChip,
  scroll,
} from './components.ts';
import {
  quarantineEvidence,
  DEFAULT_QUARANTINE_HOURS,
  type FleetModel,
  type HostRow,
} from './model.ts';
import { hostChart } from './svg.ts';
import type { ReleaseLoad } from '../read-side/index.ts';
import { PageInputs, type SitePages } from './site-pages.ts';
import { type AckRecord, parseAckTime } from '../reconciler/index.ts';

/** A host section lists its newest acks, at most this many (`nixfleet trace --host` has them all). */
export const MAX_HOST_ACKS = 15;
/** A host section lists its newest failure acks (quarantine evidence), at most this many. */
const MAX_QUARANTINE_ROWS = 10;

/** What the host's signed failure acks say its agent quarantined, labelled as that evidence. */
function quarantineSection(history: readonly AckRecord[]): Html {
  const evidence = quarantineEvidence(history);
  if (evidence.length === 0)
    return html`<p class="muted">No failed or rolled-back ack from this host: its agent has quarantined nothing that it reported.</p>`;
  const rows = evidence.slice(0, MAX_QUARANTINE_ROWS).map(
    (q) =>
      html`<tr><td class="mono" data-l="closure">${q.target ?? 'not named in the ack'}</td><td \
data-l="since">${utc(q.at)}</td><td data-l="until">${utc(q.untilByDefault)}</td><td \
data-l="from">${q.kind} ack, seq ${q.seq}</td><td class="reason" \
data-l="why">${q.reason ?? '(no reason given)'}${q.failedProbes.map((p) => html`<br>probe ${p.name} failed: ${p.detail}`)}</td></tr>`,
  );
  return html`<p>From this host's signed acks: after a failed or rolled-back activation its agent \
quarantines the closure and refuses it for its configured <code>quarantineHours</code> (not signed \
anywhere; "until" assumes the default ${DEFAULT_QUARANTINE_HOURS} h), unless an operator clears it \
on the host.</p>
${scroll(html`<table class="quarantine stack"><thead><tr><th>quarantined closure</th><th>since (ack \
signed)</th><th>until (default config)</th><th>evidence</th><th>why (the ack's reason)</th></tr>\
</thead><tbody>${rows}</tbody></table>`)}${
    evidence.length > MAX_QUARANTINE_ROWS
      ? html`<p class="muted">Newest ${MAX_QUARANTINE_ROWS} \
of ${evidence.length} failure acks.</p>`
      : null
  }`;
}

/** The host's compliance controls: static as the release signed them, runtime from its newest signed evidence. */
function complianceSection(m: FleetModel, host: string): Html {
  const c = m.compliance.get(host);
  if (c === undefined)
    return html`<p class="muted">This host's channel names no compliance framework.</p>`;
  const rows = c.controls.map(
    (x) =>
      html`<tr><td data-l="framework">${x.framework}</td><td data-l="control">${x.control}</td><td data-l="kind">${x.kind}</td><td data-l="result" class="${x.status === 'ok' ? '' : 'bad-text'}">${x.status === 'ok' ? 'ok' : x.status === 'failing' ? 'FAILING' : 'no evidence yet'}</td><td data-l="signed">${x.kind === 'static' ? `in release ${m.release.index.version}` : x.time === undefined ? '—' : html`${utc(parseAckTime(x.time))}, ack seq ${x.ackSeq}, exit ${x.exitCode ?? 'none'}`}</td><td class="reason" data-l="evidence">${x.evidence}${x.outputDigest === undefined ? null : html`<br><span class="mono muted">output ${shortDigest(x.outputDigest)}</span>`}</td></tr>`,
  );
  return html`<p>Mode <b>${c.mode}</b>, frameworks ${c.frameworks.join(', ')}. Static controls as CI evaluated them (signed in the release); runtime controls from the newest result this host signed into an ack.</p>
${scroll(html`<table class="controls stack"><thead><tr><th>framework</th><th>control</th><th>kind</th><th>result</th><th>signed</th><th>evidence</th></tr></thead><tbody>${rows}</tbody></table>`)}`;
}

function probesSection(latest: AckRecord | null): Html {
  if (latest === null || latest.probes.length === 0)
    return html`<p class="muted">No probe results in the latest ack.</p>`;
  return scroll(
    html`<table><thead><tr><th>probe</th><th>result</th><th>detail</th></tr></thead>\
<tbody>${latest.probes.map(
      (p) => html`<tr><td>${p.name}</td><td \
class="${p.ok ? '' : 'bad-text'}">${p.ok ? 'pass' : 'FAIL'}</td><td class="reason">${p.detail}</td>\
</tr>`,
    )}</tbody></table>`,
  );
}

function acksSection(history: readonly AckRecord[]): Html {
  const recent = history.slice(-MAX_HOST_ACKS).reverse();
  const rows = recent.map(
    (a) =>
      html`<tr><td class="num">seq ${a.seq}</td><td>${utc(parseAckTime(a.time))}</td><td>\
${a.kind}</td><td class="num">${a.releaseVersion}</td><td class="mono">\
${a.rolloutId === null ? '—' : shortDigest(a.rolloutId)}</td><td class="mono" \
title="${a.current ?? ''}">${shortStorePath(a.current)}</td><td>\
${a.healthySince === null ? '—' : utc(parseAckTime(a.healthySince))}</td><td class="reason">${a.reason ?? ''}${a.probes.filter((p) => !p.ok).map((p) => html`<br>probe ${p.name} failed: ${p.detail}`)}</td></tr>`,
  );
  const title = html`<h3>Acks (${history.length}${history.length > recent.length ? `, newest ${recent.length} shown; \`nixfleet trace --host\` lists all` : ''})</h3>`;
  if (recent.length === 0)
    return html`${title}<p class="muted">No verified acks from this host.</p>`;
  return html`${title}${scroll(html`<table class="acks stack"><thead><tr><th class="num">seq</th><th>signed at</th>\
<th>kind</th><th class="num">release</th><th>rollout</th><th>current</th><th>healthy since</th>\
<th>reason / failed probes</th></tr></thead><tbody>${rows}</tbody></table>`)}`;
}

/** The key-value facts at the top of a host's section: where it is, what it runs, why it waits. */
function hostFacts(m: FleetModel, h: HostRow): Html {
  const plan = m.release.plans[h.channel]!;
  const timeline = m.timelineByHost.get(h.host)!;
  const revoked = m.release.revocations.hosts.filter((r) => r.host === h.host);
  const latest = h.latest;
  const failure =
    timeline.failure !== null && timeline.failedAt !== null
      ? html`<span class="bad-text">${timeline.failure}</span> (signed ${utc(timeline.failedAt)})`
      : h.phase === 'failed'
        ? html`<span class="bad-text">${withoutAges(h.detail)}</span>`
        : null;
  const rows: [string, Html | string | number][] = [
    [
      'channel / wave',
      html`<a href="../channels/${h.channel}.html">${h.channel}</a>, <a \
href="${listHref('../', `wave-${h.channel}-${h.wave}`)}">wave ${h.wave}</a> (${plan.strategy})`,
    ],
    [
      'phase',
      html`${phaseChip(h.phase, undefined, '../')} ${withoutAges(h.detail)}${h.excused ? ' (excused by policy)' : ''}`,
    ],
    [
      'why',
      h.gate !== null
        ? html`<b>${h.gate}</b>: ${withoutAges(h.reason ?? '')}`
        : withoutAges(h.reason ?? '—'),
    ],
  ];
  if (failure !== null) rows.push(['failure (this rollout)', failure]);
  rows.push(
    ['target closure', html`<span class="mono">${h.target}</span>`],
    [
      'current closure',
      html`<span class="mono">${h.current ?? 'unknown (no ack)'}</span>${h.current !== null && h.current === h.target ? ' (on target)' : ''}`,
    ],
    ['host key', html`<span class="mono">${plan.hosts[h.host]!.hostKey}</span>`],
    [
      'last ack',
      latest === null || h.latestAt === null
        ? 'none'
        : `${latest.kind}, seq ${latest.seq}, signed ${utc(h.latestAt)}`,
    ],
    [
      'revoked',
      revoked.length === 0
        ? 'no'
        : html`<span class="bad-text">${revoked.map((r) => `since ${r.revokedAt}: ${r.reason}`).join('; ')}</span>`,
    ],
  );
  return keyValueTable(rows);
}

/**
 * One host's section. Nothing in it is relative to `now`: it is a function of the host's evidence and
 * the release (hostSectionInputs), so its page is rendered again only when those change.
 */
function hostSection(m: FleetModel, h: HostRow): Html {
  const history = m.ackHistory.get(h.host) ?? [];
  return html`<section class="host" id="${hostAnchor(h.host)}"><h2><a \
href="#${hostAnchor(h.host)}">Host ${h.host}</a></h2>
${hostFacts(m, h)}
<h3>Compliance controls</h3>
${complianceSection(m, h.host)}
<h3>Quarantine (from signed acks)</h3>
${quarantineSection(history)}
<h3>Timeline</h3>
${hostChart(m.timelineByHost.get(h.host)!)}
<h3>Latest probes</h3>
${probesSection(h.latest)}
${acksSection(history)}</section>
`;
}

/**
 * Everything a host's section shows besides the release (hostSection reads nothing relative to `now`):
 * its verdict without ages, its latest ack and its verified ack history (each ack by the digest of its
 * signed bytes): HostStable. The release's documents are part of every detail page's inputs (pages.ts
 * releaseInputs). Kept with the host's stable facts (model.ts ModelMemo).
 */
function hostSectionInputs(m: FleetModel, h: HostRow): string {
  const s = h.stable;
  const latest = s.latest === null ? '' : m.ackId(s.latest);
  return (s.sectionInputs ??= `${s.verdict}\n${latest}\n${s.derived.ackIds}`);
}

/** The hosts of each detail page, in page order (hosts are sorted by channel, wave, name). */
function detailPages(m: FleetModel): Map<string, HostRow[]> {
  const out = new Map<string, HostRow[]>();
  for (const h of m.hosts) {
    let list = out.get(h.page);
    if (list === undefined) out.set(h.page, (list = []));
    list.push(h);
  }
  return out;
}

/** The pager of one wave's detail pages. */
function waveNav(h: HostRow, pages: readonly string[]): Html {
  if (pages.length <= 1) return html``;
  return html`<nav class="pager" aria-label="pages">${join(
    pages.map((p, i) =>
      p === h.page ? html`<b>${i + 1}</b>` : html`<a href="../${p}">${i + 1}</a>`,
    ),
  )}</nav>`;
}

/**
 * hosts/<channel>_w<wave>_<n>.html: every host's detail, HOSTS_PER_DETAIL_PAGE per page, added to
 * `pages`. A page's inputs are the release (`release`: pages.ts releaseInputs), its place among its
 * wave's pages and its hosts' section inputs.
 */
export function hostDetailPages(
  m: FleetModel,
  load: ReleaseLoad,
  release: string,
  pages: SitePages,
): void {
  let shared: { banner: Html; footer: Html } | null = null;
  const chrome = () =>
    (shared ??= { banner: stableBanner(load, m.acks), footer: stableFooter('../') });
  const byPage = detailPages(m);
  const byWave = new Map<string, string[]>();
  for (const [path, rows] of byPage) {
    const w = `${rows[0]!.channel}\n${rows[0]!.wave}`;
    byWave.set(w, [...(byWave.get(w) ?? []), path]);
  }
  for (const [path, rows] of byPage) {
    const first = rows[0]!;
    const siblings = byWave.get(`${first.channel}\n${first.wave}`)!;
    const n = siblings.indexOf(path) + 1;
    const prefix = JSON.stringify([release, m.release.report.fleet, path, siblings]);
    const digest = m.memo.pageInputs(
      path,
      prefix,
      rows.map((h) => h.stable),
      () => {
        const inputs = new PageInputs('host-details').add(prefix);
        for (const h of rows) inputs.add(hostSectionInputs(m, h));
        return inputs.digest();
      },
    );
    pages.add(path, digest, () => {
      const title = `channel ${first.channel}, wave ${first.wave}: hosts ${first.host} to ${rows.at(-1)!.host}`;
      const nav = waveNav(first, siblings);
      // Parts, each host's section encoded on its own (layout.ts encodePage).
      const body = [
        html`<h1>Hosts of ${title}</h1>
<p class="muted">Page ${n} of ${siblings.length} of this wave's host details; the <a \
href="${listHref('../', `wave-${first.channel}-${first.wave}`)}">wave's host list</a> shows their phases at a glance.</p>
${nav}
`,
        rows.map((h) => hostSection(m, h)),
        html`
${nav}`,
      ];
      return encodePage({
        title: `NixFleet ${m.release.report.fleet}: ${title}`,
        base: '../',
        banner: chrome().banner,
        body,
        footer: chrome().footer,
      });
    });
  }
}
