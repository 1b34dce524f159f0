// The pending-activation record: written and fsynced BEFORE the switch, so that whatever happens next
// (kill -9, power loss, reboot) the next run knows exactly which generation to restore and by when the
// new one must have been confirmed.
import { readFileSync, renameSync } from 'node:fs';
import { z } from 'zod';
import {
  IsoTime,
  StorePath,
  Digest,
  Probe,
  ComplianceMode,
  RuntimeControl,
} from '../protocol/index.ts';
import { isLocalStateError, LocalStateError, type StateDir } from './state-dir.ts';

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
  /** The manifest's runtime compliance controls (agent/compliance.ts), run after the probes pass. */
  compliance: z
    .strictObject({ mode: ComplianceMode, runtime: z.array(RuntimeControl).max(32) })
    .optional(),
  /**
   * The generation created for the target before its switch script ran (activators that stage: nix),
   * written once it exists. Informational: a record still `switching` is undone by restoring
   * `previous`, never by running this one.
   */
  staged: z
    .strictObject({ number: z.number().int().min(1), path: z.string().min(1).max(1024) })
    .optional(),
  /**
   * `switching` until the switch returned (the profile may already hold a staged generation of the
   * target that never ran); `switched` after. The reboot path (activation.ts):
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

// Storage: two copies, each written atomically and fsynced (PENDING_FILE first, then PENDING_COPY_FILE),
// removed in the opposite order. A torn, truncated or garbled copy (disk trouble, a hand edit) is
// survived by the other; a copy that is missing while the other is readable is the state between two
// steps, or a lost file: either way the readable one is the record. Both unreadable -> readPending
// reports it (`damaged`) and recovery applies the fail-safe (activation.ts: recoverUnreadablePending).
export const PENDING_FILE = 'pending.json';
export const PENDING_COPY_FILE = 'pending.copy.json';

/** Phases of the reboot path: undone with `boot` + reboot, never with a live switch. */
export function isBootPhase(phase: PendingRecord['phase']): boolean {
  return phase === 'booting' || phase === 'booted' || phase === 'rebooting-back';
}

export type PendingRead =
  | { kind: 'none' }
  | { kind: 'found'; record: PendingRecord; damaged: { file: string; reason: string }[] }
  | { kind: 'damaged'; damaged: { file: string; reason: string }[] };

type CopyRead =
  | { kind: 'missing' }
  | { kind: 'ok'; record: PendingRecord }
  | { kind: 'damaged'; file: string; reason: string };

function readCopy(state: StateDir, name: string): CopyRead {
  try {
    const record = state.read(name, PendingRecord);
    return record ? { kind: 'ok', record } : { kind: 'missing' };
  } catch (e) {
    if (!isLocalStateError(e)) throw e;
    return { kind: 'damaged', file: e.file, reason: e.detail };
  }
}

/** Both copies, reconciled: never throws for a damaged copy. */
export function readPendingCopies(state: StateDir): PendingRead {
  const copies = [readCopy(state, PENDING_FILE), readCopy(state, PENDING_COPY_FILE)];
  const damaged = copies.flatMap((c) =>
    c.kind === 'damaged' ? [{ file: c.file, reason: c.reason }] : [],
  );
  // The first copy is written first: when both are readable and differ, it is the newer one.
  const ok = copies.find((c): c is { kind: 'ok'; record: PendingRecord } => c.kind === 'ok');
  if (ok) return { kind: 'found', record: ok.record, damaged };
  return damaged.length ? { kind: 'damaged', damaged } : { kind: 'none' };
}

/** The pending record; throws LocalStateError when it exists but no copy is readable. */
export function readPending(state: StateDir): PendingRecord | undefined {
  const r = readPendingCopies(state);
  if (r.kind === 'damaged')
    throw new LocalStateError(
      r.damaged[0]!.file,
      'damaged',
      r.damaged.map((d) => `${d.file}: ${d.reason}`).join('; '),
    );
  return r.kind === 'found' ? r.record : undefined;
}

export function writePending(state: StateDir, record: PendingRecord): void {
  state.write(PENDING_FILE, PendingRecord, record);
  state.write(PENDING_COPY_FILE, PendingRecord, record);
}

export function clearPending(state: StateDir): void {
  state.remove(PENDING_COPY_FILE);
  state.remove(PENDING_FILE);
}

/** Keeps unreadable copies for inspection (`<name>.damaged-<ms>`) and removes them from the record. */
export function setAsideDamagedPending(state: StateDir, nowMs: number): string[] {
  const kept: string[] = [];
  for (const name of [PENDING_COPY_FILE, PENDING_FILE]) {
    const c = readCopy(state, name);
    if (c.kind !== 'damaged') continue;
    const aside = `${state.path(name)}.damaged-${nowMs}`;
    renameSync(state.path(name), aside);
    kept.push(aside);
  }
  return kept;
}

/** Linux boot id: a changed value tells recovery the host rebooted during the confirm window. */
export function currentBootId(): string | null {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim().slice(0, 64);
  } catch {
    return null;
  }
}
