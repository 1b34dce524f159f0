// Pieces several pages share: the verification banner, phase chips, the host table.
import { html, join, type Html, type HtmlValue } from './html.ts';
import { duration, relative, shortStorePath, utc } from './format.ts';
import { PHASE_COLORS } from './svg.ts';
import type { HostPhase } from '../reconciler/index.ts';
import type { HostRow } from './model.ts';
import type { AckHistory, ReleaseLoad } from '../read-side/index.ts';
import { parseIsoTime } from '../protocol/index.ts';

/** Where the paged list of one filter starts (see lists.ts); `base` is the site root relative to the page. */
export function listHref(base: string, id: string, page = 1): string {
  return `${base}lists/${id}_${page}.html`;
}

/**
 * Hosts per detail page: a typical host section is ~3 kB and a busy one (MAX_HOST_ACKS acks, failure
 * evidence, compliance controls) ~10 kB, so a page stays within the ~500 kB fleet-scale target; 10,000
 * hosts make ~250 files (see host-pages.ts).
 */
export const HOSTS_PER_DETAIL_PAGE = 40;
/** The detail page (site-relative path) of the `index`-th host (0-based, name order) of a wave. */
export function detailPagePath(channel: string, wave: number, index: number): string {
  return `hosts/${channel}_w${wave}_${Math.floor(index / HOSTS_PER_DETAIL_PAGE) + 1}.html`;
}

/** The anchor of a host's section on its detail page. */
export function hostAnchor(host: string): string {
  return `h-${host}`;
}

/** A phase badge; with `base` it links to the list of every host in that phase. */
export function phaseChip(phase: HostPhase, count?: number, base?: string): Html {
  // Colours by class (layout.ts phaseClasses): a list page shows a badge on each of its 250 rows.
  const text = `${phase}${count === undefined ? '' : ` ${count}`}`;
  return base === undefined
    ? html`<span class="phase p-${phase}">${text}</span>`
    : html`<a class="phase p-${phase}" href="${listHref(base, `phase-${phase}`)}">${text}</a>`;
}

export function legend(): Html {
  return html`<p class="legend">${(Object.keys(PHASE_COLORS) as HostPhase[]).map((p) => html`<span>${phaseChip(p)}</span>`)}</p>`;
}

/** A wide table scrolls inside its own box, never the page. */
export function scroll(table: Html): Html {
  return html`<div class="scroll">${table}</div>`;
}

/** The first thing on every page: is what follows verified, stale, or not to be trusted at all? */
export function verificationBanner(load: ReleaseLoad, now: number, acks: AckHistory | null): Html {
  if (load.status === 'failed') {
    const f = load.failure;
    return html`<div class="banner bad" id="verification">verification \
failed: ${f.code} ${f.file}<span class="detail">${f.detail}</span><span class="detail">No fleet \
data is shown: nothing in this tree can be trusted until it verifies against the pinned trust \
root.</span></div>`;
  }
  const r = load.release.report;
  if (load.status === 'stale') {
    const f = load.failure;
    return html`<div class="banner bad" id="verification">verification \
failed: ${f.code} ${f.file}<span class="detail">${f.detail}</span><span class="detail">Every \
signature verifies as of ${utc(load.verifiedAsOf)} (the timestamp's last valid second). Hosts \
activate nothing new until a fresh timestamp is published; the view below is the last signed \
release with the hosts' current acks.</span></div>`;
  }
  const expires = parseIsoTime(r.timestamp.expires);
  const issued = parseIsoTime(r.timestamp.issuedAt);
  const notes: Html[] = [];
  // A timestamp past three quarters of its life means the refresh job has missed its schedule.
  const late = now - issued > 0.75 * (expires - issued);
  if (!r.ok)
    notes.push(
      html`<span class="detail">Findings: ${r.unlistedManifests.length} manifest file(s) not listed in the release index (see documents).</span>`,
    );
  if (late)
    notes.push(
      html`<span class="detail">The timestamp expires ${relative(expires, now)}: the scheduled re-sign (nixfleet refresh) looks overdue.</span>`,
    );
  if (acks && acks.rejected.length > 0)
    notes.push(
      html`<span class="detail">${acks.rejected.length} ack(s) did not verify and are not counted (see documents).</span>`,
    );
  const cls = notes.length > 0 ? 'warn' : 'ok';
  return html`<div class="banner ${cls}" id="verification">verified: \
release ${r.release.version} of fleet ${r.fleet}, ${r.documents.length} documents, trust root \
v${r.root.version}; timestamp expires ${relative(expires, now)}${notes}</div>`;
}

