// The page shell every dashboard page shares: inline CSS (no external assets, works offline and from
// file://), a navigation bar, and the verification banner at the top of every page.
import { html, raw, type Html, type HtmlValue } from './html.ts';

const CSS = raw(`
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#202124;background:#f8f9fa}
header{background:#202124;color:#fff;padding:8px 16px;display:flex;gap:16px;align-items:baseline;flex-wrap:wrap}
header a{color:#cfe1ff;text-decoration:none}header a:hover{text-decoration:underline}header .brand{font-weight:700;color:#fff}
main{padding:12px 16px;max-width:1400px}h1{font-size:20px;margin:8px 0}h2{font-size:16px;margin:20px 0 8px}
.banner{padding:10px 16px;font-weight:600;border-bottom:1px solid rgba(0,0,0,.1)}
.banner.ok{background:#e6f4ea;color:#0d652d}.banner.warn{background:#fef7e0;color:#7a4b00}.banner.bad{background:#d93025;color:#fff}
.banner .detail{font-weight:400;display:block;margin-top:2px}
table{border-collapse:collapse;background:#fff;margin:4px 0 12px;font-size:13px}th,td{border:1px solid #dadce0;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f1f3f4;font-weight:600}td.num,th.num{text-align:right}table.hosts td:first-child{white-space:nowrap}code,.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
.cards{display:flex;gap:8px;flex-wrap:wrap;margin:8px 0}.card{background:#fff;border:1px solid #dadce0;border-radius:6px;padding:8px 12px;min-width:120px}
.card .n{font-size:22px;font-weight:700}.card .l{color:#5f6368;font-size:12px}
.phase{display:inline-block;padding:0 6px;border-radius:8px;color:#fff;font-size:12px;white-space:nowrap}
.state{font-weight:600}.state.halted,.state.failed,.bad-text{color:#d93025}.state.complete{color:#137333}.state.gated,.state.waiting{color:#5f6368}.state.active,.state.in-progress,.state.soaking{color:#1a73e8}
.muted{color:#5f6368}.reason{max-width:560px}.legend span{margin-right:10px;white-space:nowrap}
svg.timeline,svg.waves,svg.phasebar{background:#fff;border:1px solid #dadce0;display:block;margin:4px 0 12px}
svg text{font:11px system-ui,sans-serif;fill:#202124}svg .tick{fill:#5f6368}svg .note{fill:#3c4043}
svg .grid{stroke:#e8eaed}svg .silent{stroke:#9aa5b1;stroke-dasharray:4 3}svg text.inside{fill:#fff;font-weight:600}svg .wave-sep{stroke:#bdc1c6;stroke-dasharray:3 3}svg .now{stroke:#202124;stroke-dasharray:2 2}svg .fail-mark{stroke:#fff;stroke-width:2}
footer{color:#5f6368;font-size:12px;padding:16px}
`);

export interface PageOptions {
  title: string;
  /** "" for pages at the site root, "../" for pages one directory down. */
  base: string;
  banner: Html;
  body: HtmlValue;
  footer: HtmlValue;
  /** Hide the navigation (the failure page has nothing trustworthy to link to). */
  nav?: boolean;
}

export function page(o: PageOptions): string {
  const nav = o.nav === false
    ? null
    : html`<a href="${o.base}index.html">overview</a><a href="${o.base}hosts.html">hosts</a><a href="${o.base}trust.html">trust</a><a href="${o.base}documents.html">documents</a>`;
  return html`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${o.title}</title><style>${CSS}</style></head>
<body><header><span class="brand">NixFleet</span>${nav}</header>
${o.banner}
<main>${o.body}</main>
<footer>${o.footer}</footer>
</body></html>
`.text;
}
