// The host lists at fleet scale: every filter (all hosts, each phase, each channel, each wave of a
// channel, quarantined hosts) is a static list split into pages of HOSTS_PER_PAGE rows, so no page grows
// with the fleet and everything works with JavaScript off. An optional script (search.js) adds search by
// host name over a compact index (search-index.js), loaded only when the operator types.
import { html, join, raw, type Html, type HtmlValue } from './html.ts';
import { encodePage } from './layout.ts';
import {
  hostRowFacts,
  hostRowHtml,
  hostTableParts,
  listHref,
  phaseChip,
  stableBanner,
  stableFooter,
} from './components.ts';
import { PageInputs, type SitePages } from './site-pages.ts';
import { sha256Hex } from '../protocol/index.ts';
import { hostsOfChannel, type FleetModel, type HostRow } from './model.ts';
import type { ReleaseLoad } from '../read-side/index.ts';
import { HOST_PHASES, type HostPhase } from '../reconciler/index.ts';

/**
 * Rows per list page: a host row is ~0.7 kB, so a page stays near 200 kB (the fleet-scale target is
 * ~500 kB per page) and loads in well under a second on a phone.
 */
export const HOSTS_PER_PAGE = 250;

export interface HostList {
  /** File stem under lists/: `all`, `phase-<p>`, `channel-<c>`, `wave-<c>-<w>`, `quarantined`. */
  id: string;
  title: string;
  rows: HostRow[];
}

/** Every filter the dashboard offers; every phase gets a list (possibly empty) so its badge always links. */
export function hostLists(m: FleetModel): HostList[] {
  const lists: HostList[] = [{ id: 'all', title: 'All hosts', rows: m.hosts }];
  const byPhase = new Map<HostPhase, HostRow[]>(HOST_PHASES.map((p) => [p, []]));
  for (const h of m.hosts) byPhase.get(h.phase)!.push(h);
  for (const p of HOST_PHASES)
    lists.push({ id: `phase-${p}`, title: `Hosts in phase ${p}`, rows: byPhase.get(p)! });
  for (const c of m.view.channels) {
    const rows = hostsOfChannel(m, c.channel);
    lists.push({ id: `channel-${c.channel}`, title: `Hosts of channel ${c.channel}`, rows });
    const byWave = new Map<number, HostRow[]>();
    for (const h of rows) {
      let wave = byWave.get(h.wave);
      if (wave === undefined) byWave.set(h.wave, (wave = []));
      wave.push(h);
    }
    for (const w of c.waves)
      lists.push({
        id: `wave-${c.channel}-${w.index}`,
        title: `Hosts of channel ${c.channel}, wave ${w.index}`,
        rows: byWave.get(w.index) ?? [],
      });
  }
  lists.push({
    id: 'quarantined',
    title: 'Hosts that reported a failed or rolled-back closure (quarantined by their agent)',
    rows: m.hosts.filter((h) => m.quarantines.has(h.host)),
  });
  return lists;
}

/** The pager of a list: page `current` (0-based) of the pages numbered `numbers`. */
function pager(base: string, id: string, numbers: readonly number[], current: number): Html {
  const pages = numbers.length;
  if (pages <= 1) return html``;
  const link = (i: number, text: string) =>
    i === current
      ? html`<b>${text}</b>`
      : html`<a href="${listHref(base, id, numbers[i])}">${text}</a>`;
  const parts: Html[] = [];
  if (current > 0) parts.push(link(current - 1, '← previous'));
  // First, last and the neighbourhood of the current page: the pager stays short at 400 pages.
  let gap = false;
  for (let i = 0; i < pages; i++) {
    if (i === 0 || i === pages - 1 || Math.abs(i - current) <= 2) {
      parts.push(link(i, String(i + 1)));
      gap = false;
    } else if (!gap) {
      parts.push(html`<span class="muted">…</span>`);
      gap = true;
    }
  }
  if (current < pages - 1) parts.push(link(current + 1, 'next →'));
  return html`<nav class="pager" aria-label="pages">${join(parts)}</nav>`;
}

/**
 * The filter bar every list shows: search (with JavaScript), each phase, each channel and its waves.
 * Counts only where asked (hosts.html): on the list pages they would change every page whenever one
 * host changes phase.
 */
