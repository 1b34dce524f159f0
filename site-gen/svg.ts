// Inline SVG charts: host lanes over time (started -> activated -> healthy -> soaked, failures in red),
// wave spans, and a stacked phase bar. Plain SVG with <title> tooltips: no script, no external assets.
import { html, join, type Html } from './html.ts';
import { duration, utc } from './format.ts';
import type { HostTimeline, WaveSpan } from './timeline.ts';
import type { HostPhase } from '../reconciler/index.ts';

/** Fill of each phase in charts and badges. */
export const PHASE_COLORS: Record<HostPhase, string> = {
  pending: '#9aa5b1',
  activating: '#1967d2',
  confirming: '#5b5fc7',
  healthy: '#8fd19e',
  soaked: '#188038',
  converged: '#137333',
  failed: '#c5221f',
  deferred: '#8e3ad9',
  offline: '#5f6368',
  blocked: '#e8710a',
};

const DARK = '#202124';
/**
 * Badge text on each fill: white where white reaches WCAG AA (4.5:1), else near-black. Ratios (text on fill):
 * pending 6.4, activating 5.4, confirming 5.4, healthy 9.0, soaked 5.0, converged 6.0, failed 5.8,
 * deferred 5.6, offline 6.1, blocked 5.2 (the browser test recomputes them from the rendered page).
 */
export const PHASE_TEXT: Record<HostPhase, string> = {
  pending: DARK,
  activating: '#fff',
  confirming: '#fff',
  healthy: DARK,
  soaked: '#fff',
  converged: '#fff',
  failed: '#fff',
  deferred: '#fff',
  offline: '#fff',
  blocked: DARK,
};

const WIDTH = 960;
const LABEL = 150;
const LANE = 16;
const AXIS = 28;

const TICK_STEPS_S = [60, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400, 172800, 604800];

interface Scale {
  from: number;
  until: number;
  x: (ms: number) => number;
}

function scale(from: number, until: number): Scale {
  const span = Math.max(until - from, 60_000);
  // room on the right for the last tick label
  const plotWidth = WIDTH - LABEL - 24;
  return {
    from,
    until: from + span,
    x: (ms) => LABEL + ((Math.min(Math.max(ms, from), from + span) - from) / span) * plotWidth,
  };
}

/**
 * Axes drawn recently, by range and height: the hosts of a wave mostly share their chart's range (their
 * acks came at the same times), and a site draws one axis per host. Bounded: cleared when full.
 */
const axes = new Map<string, Html>();
const MAX_AXES = 4096;

function axis(s: Scale, height: number): Html {
  const key = `${s.from} ${s.until} ${height}`;
  let a = axes.get(key);
  if (a === undefined) {
    if (axes.size >= MAX_AXES) axes.clear();
    axes.set(key, (a = drawAxis(s, height)));
  }
  return a;
}

/**
 * The grid as one path and a label per tick (centred by the stylesheet's `.tick`): a site draws an
 * axis per host, so its markup is kept short (a line and an anchor attribute per tick were ~1 kB of
 * every host's section).
 */
function drawAxis(s: Scale, height: number): Html {
  const spanS = (s.until - s.from) / 1000;
  const step = (TICK_STEPS_S.find((st) => spanS / st <= 8) ?? 604800) * 1000;
  let grid = '';
  const labels: Html[] = [];
  const multiDay = spanS > 86400;
  for (let t = Math.ceil(s.from / step) * step; t <= s.until; t += step) {
    const x = coord(s.x(t));
    const label = multiDay ? utc(t).slice(5, 16) : utc(t).slice(11, 16);
    grid += `M${x} ${AXIS - 6}V${height}`;
    labels.push(html`<text x="${x}" y="${AXIS - 10}" class="tick">${label}</text>`);
  }
  return grid === '' ? join(labels) : html`<path class="grid" d="${grid}"/>${join(labels)}`;
}

/** A coordinate to a tenth, without a trailing ".0". */
function coord(v: number): string {
  const t = v.toFixed(1);
  return t.endsWith('.0') ? t.slice(0, -2) : t;
}

