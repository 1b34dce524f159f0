// Layout of a control plane's tree directory (the `--tree DIR` of `cp serve`, `cp sync`, `nginx-config`),
// as far as readers outside the control plane need it (operator status/trace, the dashboard):
//   current -> versions/<name>   the installed, verified tree (swapped atomically by `cp sync`)
//   acks/                        written by the ack endpoint only; kept across syncs; served as /acks/
//   .ack-log/acks.log            the ack endpoint's append-only log (a dotfile: never served); its
//                                later segments acks-NNNNNN.log sit beside it (protocol/ack-log.ts)
// A directory without `current` is served as it is (the zero-setup default: point `cp serve` at a tree
// that `nixfleet publish` wrote); acks/ then sits inside it. The rest of the layout (versions/, nginx/)
// is the control plane's own: control-plane/tree-dir.ts.
import { existsSync, lstatSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { ACK_LOG_FILE } from './ack-log.ts';

export const CURRENT_LINK = 'current';
export const ACKS_DIR = 'acks';
/** The ack endpoint's default log directory inside the tree directory. */
export const ACK_LOG_DIR = '.ack-log';

export function hasInstalledTree(treeDir: string): boolean {
  try {
    lstatSync(join(treeDir, CURRENT_LINK));
    return true;
  } catch {
    return false;
  }
}

/** The directory whose files are served (real path), or null when nothing is installed. */
export function servedRoot(treeDir: string): string | null {
  const link = join(treeDir, CURRENT_LINK);
  if (hasInstalledTree(treeDir)) {
    try {
      return realpathSync(link);
    } catch {
      return null; // dangling link
    }
  }
  return existsSync(treeDir) ? realpathSync(treeDir) : null;
}

/** `DIR/acks` in both layouts (the ack endpoint keeps them beside `current`). */
export function acksRoot(treeDir: string): string {
  return join(treeDir, ACKS_DIR);
}

/** The ack endpoint's default log directory (`DIR/.ack-log`). */
export function ackLogDir(treeDir: string): string {
  return join(treeDir, ACK_LOG_DIR);
}

/** The ack endpoint's default log (`DIR/.ack-log/acks.log`): the one place this path is built. */
export function ackLogPath(treeDir: string): string {
  return join(ackLogDir(treeDir), ACK_LOG_FILE);
}
