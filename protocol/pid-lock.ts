// One holder at a time for a piece of durable local state (an agent's state directory, a published tree,
// a dashboard's output). The lock is a file created with O_EXCL holding the owner's PID. A lock whose
// owner is gone (kill -9, reboot) is stale and is taken over, so a crash never wedges the next run.
// No fsync of the lock: after a crash or a reboot its owner is dead anyway, which is what makes it stale.
import {
  closeSync,
  linkSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { resolve } from 'node:path';

export interface HeldPidLock {
  readonly path: string;
  /** Idempotent; removes the file only while it still names this process. */
  release(): void;
}

/** `heldBy`: the owner's PID, 0 when the file kept changing under us and no owner could be read. */
export type PidLockResult =
  { acquired: true; lock: HeldPidLock } | { acquired: false; heldBy: number };

export interface PidLockOptions {
  /** File mode of a new lock file (default 0o644). */
  mode?: number;
}

const TAKEOVER_ATTEMPTS = 3;

// Lock files this process holds right now. A file naming our own PID is ours only if it is in here;
// otherwise it was left by an earlier process that had the same PID (PIDs repeat after a reboot or in a
// fresh container) and is as stale as any other dead owner's.
const heldHere = new Set<string>();

/** True while a process with this PID exists (ours, or another user's: EPERM). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to another user.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The PID a lock file names, or undefined when it is missing, empty or garbled. */
export function readLockOwner(path: string): number | undefined {
  try {
    const n = Number(readFileSync(path, 'utf8').trim());
    return Number.isSafeInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

function ownerIsLive(path: string, owner: number): boolean {
  return owner === process.pid ? heldHere.has(path) : pidAlive(owner);
}

/**
 * Moves a stale lock aside under a name private to this process and deletes it. If, between our read
 * and the rename, another process had already taken the stale lock over and written a fresh one, the
 * file moved aside is that fresh lock: it is linked back (unless yet another lock appeared meanwhile).
 */
function removeStale(path: string, staleOwner: number | undefined): void {
  const aside = `${path}.stale.${process.pid}`;
  try {
    renameSync(path, aside);
  } catch {
    return; // gone already: someone else removed or took it over; the caller retries
  }
  const moved = readLockOwner(aside);
  if (moved !== staleOwner && moved !== undefined && ownerIsLive(path, moved)) {
    try {
      linkSync(aside, path);
    } catch {
      /* a newer lock is in place: that one wins */
    }
  }
  unlinkSync(aside);
}

/** Never waits: either the lock is taken now, or the live owner's PID is returned. */
export function tryAcquirePidLock(lockFile: string, opts: PidLockOptions = {}): PidLockResult {
  const path = resolve(lockFile);
  for (let attempt = 0; attempt < TAKEOVER_ATTEMPTS; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, 'wx', opts.mode ?? 0o644);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const owner = readLockOwner(path);
      if (owner !== undefined && ownerIsLive(path, owner))
        return { acquired: false, heldBy: owner };
      // Dead owner, or an empty/garbled file whose writer died between create and write.
      removeStale(path, owner);
      continue;
    }
    try {
      writeSync(fd, `${process.pid}\n`);
    } finally {
      closeSync(fd);
    }
    heldHere.add(path);
    let released = false;
    return {
      acquired: true,
      lock: {
        path,
        release() {
          if (released) return;
          released = true;
          heldHere.delete(path);
          if (readLockOwner(path) !== process.pid) return;
          try {
            unlinkSync(path);
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
          }
        },
      },
    };
  }
  return { acquired: false, heldBy: readLockOwner(path) ?? 0 };
}
