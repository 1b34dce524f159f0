// Small text helpers shared by the operator's terminal output (status, trace).
import { isoTime } from '../protocol/schemas/common.ts';

/** "0s", "45s", "3m 20s", "2h 05m", "3d 04h": coarse enough to read at a glance. */
export function duration(ms: number): string {
  const s = Math.round(Math.abs(ms) / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d ${String(Math.floor((s % 86400) / 3600)).padStart(2, '0')}h`;
}

/** Age of an instant relative to `now`: "3m 20s ago", "in 5m 00s", "never". */
export function age(at: number | null, now: number): string {
  if (at === null) return 'never';
  return at <= now ? `${duration(now - at)} ago` : `in ${duration(at - now)}`;
}

/** `/nix/store/<32 chars>-name` -> `<first 8>…-name`; the full path stays in --json output. */
export function shortStorePath(path: string | null): string {
  if (path === null) return '-';
  const m = /^\/nix\/store\/([0-9a-z]{32})-(.+)$/.exec(path);
  return m ? `${m[1]!.slice(0, 8)}…-${m[2]}` : path;
}

/** Second-precision ISO time (what acks and documents carry). */
export function iso(ms: number): string {
  return isoTime(ms);
}

/** Left-aligned columns; the last column is not padded (it holds free text). */
export function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)];
}


export { waveLabel, listWithMore } from '../reconciler/words.ts';