function segment(
  s: Scale,
  y: number,
  from: number,
  to: number,
  color: string,
  title: string,
): Html {
  const x1 = s.x(from);
  const w = Math.max(s.x(to) - x1, 2);
  return html`<rect x="${x1.toFixed(1)}" y="${y + 3}" width="${w.toFixed(1)}" height="${LANE - 6}" fill="${color}"><title>${title}</title></rect>`;
}

export interface TimelineChartOptions {
  now: number;
  /** Earliest time shown; default: the earliest event (or an hour before now). */
  from?: number;
  /** Link each host label to its detail (a relative href). */
  hostHref?: (host: string) => string;
  title: string;
}

function timeRange(timelines: readonly HostTimeline[], now: number): number {
  let from = Infinity;
  for (const t of timelines) {
    for (const v of [t.startedAt, t.convergedAt, t.failedAt, t.healthyAt])
      if (v !== null) from = Math.min(from, v);
    const first = t.marks[0];
    if (first) from = Math.min(from, first.at);
  }
  return Number.isFinite(from) && from < now ? from : now - 3600_000;
}

function laneParts(s: Scale, t: HostTimeline, y: number, now: number): Html[] {
  const parts: Html[] = [];
  // Health is only known up to the host's last ack: after it, the lane says so instead of staying green.
  const lastAck = t.marks.length > 0 ? Math.min(t.marks[t.marks.length - 1]!.at, now) : now;
  const end = (...c: (number | null)[]) => c.find((v): v is number => v !== null) ?? lastAck;
  if (t.convergedAt !== null && t.startedAt === null)
    parts.push(
      segment(
        s,
        y,
        t.convergedAt,
        lastAck,
        PHASE_COLORS.converged,
        `${t.host}: already on the target since ${utc(t.convergedAt)}`,
      ),
    );
  if (t.startedAt !== null) {
    const a = end(t.activatedAt, t.failedAt);
    parts.push(
      segment(
        s,
        y,
        t.startedAt,
        a,
        PHASE_COLORS.activating,
        `${t.host}: activating from ${utc(t.startedAt)} (${duration((a - t.startedAt) / 1000)})`,
      ),
    );
  }
  if (t.activatedAt !== null) {
    const h = end(t.healthyAt, t.failedAt);
    parts.push(
      segment(
        s,
        y,
        t.activatedAt,
        h,
        PHASE_COLORS.confirming,
        `${t.host}: switched at ${utc(t.activatedAt)}, confirming`,
      ),
    );
  }
  if (t.healthyAt !== null && t.failedAt === null) {
    const k = end(t.soakedAt);
    parts.push(
      segment(
        s,
        y,
        t.healthyAt,
        k,
        PHASE_COLORS.healthy,
        `${t.host}: healthy from ${utc(t.healthyAt)}, soaking`,
      ),
    );
  }
  if (t.soakedAt !== null && t.failedAt === null && t.soakedAt <= lastAck)
    parts.push(
      segment(
        s,
        y,
        t.soakedAt,
        lastAck,
        PHASE_COLORS.soaked,
        `${t.host}: soaked at ${utc(t.soakedAt)}`,
      ),
    );
  if (t.failedAt !== null) {
    parts.push(
      segment(
        s,
        y,
        t.failedAt,
        now,
        PHASE_COLORS.failed,
        `${t.host}: ${t.failure ?? 'failed'} at ${utc(t.failedAt)}`,
      ),
    );
    const x = s.x(t.failedAt).toFixed(1);
    parts.push(html`<path d="M${x} ${y + 4}l8 8m0 -8l-8 8" class="fail-mark"/>`);
  } else if (t.marks.length > 0 && now - lastAck > 0) {
    const x1 = s.x(lastAck).toFixed(1);
    const x2 = s.x(now).toFixed(1);
    parts.push(
      html`<line x1="${x1}" y1="${y + LANE / 2}" x2="${x2}" y2="${y + LANE / 2}" class="silent"><title>${t.host}: no ack since ${utc(lastAck)}</title></line>`,
    );
  }
  if (t.heldAt !== null) {
    const x = s.x(t.heldAt).toFixed(1);
    parts.push(
      html`<circle cx="${x}" cy="${y + LANE / 2}" r="3" fill="${PHASE_COLORS.blocked}"><title>${t.host}: ${t.held ?? ''} at ${utc(t.heldAt)}</title></circle>`,
    );
  }
  return parts;
}

