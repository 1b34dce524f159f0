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
  /** `switching` until the switch returned; `switched` after. Recovery treats them differently. */
  phase: z.enum(['switching', 'switched']),
});
export type PendingRecord = z.infer<typeof PendingRecord>;

export const PENDING_FILE = 'pending.json';

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
