// Deterministic text for times and durations: everything is relative to the build's `now` (an input),
// never to the clock, so the same inputs give byte-identical pages.
import { humanDuration } from '../reconciler/index.ts';

/**
 * Times formatted recently: a site states tens of thousands of times, mostly the same few thousand
 * (a wave's acks come at the same instants). Bounded: cleared when full.
 */
const utcTexts = new Map<number, string>();
const MAX_UTC_TEXTS = 65_536;

export function utc(ms: number): string {
  let text = utcTexts.get(ms);
  if (text === undefined) {
    if (utcTexts.size >= MAX_UTC_TEXTS) utcTexts.clear();
    utcTexts.set(ms, (text = formatUtc(ms)));
  }
  return text;
}

function formatUtc(ms: number): string {
  // "YYYY-MM-DDTHH:MM:SS.mmmZ" -> "YYYY-MM-DD HH:MM:SSZ" by slicing; an extended year
  // ("+012345-...") the long way.
  const iso = new Date(ms).toISOString();
  return iso.length === 24
    ? `${iso.slice(0, 10)} ${iso.slice(11, 19)}Z`
    : iso.replace('T', ' ').replace(/\.\d{3}Z$/, 'Z');
}

/** reconciler/time.ts humanDuration: the one duration style of the reconciler and every view. */
export const duration = humanDuration;

/** "3 min ago" / "in 3 min". */
export function relative(ms: number, now: number): string {
  const d = (ms - now) / 1000;
  return d <= 0 ? `${duration(-d)} ago` : `in ${duration(d)}`;
}

/** A store path is long; the hash prefix and the name are what people compare. */
export function shortStorePath(path: string | null): string {
  if (path === null) return '—';
  const m = /^\/nix\/store\/([0-9a-z]{32})-(.*)$/.exec(path);
  return m ? `${m[1]!.slice(0, 8)}…-${m[2]}` : path;
}

export function shortDigest(d: string): string {
  return d.startsWith('sha256:') ? `sha256:${d.slice(7, 19)}…` : d;
}
