// The page shell every dashboard page shares: one stylesheet of the site (no external assets, works
// offline and from file://), a navigation bar, and the verification banner at the top of every page.
import { encodeHtml, html, join, type Html, type HtmlValue } from './html.ts';
import { PHASE_COLORS, PHASE_TEXT } from './svg.ts';
import type { HostPhase } from '../reconciler/index.ts';

/** Each phase badge's colours, by class (components.ts phaseChip): `.p-<phase>`. */
const phaseClasses = (Object.keys(PHASE_COLORS) as HostPhase[])
  .map((p) => `.p-${p}{background:${PHASE_COLORS[p]};color:${PHASE_TEXT[p]}}`)
  .join('');

/**
 * The phone labels of the two tables a site has tens of thousands of rows of, by column from the
 * second (the first cell names the row): the host lists (components.ts hostRowHtml) and each host's
 * acks (host-pages.ts). Said once here instead of as a `data-l` attribute on every cell.
 */
export const COLUMN_LABELS = {
  hosts: ['phase', 'channel', 'wave', 'last ack', 'why', 'current', 'target'],
  acks: ['signed at', 'kind', 'release', 'rollout', 'current', 'healthy since', 'reason'],
} as const;
const columnLabels =
  Object.entries(COLUMN_LABELS)
    .flatMap(([table, labels]) =>
      labels.map((l, i) => `table.${table} td:nth-child(${i + 2})::before{content:"${l}: "}`),
    )
    .join('') + `table.hosts td::before,table.acks td::before{color:#5f6368}`;

/**
 * The one stylesheet, written once as style.css next to the pages (a relative link: works from nginx,
 * file:// and offline; 10,000 host pages do not each carry 2 kB of CSS). Every text colour meets WCAG AA
 * (4.5:1) on its background; the browser test computes the ratio of every text element.
 * Below 760 px the main tables (`table.stack`: hosts, channels, waves, acks, quarantine) turn into one
 * block per row, each cell labelled (phase second, nothing off-screen), and other wide tables scroll
 * inside their own box, so no page scrolls sideways on a phone.
 */
