// Pieces several pages share: the verification banner, phase chips, the host table.
import { html, join, type Html } from './html.ts';
import { duration, relative, shortStorePath, utc } from './format.ts';
import { PHASE_COLORS } from './svg.ts';
import type { HostPhase } from '../reconciler/index.ts';
import type { HostRow } from './model.ts';
import type { AckHistory, ReleaseLoad } from '../operator/load.ts';
import { parseIsoTime } from '../protocol/schemas/common.ts';

export function phaseChip(phase: HostPhase, count?: number): Html {
  return html`<span class="phase" style="background:${PHASE_COLORS[phase]}">${phase}${count === undefined ? '' : ` ${count}`}</span>`;
}

export function legend(): Html {
  return html`<p class="legend">${(Object.keys(PHASE_COLORS) as HostPhase[]).map((p) => html`<span>${phaseChip(p)}</span>`)}</p>`;
}

/** The first thing on every page: is what follows verified, stale, or not to be trusted at all? */
export function verificationBanner(load: ReleaseLoad, now: number, acks: AckHistory | null): Html {
  if (load.status === 'failed') {
    const f = load.failure;
    return html`<div class="banner bad" id="verification">verification failed: ${f.code} ${f.file}<span class="detail">${f.detail}</span><span class="detail">No fleet data is shown: nothing in this tree can be trusted until it verifies against the pinned trust root.</span></div>`;
  }
  const r = load.release.report;
  if (load.status === 'stale') {
    const f = load.failure;
    return html`<div class="banner bad" id="verification">verification failed: ${f.code} ${f.file}<span class="detail">${f.detail}</span><span class="detail">Every signature verifies as of ${utc(load.verifiedAsOf)} (the timestamp's last valid second). Hosts activate nothing new until a fresh timestamp is published; the view below is the last signed release with the hosts' current acks.</span></div>`;
  }
  const expires = parseIsoTime(r.timestamp.expires);
  const issued = parseIsoTime(r.timestamp.issuedAt);
  const notes: Html[] = [];
  // A timestamp past three quarters of its life means the refresh job has missed its schedule.
  const late = now - issued > 0.75 * (expires - issued);
  if (!r.ok) notes.push(html`<span class="detail">Findings: ${r.unlistedManifests.length} manifest file(s) not listed in the release index (see documents).</span>`);
  if (late) notes.push(html`<span class="detail">The timestamp expires ${relative(expires, now)}: the scheduled re-sign (nixfleet refresh) looks overdue.</span>`);
  if (acks && acks.rejected.length > 0) notes.push(html`<span class="detail">${acks.rejected.length} ack(s) did not verify and are not counted (see documents).</span>`);
  const cls = notes.length > 0 ? 'warn' : 'ok';
  return html`<div class="banner ${cls}" id="verification">verified: release ${r.release.version} of fleet ${r.fleet}, ${r.documents.length} documents, trust root v${r.root.version}; timestamp expires ${relative(expires, now)}${notes}</div>`;
}

function lastAckCell(h: HostRow, now: number): Html {
  if (h.latest === null || h.latestAt === null) return html`<span class="muted">none</span>`;
  return html`${h.latest.kind} <span class="muted">${duration((now - h.latestAt) / 1000)} ago</span>`;
}

function whyCell(h: HostRow): Html {
  if (h.gate !== null) return html`<b>${h.gate}</b>: ${h.reason ?? ''}`;
  if (h.phase === 'deferred' && h.reason !== null) return html`${h.detail}; ${h.reason}`;
  if (h.reason !== null) return html`${h.reason}`;
  return html`${h.detail}${h.excused ? ' (excused by policy)' : ''}`;
}

/** The host table: what runs, what should, the phase, the last ack, and why it waits. */
export function hostTable(rows: readonly HostRow[], now: number, hostHref: string, limit = Infinity): Html {
  const shown = rows.length > limit ? rows.slice(0, limit) : rows;
  const body = shown.map((h) => {
    const onTarget = h.current !== null && h.current === h.target;
    return html`<tr id="host-${h.host}"><td><a href="${hostHref}${h.host}.html">${h.host}</a></td><td>${h.channel}</td><td class="num">${h.wave}</td><td class="mono" title="${h.current ?? ''}">${shortStorePath(h.current)}${onTarget ? ' ✓' : ''}</td><td class="mono" title="${h.target}">${shortStorePath(h.target)}</td><td>${phaseChip(h.phase)}</td><td>${lastAckCell(h, now)}</td><td class="reason">${whyCell(h)}</td></tr>`;
  });
  const more = rows.length > shown.length ? html`<p class="muted">Showing ${shown.length} of ${rows.length} hosts.</p>` : null;
  return html`<table class="hosts"><thead><tr><th>host</th><th>channel</th><th class="num">wave</th><th>current closure</th><th>target closure</th><th>phase</th><th>last ack</th><th>why (gate: reason)</th></tr></thead><tbody>${body}</tbody></table>${more}`;
}

export function footer(now: number, acks: AckHistory | null): Html {
  const src = acks
    ? html` Acks: ${acks.sources.latestFiles} latest-ack files${acks.sources.log !== null ? html`, ${acks.sources.logRecords} records of the ack log${acks.sources.logSkippedBytes > 0 ? ` (oldest ${acks.sources.logSkippedBytes} bytes not read)` : ''}` : ', no ack log (timelines from the latest acks only)'}; ${acks.rejected.length} rejected.`
    : null;
  const provenance = acks ? ' Every fact on these pages comes from documents verified against the pinned trust root and from host-signed acks verified against the host keys in the signed release.' : '';
  return html`Built by nixfleet site-gen for ${utc(now)}.${src}${provenance}`;
}

export function keyValueTable(rows: readonly [string, Html | string | number][]): Html {
  return html`<table class="kv"><tbody>${join(rows.map(([k, v]) => html`<tr><th>${k}</th><td>${v}</td></tr>`))}</tbody></table>`;
}