function nowLine(s: Scale, now: number, height: number): Html {
  const x = s.x(now).toFixed(1);
  return html`<line x1="${x}" y1="${AXIS - 6}" x2="${x}" y2="${height}" class="now"/>`;
}

/** One lane per host: each stage of its rollout as a coloured span, failures in red. */
export function timelineChart(timelines: readonly HostTimeline[], o: TimelineChartOptions): Html {
  const s = scale(o.from ?? timeRange(timelines, o.now), o.now);
  const height = AXIS + timelines.length * LANE + 4;
  const lanes: Html[] = [];
  let prevWave = -1;
  timelines.forEach((t, i) => {
    const y = AXIS + i * LANE;
    const sep =
      t.wave !== prevWave && i > 0
        ? html`<line x1="0" y1="${y}" x2="${WIDTH}" y2="${y}" class="wave-sep"/>`
        : null;
    prevWave = t.wave;
    const label = html`<text x="4" y="${y + LANE - 4}" class="lane">w${t.wave} ${t.host}</text>`;
    lanes.push(
      html`<g>${sep}${o.hostHref ? html`<a href="${o.hostHref(t.host)}">${label}</a>` : label}${laneParts(s, t, y, o.now)}</g>`,
    );
  });
  return html`<svg class="timeline" role="img" viewBox="0 0 ${WIDTH} ${height}" width="100%" \
xmlns="http://www.w3.org/2000/svg">\
<title>${o.title}</title>${axis(s, height)}${lanes}${nowLine(s, o.now, height)}</svg>`;
}

/**
 * The per-host page's chart: its lane, and below it a tick for every ack it signed. It ends at the host's
 * last ack, not at the build's `now`, so the page changes only when the host's evidence does (watch mode
 * rewrites only changed pages); the overview and the lists carry the ages.
 */
export function hostChart(t: HostTimeline): Html {
  const lastAck = t.marks.length > 0 ? t.marks[t.marks.length - 1]!.at : null;
  const from = lastAck === null ? 0 : timeRange([t], lastAck + 1);
  const until = lastAck === null ? 3600_000 : lastAck + Math.max(60_000, (lastAck - from) / 20);
  const s = scale(from, until);
  const marksY = AXIS + LANE + 4;
  const height = marksY + 16;
  const marks = t.marks.map((m) => {
    // Colours by class (svg .mk in the stylesheet): failures red, heartbeats grey, the rest dark.
    const kind =
      m.kind === 'failed' || m.kind === 'rolled-back'
        ? ' bad'
        : m.kind === 'heartbeat'
          ? ' hb'
          : '';
    return html`<path class="mk${kind}" d="M${coord(s.x(m.at))} ${marksY}v12"><title>${m.kind} at \
${utc(m.at)}</title></path>`;
  });
  const lane =
    lastAck === null
      ? html`<text x="${LABEL}" y="${AXIS + LANE - 4}" class="note">no verified ack</text>`
      : join(laneParts(s, t, AXIS, until));
  return html`<svg class="timeline" role="img" viewBox="0 0 ${WIDTH} ${height}" width="100%" \
xmlns="http://www.w3.org/2000/svg"><title>timeline of ${t.host} up to its last \
ack</title>${axis(s, height)}<text x="4" y="${AXIS + LANE - 4}" \
class="lane">${t.host}</text>${lane}<text x="4" y="${marksY + 10}" class="lane">acks</text>${marks}</svg>`;
}

/** What the wave chart needs of the reconciler's wave view: whether failures exceed the threshold. */
export interface WaveVerdict {
  allowedFailures: number;
}

/**
 * One bar per wave from its first start until every host soaked or failed (or now), with counts. The bar
 * is red only when the failures exceed the wave's threshold; failures within it are a red share at the
 * bar's end, so a wave that completed within its threshold does not read as a failed one.
 */