export const STYLESHEET =
  `*{box-sizing:border-box}` +
  `body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#202124;background:#f8f9fa}
header{background:#202124;color:#fff;padding:8px 16px;display:flex;gap:6px 16px;align-items:baseline;flex-wrap:wrap}
header a{color:#cfe1ff;text-decoration:none}header a:hover{text-decoration:underline}` +
  `header .brand{font-weight:700;color:#fff}
main{padding:12px 16px;max-width:1400px}h1{font-size:20px;margin:8px 0;overflow-wrap:anywhere}` +
  `h2{font-size:16px;margin:20px 0 8px}
a{color:#1967d2}
.banner{padding:10px 16px;font-weight:600;border-bottom:1px solid rgba(0,0,0,.1);overflow-wrap:anywhere}
.banner.ok{background:#e6f4ea;color:#0d652d}.banner.warn{background:#fef7e0;color:#7a4b00}` +
  `.banner.bad{background:#c5221f;color:#fff}
.banner .detail{font-weight:400;display:block;margin-top:2px}
.scroll{overflow-x:auto;max-width:100%}.scroll>table{width:max-content;max-width:none}
table{border-collapse:collapse;background:#fff;margin:4px 0 12px;font-size:13px}` +
  `th,td{border:1px solid #dadce0;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f1f3f4;font-weight:600}td.num,th.num{text-align:right}` +
  `table.hosts td:first-child{white-space:nowrap}` +
  `code,.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
table.kv td{overflow-wrap:anywhere}
.cards{display:flex;gap:8px;flex-wrap:wrap;margin:8px 0}` +
  `.card{background:#fff;border:1px solid #dadce0;border-radius:6px;padding:8px 12px;min-width:120px}
.card .n{font-size:22px;font-weight:700}.card .l{color:#5f6368;font-size:12px}
.phase{display:inline-block;padding:0 6px;border-radius:8px;font-size:12px;white-space:nowrap;text-decoration:none}a.phase:hover{text-decoration:underline}` +
  `${phaseClasses}
.state{font-weight:600}.state.halted,.state.failed,.bad-text{color:#c5221f}` +
  `.state.complete{color:#137333}.state.gated,.state.waiting{color:#5f6368}` +
  `.state.active,.state.in-progress,.state.soaking{color:#1967d2}
.muted{color:#5f6368}.reason{max-width:560px;overflow-wrap:anywhere}` +
  `.legend span{margin-right:10px;white-space:nowrap}
.needs{list-style:none;padding:0;margin:4px 0 12px}` +
  `.needs li{background:#fff;border:1px solid #dadce0;border-left:4px solid #5f6368;padding:6px 10px;margin:4px 0;overflow-wrap:anywhere}
.needs li.bad{border-left-color:#c5221f}.needs li.warn{border-left-color:#e8710a}` +
  `.needs li.ok{border-left-color:#188038}
tr.over td{background:#fce8e6}tr.over .over-label{color:#c5221f;font-weight:700}
.pager{margin:8px 0;display:flex;flex-wrap:wrap;gap:4px 10px}` +
  `.filters{margin:4px 0 8px;line-height:2}.filters a{margin-right:8px;white-space:nowrap}
#search{margin:8px 0}#search input{font:inherit;padding:4px 8px;width:min(320px,100%)}` +
  `#search-results{margin:4px 0}
section.host{border-top:2px solid #dadce0;margin-top:16px;scroll-margin-top:8px}` +
  `section.host:target>h2{background:#e8f0fe}
svg.timeline,svg.waves,svg.phasebar{background:#fff;border:1px solid #dadce0;display:block;margin:4px 0 12px}
svg text{font:11px system-ui,sans-serif;fill:#202124}svg .tick{fill:#5f6368;text-anchor:middle}` +
  `svg .mk{stroke:#202124;stroke-width:2}svg .mk.hb{stroke:#9aa5b1}svg .mk.bad{stroke:${PHASE_COLORS.failed}}svg .note{fill:#3c4043}
svg .grid{stroke:#e8eaed;fill:none}svg .silent{stroke:#9aa5b1;stroke-dasharray:4 3}` +
  `svg text.inside{fill:#fff;font-weight:600}svg .wave-sep{stroke:#bdc1c6;stroke-dasharray:3 3}` +
  `svg .now{stroke:#202124;stroke-dasharray:2 2}svg .fail-mark{stroke:#fff;stroke-width:2}
footer{color:#5f6368;font-size:12px;padding:16px}
@media (max-width:760px){
main{padding:8px}header{padding:8px}.banner{padding:8px}
table.stack,table.stack tbody,table.stack tr,table.stack td{display:block;border:0;width:auto}
table.stack thead{display:none}` +
  `table.stack tr{border:1px solid #dadce0;margin:0 0 6px;padding:4px 6px;background:#fff}
table.stack td{padding:1px 0;overflow-wrap:anywhere;text-align:left}` +
  `table.stack td.num{text-align:left}` +
  `table.stack td[data-l]::before{content:attr(data-l) ": ";color:#5f6368}${columnLabels}
table.stack td:first-child{font-weight:600}.scroll>table.stack{width:auto}
}
`;

export interface PageOptions {
  title: string;
  /** "" for pages at the site root, "../" for pages one directory down. */
  base: string;
  banner: Html;
  body: HtmlValue;
  footer: HtmlValue;
  /** Hide the navigation (the failure page has nothing trustworthy to link to). */
  nav?: boolean;
  /** Load the optional host search (search.js): lists and the hosts page. */
  script?: boolean;
}

/**
 * page() as UTF-8, its body encoded part by part (html.ts encodeHtml): for the pages a site has
 * hundreds of (see pages.ts SitePages), whose bodies are lists of rows or host sections.
 */
export function encodePage(o: PageOptions): Uint8Array {
  return encodeHtml(pageParts(o));
}

export function page(o: PageOptions): string {
  return join(pageParts(o)).text;
}

/** The page: its shell up to the body, the body as given, the rest of the shell. */
function pageParts(o: PageOptions): HtmlValue[] {
  const nav =
    o.nav === false
      ? null
      : html`<a href="${o.base}index.html">overview</a><a href="${o.base}hosts.html">hosts</a><a \
href="${o.base}trust.html">trust</a><a href="${o.base}documents.html">documents</a>`;
  const head = html`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, \
initial-scale=1"><title>${o.title}</title><link rel="stylesheet" \
href="${o.base}style.css">${o.script ? html`<script src="${o.base}search.js" defer></script>` : null}</head>
<body><header><span class="brand">NixFleet</span>${nav}</header>
${o.banner}
<main>`;
  return [
    head,
    o.body,
    html`</main>
<footer>${o.footer}</footer>
</body></html>
`,
  ];
}
