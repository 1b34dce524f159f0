// The pending-activation record: written and fsynced BEFORE the switch, so that whatever happens next
// (kill -9, power loss, reboot) the next run knows exactly which generation to restore and by when the
// new one must have been confirmed.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { IsoTime, StorePath, Digest } from '../protocol/schemas/common.ts';
import { Probe } from '../protocol/schemas/release.ts';
import type { StateDir } from './state-dir.ts';

export const PendingRecord = z.strictObject({
  target: StorePath,
  previous: z.strictObject({ number: z.number().int().min(1), path: z.string().min(1).max(1024) }),
  deadline: IsoTime,
  bootId: z.string().max(64).nullable(),
  releaseVersion: z.number().int().min(1),
  rolloutId: Digest.nullable(),
  startedAt: IsoTime,
  /** From the signed manifest, so a restarted agent can finish the confirm window offline. */
  probes: z.array(Probe).max(32),
  healthyPassesRequired: z.number().int().min(1),
  /**
   * `switching` until the switch returned; `switched` after. The reboot path (activation.ts):
   * `booting` = staged with `boot`, reboot requested (bootId = the boot before it); `booted` = running
   * the target after that reboot, in its confirm window; `rebooting-back` = not confirmed, the previous
   * generation staged with `boot` and a reboot requested (bootId = the boot before that one).
   * Recovery treats each differently.
   */
  phase: z.enum(['switching', 'switched', 'booting', 'booted', 'rebooting-back']),
  /** Why a `rebooting-back` record rolls back: reported in the rolled-back ack after the reboot. */
  rollbackReason: z.string().max(512).optional(),
});
export type PendingRecord = z.infer<typeof PendingRecord>;

export const PENDING_FILE = 'pending.json';

/** Phases of the reboot path: undone with `boot` + reboot, never with a live switch. */
export function isBootPhase(phase: PendingRecord['phase']): boolean {
  return phase === 'booting' || phase === 'booted' || phase === 'rebooting-back';
}

export function readPending(state: StateDir): PendingRecord | undefined {
  return state.read(PENDING_FILE, PendingRecord);
}

export function writePending(state: StateDir, record: PendingRecord): void {
  state.write(PENDING_FILE, PendingRecord, record);
}

export function clearPending(state: StateDir): void {
  state.remove(PENDING_FILE);
}

/** Linux boot id: a changed value tells recovery the host rebooted during the confirm window. */
export function currentBootId(): string | null {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim().slice(0, 64);
  } catch {
    return null;
  }
}