export function filterBar(m: FleetModel, base: string, withCounts: boolean): Html {
  const phases = join(
    HOST_PHASES.map((p) => phaseChip(p, withCounts ? m.phaseTotals[p] : undefined, base)),
    ' ',
  );
  const channels = m.view.channels.map(
    (c) =>
      html`<span><a href="${listHref(base, `channel-${c.channel}`)}">${c.channel}</a> (waves ${join(
        c.waves.map(
          (w) => html`<a href="${listHref(base, `wave-${c.channel}-${w.index}`)}">${w.index}</a>`,
        ),
        ' ',
      )})</span>`,
  );
  return html`<form id="search" role="search" hidden data-index="${base}search-index.js" \
data-base="${base}"><label>Search hosts: <input type="search" name="q" autocomplete="off" \
placeholder="host name"></label><div id="search-results" aria-live="polite"></div></form>
<div class="filters">Phase: ${phases}</div>
<div class="filters">Channel: ${join(channels, ' ')} · <a href="${listHref(base, 'all')}">all \
hosts</a> · <a href="${listHref(base, 'quarantined')}">quarantined${withCounts ? ` (${m.quarantines.size})` : ''}</a></div>`;
}

/** One page of a host list: its file number (lists/<id>_<n>.html) and its rows. */
export interface ListPage {
  n: number;
  rows: HostRow[];
}

/**
 * A list's pages, by fixed ranges of the fleet's order (channel, wave, name: the signed plan's, which
 * an ack never changes) rather than by counting rows, so that a host joining or leaving a list (a
 * phase, the quarantined hosts) changes the one page whose range holds it instead of shifting every
 * later page by a row. The order is cut into leaves of HOSTS_PER_PAGE hosts under a binary tree; a
 * page is the largest aligned node holding at most HOSTS_PER_PAGE of the list's rows (a leaf always
 * does), so no page exceeds HOSTS_PER_PAGE rows and a sparse list is one page. The ranges move only
 * when a node's count crosses HOSTS_PER_PAGE. A page's number is its first leaf + 1, the first page's
 * always 1 (every link to a list leads there); empty ranges have no page, an empty list one empty page.
 * `rows` must be in fleet order; `position` gives a row's index in the fleet's order of `fleetSize`.
 */
export function pagesOfList(
  rows: readonly HostRow[],
  position: (h: HostRow) => number,
  fleetSize: number,
): ListPage[] {
  const leaves = Math.max(1, Math.ceil(fleetSize / HOSTS_PER_PAGE));
  let top = 1;
  while (top < leaves) top *= 2;
  const pages: ListPage[] = [];
  // [from, to): the rows whose fleet position lies in leaves [lo, hi).
  const visit = (lo: number, hi: number, from: number, to: number): void => {
    if (to - from <= HOSTS_PER_PAGE || hi - lo === 1) {
      if (to > from) pages.push({ n: lo + 1, rows: rows.slice(from, to) });
      return;
    }
    const mid = (lo + hi) / 2;
    // The first row at or past the middle leaf (rows are in fleet order).
    let split = from;
    for (let hiRow = to; split < hiRow;) {
      const m = (split + hiRow) >>> 1;
      if (position(rows[m]!) < mid * HOSTS_PER_PAGE) split = m + 1;
      else hiRow = m;
    }
    visit(lo, mid, from, split);
    visit(mid, hi, split, to);
  };
  visit(0, top, 0, rows.length);
  if (pages.length === 0) return [{ n: 1, rows: [] }];
  pages[0]!.n = 1;
  return pages;
}

/** The pages of one of the model's lists (pagesOfList over the model's fleet order). */
export function modelListPages(m: FleetModel, rows: readonly HostRow[]): ListPage[] {
  return pagesOfList(rows, (h) => h.index, m.hosts.length);
}

/**
 * lists/<id>_<n>.html for every list and page, added to `pages`. A list page's inputs are the release
 * (`release`: pages.ts releaseInputs), the list's page numbers (its pager) and its rows' facts: no
 * total, so that a host joining or leaving the list elsewhere does not change it. Each host's row is
 * rendered at most once per build, however many lists show it.
 */
