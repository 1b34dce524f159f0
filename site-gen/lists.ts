// The host lists at fleet scale: every filter (all hosts, each phase, each channel, each wave of a
// channel, quarantined hosts) is a static list split into pages of HOSTS_PER_PAGE rows, so no page grows
// with the fleet and everything works with JavaScript off. An optional script (search.js) adds search by
// host name over a compact index (search-index.js), loaded only when the operator types.
import { html, join, raw, type Html } from './html.ts';
import { encodePage } from './layout.ts';
import {
  hostRowFacts,
  hostRowHtml,
  hostTable,
  listHref,
  phaseChip,
  stableBanner,
  stableFooter,
  type HostRowFacts,
} from './components.ts';
import { PageInputs, type SitePages } from './site-pages.ts';
import { sha256Hex } from '../protocol/index.ts';
import type { FleetModel, HostRow } from './model.ts';
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
  const byChannel = new Map<string, HostRow[]>();
  const byWave = new Map<string, HostRow[]>();
  for (const h of m.hosts) {
    byPhase.get(h.phase)!.push(h);
    if (!byChannel.has(h.channel)) byChannel.set(h.channel, []);
    byChannel.get(h.channel)!.push(h);
    const w = `${h.channel}-${h.wave}`;
    if (!byWave.has(w)) byWave.set(w, []);
    byWave.get(w)!.push(h);
  }
  for (const p of HOST_PHASES)
    lists.push({ id: `phase-${p}`, title: `Hosts in phase ${p}`, rows: byPhase.get(p)! });
  for (const c of m.view.channels) {
    lists.push({
      id: `channel-${c.channel}`,
      title: `Hosts of channel ${c.channel}`,
      rows: byChannel.get(c.channel) ?? [],
    });
    for (const w of c.waves)
      lists.push({
        id: `wave-${c.channel}-${w.index}`,
        title: `Hosts of channel ${c.channel}, wave ${w.index}`,
        rows: byWave.get(`${c.channel}-${w.index}`) ?? [],
      });
  }
  lists.push({
    id: 'quarantined',
    title: 'Hosts that reported a failed or rolled-back closure (quarantined by their agent)',
    rows: m.hosts.filter((h) => m.quarantines.has(h.host)),
  });
  return lists;
}

function pager(base: string, id: string, current: number, pages: number): Html {
  if (pages <= 1) return html``;
  const link = (n: number, text: string) =>
    n === current ? html`<b>${text}</b>` : html`<a href="${listHref(base, id, n)}">${text}</a>`;
  const parts: Html[] = [];
  if (current > 1) parts.push(link(current - 1, '← previous'));
  // First, last and the neighbourhood of the current page: the pager stays short at 400 pages.
  let gap = false;
  for (let n = 1; n <= pages; n++) {
    if (n === 1 || n === pages || Math.abs(n - current) <= 2) {
      parts.push(link(n, String(n)));
      gap = false;
    } else if (!gap) {
      parts.push(html`<span class="muted">…</span>`);
      gap = true;
    }
  }
  if (current < pages) parts.push(link(current + 1, 'next →'));
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

/**
 * lists/<id>_<n>.html for every list and page, added to `pages`. A list page's inputs are the release
 * (`release`: pages.ts releaseInputs), its place in its list and its rows' facts; each host's row is
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
  const facts = new Map<string, { key: string; facts: HostRowFacts; html?: Html }>();
  const rowOf = (h: HostRow) => {
    let r = facts.get(h.host);
    if (r === undefined) {
      const f = hostRowFacts(h, null);
      const key = sha256Hex(JSON.stringify(f));
      facts.set(h.host, (r = { key, facts: f }));
    }
    return r;
  };
  const rowHtml = (h: HostRow) => {
    const r = rowOf(h);
    return (r.html ??= hostRowHtml(r.facts, base));
  };
  let shared: { banner: Html; filters: Html } | null = null;
  const chrome = () =>
    (shared ??= { banner: stableBanner(load, m.acks), filters: filterBar(m, base, false) });
  // The filter bar lists the channels and their waves: part of every list page.
  const filterInputs = JSON.stringify(
    m.view.channels.map((c) => [c.channel, c.waves.map((w) => w.index)]),
  );
  for (const l of lists) {
    const count = Math.max(1, Math.ceil(l.rows.length / HOSTS_PER_PAGE));
    for (let n = 1; n <= count; n++) {
      const rows = l.rows.slice((n - 1) * HOSTS_PER_PAGE, n * HOSTS_PER_PAGE);
      const inputs = new PageInputs('list')
        .add(release)
        .add(filterInputs)
        .add(m.release.report.fleet)
        .add(l.id)
        .add(l.title)
        .add(l.rows.length)
        .add(n);
      for (const h of rows) inputs.add(rowOf(h).key);
      pages.add(`lists/${l.id}_${n}.html`, inputs.digest(), () => {
        const range =
          l.rows.length === 0
            ? 'none'
            : `${(n - 1) * HOSTS_PER_PAGE + 1}–${(n - 1) * HOSTS_PER_PAGE + rows.length} of ${l.rows.length}`;
        const nav = pager(base, l.id, n, count);
        const body = html`<h1>${l.title} (${l.rows.length})</h1>
${chrome().filters}
<p class="muted">Hosts ${range}, page ${n} of ${count}.</p>
${nav}
${rows.length === 0 ? html`<p class="muted">No hosts.</p>` : hostTable(rows, { now: null, base, rowHtml })}
${nav}`;
        return encodePage({
          title: `NixFleet ${m.release.report.fleet}: ${l.title}, page ${n}`,
          base,
          banner: chrome().banner,
          body,
          footer: stableFooter(base),
          script: true,
        });
      });
    }
  }
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
    Number(/_([0-9]+)\.html$/.exec(h.page)![1]),
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