export function waveChart(
  spans: readonly WaveSpan[],
  verdicts: readonly WaveVerdict[],
  now: number,
  title: string,
): Html {
  const starts = spans.map((w) => w.firstStart).filter((v): v is number => v !== null);
  const s = scale(starts.length ? Math.min(...starts) : now - 3600_000, now);
  const rowH = 22;
  const height = AXIS + spans.length * rowH + 4;
  const rows = spans.map((w, i) => {
    const y = AXIS + i * rowH;
    const label = html`<text x="4" y="${y + 15}" class="lane">wave ${w.wave} (${w.hosts})</text>`;
    if (w.firstStart === null)
      return html`<g>${label}<text x="${LABEL}" y="${y + 15}" class="note">not started</text></g>`;
    const allowed = verdicts[i]?.allowedFailures ?? 0;
    const overThreshold = w.failed > allowed;
    const end = w.settledAt ?? now;
    const color = overThreshold
      ? PHASE_COLORS.failed
      : w.settledAt !== null
        ? PHASE_COLORS.soaked
        : PHASE_COLORS.activating;
    const x1 = s.x(w.firstStart);
    const width = Math.max(s.x(end) - x1, 2);
    const failedShare =
      !overThreshold && w.failed > 0 ? Math.max((w.failed / Math.max(w.hosts, 1)) * width, 3) : 0;
    const text =
      `${w.started} started, ${w.soaked} soaked, ${w.failed} ` +
      `failed${w.failed > 0 ? (overThreshold ? ` (over the threshold of ${allowed})` : ` (within the threshold of ${allowed})`) : ''}`;
    // The counts go right of the bar, or inside it when the bar reaches the right edge.
    const inside = x1 + width + 260 > WIDTH;
    const tx = inside ? x1 + 4 : x1 + width + 4;
    const share =
      failedShare > 0
        ? html`<rect x="${(x1 + width - failedShare).toFixed(1)}" y="${y + 3}" \
width="${failedShare.toFixed(1)}" height="${rowH - 6}" fill="${PHASE_COLORS.failed}" \
class="failed-share"><title>wave ${w.wave}: ${w.failed} failed, within the threshold \
of ${allowed}</title></rect>`
        : null;
    return html`<g class="wave-row${overThreshold ? ' over-threshold' : ''}">${label}<rect \
x="${x1.toFixed(1)}" y="${y + 3}" width="${(width - failedShare).toFixed(1)}" height="${rowH - 6}" \
fill="${color}" class="wave-bar"><title>wave ${w.wave}: ${text}; \
from ${utc(w.firstStart)}${w.settledAt !== null ? ` to ${utc(w.settledAt)}` : ' (in progress)'}</title>\
</rect>${share}<text x="${tx.toFixed(1)}" y="${y + 15}" \
class="${inside ? 'note inside' : 'note'}">${text}</text></g>`;
  });
  return html`<svg class="waves" role="img" viewBox="0 0 ${WIDTH} ${height}" width="100%" \
xmlns="http://www.w3.org/2000/svg">\
<title>${title}</title>${axis(s, height)}${rows}${nowLine(s, now, height)}</svg>`;
}

/** A horizontal bar split by phase counts. */
export function phaseBar(counts: Partial<Record<HostPhase, number>>, title: string): Html {
  const total = Object.values(counts).reduce((a, b) => a + (b ?? 0), 0);
  if (total === 0)
    return html`<svg class="phasebar" viewBox="0 0 ${WIDTH} 18" width="100%" xmlns="http://www.w3.org/2000/svg"><title>${title}: no hosts</title></svg>`;
  let x = 0;
  const parts: Html[] = [];
  for (const [phase, color] of Object.entries(PHASE_COLORS) as [HostPhase, string][]) {
    const n = counts[phase] ?? 0;
    if (n === 0) continue;
    const w = (n / total) * WIDTH;
    parts.push(
      html`<rect x="${x.toFixed(2)}" y="0" width="${Math.max(w, 1).toFixed(2)}" height="18" fill="${color}"><title>${phase}: ${n}</title></rect>`,
    );
    x += w;
  }
  return html`<svg class="phasebar" role="img" viewBox="0 0 ${WIDTH} 18" width="100%" \
preserveAspectRatio="none" xmlns="http://www.w3.org/2000/svg"><title>${title}</title>${parts}</svg>`;
}