export function listPages(
  m: FleetModel,
  load: ReleaseLoad,
  lists: readonly HostList[],
  release: string,
  pages: SitePages,
): void {
  const base = '../';
  // Lists state signed times, not ages: a list page changes only when one of its hosts does (the
  // lists hold the whole fleet several times over; rewriting them for every ack would dominate).
  // A host is on four or five lists: its row's facts are digested once (a list page's inputs are then
  // 250 short digests, not 250 rows of text).
  // A row's key is kept with the host's stable facts (model.ts ModelMemo): only hosts whose facts
  // changed since the previous build are digested again.
  const rowKey = (h: HostRow) =>
    (h.stable.rowKey ??= sha256Hex(JSON.stringify(hostRowFacts(h, null))));
  const rendered = new Map<string, Html>();
  const rowHtml = (h: HostRow) => {
    let r = rendered.get(h.host);
    if (r === undefined) rendered.set(h.host, (r = hostRowHtml(hostRowFacts(h, null), base)));
    return r;
  };
  let shared: { banner: Html; filters: Html } | null = null;
  const chrome = () =>
    (shared ??= { banner: stableBanner(load, m.acks), filters: filterBar(m, base, false) });
  // The filter bar lists the channels and their waves: part of every list page.
  const filterInputs = JSON.stringify(
    m.view.channels.map((c) => [c.channel, c.waves.map((w) => w.index)]),
  );
  for (const l of lists) {
    const listed = modelListPages(m, l.rows);
    const numbers = listed.map((p) => p.n);
    listed.forEach(({ n, rows }, i) => {
      const path = `lists/${l.id}_${n}.html`;
      const prefix = JSON.stringify([
        release,
        filterInputs,
        m.release.report.fleet,
        l.id,
        l.title,
        numbers,
        n,
      ]);
      const digest = m.memo.pageInputs(
        path,
        prefix,
        rows.map((h) => h.stable),
        () => {
          const inputs = new PageInputs('list').add(prefix);
          for (const h of rows) inputs.add(rowKey(h));
          return inputs.digest();
        },
      );
      pages.add(path, digest, () => {
        const nav = pager(base, l.id, numbers, i);
        const body = listPageBody(
          l.title,
          chrome().filters,
          rows,
          nav,
          `page ${i + 1} of ${numbers.length}`,
          (rows) => hostTableParts(rows, { now: null, base, rowHtml }),
        );
        return encodePage({
          title: `NixFleet ${m.release.report.fleet}: ${l.title}, page ${i + 1}`,
          base,
          banner: chrome().banner,
          body,
          footer: stableFooter(base),
          script: true,
        });
      });
    });
  }
}

/**
 * A list page's body, as parts: each row encoded once for every list it is on (layout.ts encodePage).
 * `place`: "page <n> of <pages>".
 */
function listPageBody(
  title: string,
  filters: Html,
  rows: readonly HostRow[],
  nav: Html,
  place: string,
  table: (rows: readonly HostRow[]) => HtmlValue[],
): HtmlValue[] {
  const range =
    rows.length === 0
      ? 'none'
      : `${rows[0]!.host} to ${rows.at(-1)!.host} (${rows.length} on this page)`;
  return [
    html`<h1>${title}</h1>
${filters}
<p class="muted">Hosts ${range}, ${place}.</p>
${nav}
`,
    rows.length === 0 ? html`<p class="muted">No hosts.</p>` : table(rows),
    html`
${nav}`,
  ];
}

/**
 * The compact search index: one `[host, channel, wave, phase, detail page number]` row per host, as a script (a JSON fetch is
 * refused from file://). Loaded by search.js on the first keystroke, never by the page itself.
 */
export function searchIndex(m: FleetModel): string {
  // The detail page as its number within the wave (hosts/<channel>_w<wave>_<n>.html): the index of
  // 10,000 hosts stays near 350 kB.
  const rows = m.hosts.map((h) => [
    h.host,
    h.channel,
    h.wave,
    h.phase,
    Number(h.page.slice(h.page.lastIndexOf('_') + 1, -'.html'.length)),
  ]);
  // JSON of names that are DNS labels and phase words: no "</script>" can appear, and it is not HTML.
  return `window.nixfleetHosts=${JSON.stringify(rows)};\n`;
}

/**
 * Optional: search by host name (substring, first 50 matches) on the lists and the hosts page. Without
 * JavaScript the form stays hidden and the paged lists are the way in. Results are built as DOM nodes
 * (textContent), never as markup.
 */
export const SEARCH_SCRIPT = raw(`(function(){
var form=document.getElementById('search');if(!form)return;form.hidden=false;
var input=form.querySelector('input'),out=document.getElementById('search-results'),base=form.getAttribute('data-base')||'';
var loading=false;
function show(){var q=input.value.trim().toLowerCase();out.textContent='';if(!q||!window.nixfleetHosts)return;
var n=0,list=document.createElement('ul');
for(var i=0;i<window.nixfleetHosts.length&&n<50;i++){var r=window.nixfleetHosts[i];if(r[0].indexOf(q)<0)continue;n++;
var li=document.createElement('li'),a=document.createElement('a');a.href=base+'hosts/'+r[1]+'_w'+r[2]+'_'+r[4]+'.html#h-'+r[0];a.textContent=r[0];
li.appendChild(a);li.appendChild(document.createTextNode(' '+r[3]+', channel '+r[1]+', wave '+r[2]));list.appendChild(li);}
out.appendChild(n?list:document.createTextNode('no host matches'));}
input.addEventListener('input',function(){if(window.nixfleetHosts)return show();if(loading)return;loading=true;
var s=document.createElement('script');s.src=form.getAttribute('data-index');s.onload=show;document.head.appendChild(s);});
form.addEventListener('submit',function(e){e.preventDefault();show();});
})();
`).text;
