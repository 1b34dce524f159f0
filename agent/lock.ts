// One agent run at a time per state directory. The lock is a file created with O_EXCL holding the
// owner's PID; a lock whose owner no longer exists (kill -9, reboot) is stale and is taken over, so a
// crash never wedges the timer.
import { openSync, writeSync, closeSync, readFileSync, unlinkSync, renameSync } from 'node:fs';
import { join } from 'node:path';

export interface HeldLock {
  release(): void;
}

export type LockResult = { acquired: true; lock: HeldLock } | { acquired: false; heldBy: number };

export const LOCK_FILE = 'agent.lock';

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readOwner(path: string): number | undefined {
  try {
    const n = Number(readFileSync(path, 'utf8').trim());
    return Number.isSafeInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

export function acquireLock(stateDir: string): LockResult {
  const path = join(stateDir, LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      // No fsync: after a crash or reboot the owner PID is dead anyway, and the lock is taken over.
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      let released = false;
      return {
        acquired: true,
        lock: {
          release() {
            if (released) return;
            released = true;
            if (readOwner(path) === process.pid) unlinkSync(path);
          },
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const owner = readOwner(path);
    // An empty/garbled file is a lock whose writer died between create and write.
    if (owner !== undefined && owner !== process.pid && pidAlive(owner)) return { acquired: false, heldBy: owner };
    if (owner === process.pid) return { acquired: false, heldBy: owner };
    // Stale: move it aside atomically so two racing takers cannot both delete a fresh lock.
    try {
      renameSync(path, `${path}.stale.${process.pid}`);
      unlinkSync(`${path}.stale.${process.pid}`);
    } catch {
      /* another process took it over first; retry */
    }
  }
  const owner = readOwner(path);
  return { acquired: false, heldBy: owner ?? 0 };
}
