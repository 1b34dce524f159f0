// One agent run at a time per state directory (protocol/pid-lock.ts: a lock whose owner died is taken
// over, so a crash never wedges the timer). A locked run reports the holder and exits cleanly.
import { join } from 'node:path';
import { tryAcquirePidLock, type HeldPidLock, type PidLockResult } from '../protocol/index.ts';

export type HeldLock = HeldPidLock;
export type LockResult = PidLockResult;

export const LOCK_FILE = 'agent.lock';

export function acquireLock(stateDir: string): LockResult {
  // 0600: the state directory is the agent's alone.
  return tryAcquirePidLock(join(stateDir, LOCK_FILE), { mode: 0o600 });
}
