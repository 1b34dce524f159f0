// Maintenance windows: each is a cron expression (UTC) for the window's start plus a duration.
// Evaluated purely from `now`; parsed expressions are cached because parsing dominates the cost.
// `cron` (and the date library under it) is loaded on the first window only: most channels have none,
// and a timer-driven agent run would otherwise pay for loading it every time (issue 10).
import { createRequire } from 'node:module';
import type { CronTime } from 'cron';
import type { MaintenanceWindow } from '../protocol/index.ts';

const parsed = new Map<string, CronTime>();
let cron: typeof import('cron') | undefined;

function cronTime(expr: string): CronTime {
  let c = parsed.get(expr);
  // Stryker disable next-line ConditionalExpression: a memo: `true` re-parses the same expression (equivalent); `false` never opens a window and fails the window tests
  if (c === undefined) {
    cron ??= createRequire(import.meta.url)('cron') as typeof import('cron');
    // Stryker disable next-line StringLiteral: the zone that counts is the one getNextDateFrom() is given (below); the constructor's serves only sendAt(), which reads the clock and is never used
    c = new cron.CronTime(expr, 'UTC');
    parsed.set(expr, c);
  }
  return c;
}

export type WindowVerdict =
  | { open: true }
  | { open: false; /** ms of the next window start */ nextStart: number | null; reason: string };

/** No windows means "always open". A window [start, start + duration) is open when a start lies in (now - duration, now]. */
export function maintenanceWindowAt(
  windows: readonly MaintenanceWindow[],
  now: number,
): WindowVerdict {
  if (windows.length === 0) return { open: true };
  let nextStart: number | null = null;
  for (const w of windows) {
    let c: CronTime;
    try {
      c = cronTime(w.cron);
    } catch (e) {
      // A window that cannot be parsed can never open: failing closed keeps a bad plan from disrupting hosts.
      continue;
    }
    const durationMs = w.durationMinutes * 60_000;
    // In UTC explicitly: without a zone, getNextDateFrom() reads the cron fields in the machine's local
    // zone (the CronTime's own zone is not applied), so hosts in different zones would disagree.
    const start = c.getNextDateFrom(new Date(now - durationMs), 'UTC').toMillis();
    if (start <= now) return { open: true };
    if (nextStart === null || start < nextStart) nextStart = start;
  }
  const list = windows.map((w) => `"${w.cron}" for ${w.durationMinutes} min`).join(', ');
  return {
    open: false,
    nextStart,
    reason:
      nextStart === null
        ? `no maintenance window can open (${list})`
        : `outside the maintenance windows (${list}); next opens at ${new Date(nextStart).toISOString()}`,
  };
}
