// Deterministic text for times and durations: everything is relative to the build's `now` (an input),
// never to the clock, so the same inputs give byte-identical pages.

export function utc(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, 'Z');
}

/** "45 s", "12 min", "3 h 5 min", "4 d 2 h". */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 120) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 72) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

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
