// Closures whose activation failed or was rolled back are refused for a while (24 h by default), so a
// broken release does not flap a host between generations on every timer tick. Cleared by expiry or by
// the operator: locally (`nixfleet agent quarantine clear`) or fleet-wide by a signed control
// (`nixfleet control clear-quarantine` / `retry`, applied in agent/cycle.ts).
import { z } from 'zod';
import { IsoTime, StorePath, isoTime } from '../protocol/index.ts';
import type { StateDir } from './state-dir.ts';

export const QuarantineEntry = z.strictObject({
  target: StorePath,
  reason: z.string().max(512),
  since: IsoTime,
  until: IsoTime,
  /** Release that asked for the target when it failed (the reconciler may let a newer release retry). */
  releaseVersion: z.number().int().min(0),
});
export type QuarantineEntry = z.infer<typeof QuarantineEntry>;

const QuarantineFile = z.strictObject({ entries: z.array(QuarantineEntry).max(10_000) });

export const QUARANTINE_FILE = 'quarantine.json';

export class Quarantine {
  constructor(private readonly state: StateDir) {}

  private load(): QuarantineEntry[] {
    return this.state.read(QUARANTINE_FILE, QuarantineFile)?.entries ?? [];
  }

  private save(entries: QuarantineEntry[]): void {
    this.state.write(QUARANTINE_FILE, QuarantineFile, { entries });
  }

  /** Entries still in force at `nowMs` (expired ones are dropped from the file on the next write). */
  active(nowMs: number): QuarantineEntry[] {
    return this.load().filter((e) => Date.parse(e.until) > nowMs);
  }

  isQuarantined(target: string, nowMs: number): QuarantineEntry | undefined {
    return this.active(nowMs).find((e) => e.target === target);
  }

  add(
    target: string,
    reason: string,
    nowMs: number,
    hours: number,
    releaseVersion: number,
  ): QuarantineEntry {
    const entry: QuarantineEntry = {
      target,
      reason: reason.slice(0, 512),
      since: isoTime(nowMs),
      until: isoTime(nowMs + hours * 3600_000),
      releaseVersion,
    };
    const rest = this.active(nowMs).filter((e) => e.target !== target);
    this.save([...rest, entry]);
    return entry;
  }

  /** Removes every entry `matches` selects (operator controls: clear-quarantine, retry). Returns what was removed. */
  clearWhere(matches: (e: QuarantineEntry) => boolean, nowMs: number): QuarantineEntry[] {
    const entries = this.active(nowMs);
    const removed = entries.filter(matches);
    if (removed.length > 0) this.save(entries.filter((e) => !removed.includes(e)));
    return removed;
  }

  /** Removes one target, or every entry when target is undefined. Returns what was removed. */
  clear(target: string | undefined, nowMs: number): QuarantineEntry[] {
    const entries = this.active(nowMs);
    const removed = entries.filter((e) => target === undefined || e.target === target);
    this.save(entries.filter((e) => !removed.includes(e)));
    return removed;
  }
}
