// Small text helpers shared by the operator's terminal output (status, trace).
import { isoTime } from '../protocol/index.ts';
import { humanDuration } from '../reconciler/index.ts';

/** A span in milliseconds, in the one duration style (reconciler/time.ts humanDuration): "3 min", "2 h 5 min". */
export function duration(ms: number): string {
  return humanDuration(Math.abs(ms) / 1000);
}

/** Age of an instant relative to `now`: "3 min ago", "in 5 min", "never". */
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

/**
 * Second-precision ISO time (what acks and documents carry). Remembered by second: a fleet's latest
 * acks fall on few distinct seconds, and formatting a Date is ~1.5 us (10,000 hosts per status).
 */
export function iso(ms: number): string {
  const second = Math.floor(ms / 1000);
  let s = ISO_BY_SECOND.get(second);
  if (s === undefined) {
    if (ISO_BY_SECOND.size >= ISO_MEMO_MAX) ISO_BY_SECOND.clear();
    ISO_BY_SECOND.set(second, (s = isoTime(ms)));
  }
  return s;
}
const ISO_BY_SECOND = new Map<number, string>();
/** Bounds the memo (a view of 10,000 hosts with every ack on its own second stays near it). */
const ISO_MEMO_MAX = 16_384;

/** Left-aligned columns; the last column is not padded (it holds free text). */
export function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

export { waveLabel, listWithMore } from '../reconciler/index.ts';

/**
 * Text signed by someone else (a control's evidence, an ack's reason) on one table row: line breaks
 * and tabs become visible escapes, so a multi-line excerpt cannot fake further rows. Other control
 * characters are escaped by the terminal guard (cli/terminal.ts) at the sink.
 */
export function oneLine(text: string): string {
  return text
    .replace(/\\/g, '\\\\')
    .replace(/\r/g, '\\r')
    .replace(/\n/g, '\\n')
    .replace(/\t/g, '\\t');
}