/**
 * The banner of the pages that number in the thousands (host pages, host lists): the same verdict
 * without anything relative to `now`, so that such a page changes only when its own facts or the
 * verdict do and watch mode rewrites only those (the overview carries the timestamp's age).
 */
export function stableBanner(load: ReleaseLoad, acks: AckHistory | null): Html {
  if (load.status !== 'verified') return verificationBanner(load, 0, acks);
  const r = load.release.report;
  const notes: Html[] = [];
  if (!r.ok)
    notes.push(
      html`<span class="detail">Findings: ${r.unlistedManifests.length} manifest file(s) not listed in the release index (see documents).</span>`,
    );
  if (acks && acks.rejected.length > 0)
    notes.push(
      html`<span class="detail">${acks.rejected.length} ack(s) did not verify and are not counted (see documents).</span>`,
    );
  return html`<div class="banner ${notes.length > 0 ? 'warn' : 'ok'}" id="verification">verified: \
release ${r.release.version} of fleet ${r.fleet}, ${r.documents.length} documents, trust root \
v${r.root.version}; timestamp valid until ${utc(parseIsoTime(r.timestamp.expires))}${notes}</div>`;
}

/**
 * Reconciler texts without their "(last ack N ago)" parts (describePhase adds one to a detail; gate
 * reasons quote other hosts' details), for the pages that state signed times instead of ages.
 */
export function withoutAges(text: string): string {
  if (!text.includes(' (last ack ')) return text;
  // Thousands of waiting hosts share one reason ("waiting for wave 2 ... (last ack 5 min ago)"): each
  // distinct text is stripped once.
  let stripped = agesStripped.get(text);
  if (stripped === undefined) {
    if (agesStripped.size >= MAX_STRIPPED_TEXTS) agesStripped.clear();
    agesStripped.set(text, (stripped = text.replace(/ \(last ack [^()]* ago\)/g, '')));
  }
  return stripped;
}

/** Bounds withoutAges' memory: a fleet's distinct reasons at one instant are far fewer. */
const MAX_STRIPPED_TEXTS = 4096;
const agesStripped = new Map<string, string>();

/** The footer of the stable pages: provenance, no build time (the overview has it). */
export function stableFooter(base: string): Html {
  return html`Facts from documents verified against the pinned trust root and from host acks \
verified against the host keys in the signed release. Ages and the build time: see the <a \
href="${base}index.html">overview</a>.`;
}

/**
 * What one row of the host table shows, as plain text: the row is rendered from this alone, so its
 * JSON is a complete key of the row (the list pages are keyed by their rows: pages.ts SitePage).
 */
export interface HostRowFacts {
  host: string;
  href: string;
  phase: HostPhase;
  channel: string;
  wave: number;
  /** The latest ack's kind (null: none) and when: a signed time, or an age on pages with `now`. */
  lastKind: string | null;
  lastWhen: string;
  /** The gate (shown bold) and the why text after it. */
  gate: string | null;
  why: string;
  current: string | null;
  target: string;
}

/** A host's row facts; `now` null: signed times only and reasons without ages (the stable list pages). */
export function hostRowFacts(h: HostRow, now: number | null): HostRowFacts {
  const text = now === null ? withoutAges : (t: string) => t;
  let why: string;
  if (h.gate !== null) why = text(h.reason ?? '');
  else if (h.phase === 'deferred' && h.reason !== null)
    why = `${text(h.detail)}; ${text(h.reason)}`;
  else if (h.reason !== null) why = text(h.reason);
  else why = `${text(h.detail)}${h.excused ? ' (excused by policy)' : ''}`;
  const at = h.latest === null ? null : h.latestAt;
  return {
    host: h.host,
    href: h.href,
    phase: h.phase,
    channel: h.channel,
    wave: h.wave,
    lastKind: at === null ? null : h.latest!.kind,
    lastWhen: at === null ? '' : now === null ? utc(at) : `${duration((now - at) / 1000)} ago`,
    gate: h.gate,
    why,
    current: h.current,
    target: h.target,
  };
}

