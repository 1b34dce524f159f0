// The one rule for what a process keeps for its user alone (caches, memos, the view server's socket):
// trusted only when this user owns it and no one else may write it. Node built-ins only, so that the
// light loaders bin/nixfleet.js runs before the CLI (cli/code-cache.ts, cli/view-client.ts) share it.
import type { Stats } from 'node:fs';

/** Group/other write bits: someone else could plant what is read from there. */
const OTHERS_WRITE = 0o022;

/** Owned by this process's user and writable by no one else (no user id to compare: not trusted). */
export function ownedByThisUser(st: Stats): boolean {
  const uid = process.getuid?.();
  return uid !== undefined && st.uid === uid && (st.mode & OTHERS_WRITE) === 0;
}