/** One row of the host table, from its facts only. */
export function hostRowHtml(f: HostRowFacts, base: string): Html {
  const onTarget = f.current !== null && f.current === f.target;
  // Cells are labelled on a phone by their column (layout.ts HOST_COLUMNS), not by an attribute each.
  return html`<tr id="host-${f.host}"><td><a href="${base}${f.href}">${f.host}</a>\
</td><td>${phaseChip(f.phase, undefined, base)}</td><td><a \
href="${listHref(base, `channel-${f.channel}`)}">${f.channel}</a></td><td class="num"><a \
href="${listHref(base, `wave-${f.channel}-${f.wave}`)}">${f.wave}</a></td><td>\
${f.lastKind === null ? html`<span class="muted">none</span>` : html`${f.lastKind} <span class="muted">${f.lastWhen}</span>`}</td><td class="reason">\
${f.gate === null ? f.why : html`<b>${f.gate}</b>: ${f.why}`}</td><td class="mono" \
title="${f.current ?? ''}">${shortStorePath(f.current)}${onTarget ? ' ✓' : ''}</td><td class="mono" \
title="${f.target}">${shortStorePath(f.target)}</td></tr>`;
}

export interface HostTableOptions {
  /** The build's instant for ages; null = signed times only (the stable list pages). */
  now: number | null;
  /** The site root relative to the page ("" or "../"). */
  base: string;
  limit?: number;
  /** The rows' HTML when the caller has it already (the list pages render each host's row once). */
  rowHtml?: (h: HostRow) => Html;
}

/**
 * The host table: the host, its phase (second, so a phone shows it first), channel and wave, the last
 * ack, why it waits, what runs and what should. Phase badges link to the list of that phase.
 */
export function hostTable(rows: readonly HostRow[], o: HostTableOptions): Html {
  return join(hostTableParts(rows, o));
}

/** hostTable's markup as its parts: the table's head, each row, the rest (layout.ts encodePage). */
export function hostTableParts(rows: readonly HostRow[], o: HostTableOptions): HtmlValue[] {
  const limit = o.limit ?? Infinity;
  const shown = rows.length > limit ? rows.slice(0, limit) : rows;
  const body = shown.map(o.rowHtml ?? ((h) => hostRowHtml(hostRowFacts(h, o.now), o.base)));
  const more =
    rows.length > shown.length
      ? html`<p class="muted">Showing ${shown.length} of ${rows.length} hosts.</p>`
      : null;
  return [
    html`<table class="hosts stack"><thead><tr><th>host</th><th>phase</th><th>channel</th><th \
class="num">wave</th><th>last ack</th><th>why (gate: reason)</th><th>current closure</th><th>target \
closure</th></tr></thead><tbody>`,
    body,
    html`</tbody></table>${more}`,
  ];
}

export function footer(now: number, acks: AckHistory | null): Html {
  const src = acks
    ? html` Acks: ${acks.sources.latestFiles} latest-ack \
files${
        acks.sources.log !== null
          ? html`, ${acks.sources.logRecords} records of the ack \
log${
              acks.sources.logSkippedBytes > 0
                ? ` (oldest ${acks.sources.logSkippedBytes} bytes not \
read)`
                : ''
            }`
          : ', no ack log (timelines from the latest acks only)'
      }; ${acks.rejected.length} rejected.`
    : null;
  const provenance = acks
    ? ' Every fact on these pages comes from documents verified against the pinned ' +
      'trust root and from host-signed acks verified against the host keys in the ' +
      'signed release.'
    : '';
  return html`Built by nixfleet site-gen for ${utc(now)}.${src}${provenance}`;
}

export function keyValueTable(rows: readonly [string, Html | string | number][]): Html {
  return html`<table class="kv"><tbody>${join(rows.map(([k, v]) => html`<tr><th>${k}</th><td>${v}</td></tr>`))}</tbody></table>`;
}
