// Layout of a control plane's tree directory (the `--tree DIR` of `cp serve`, `cp sync`, `nginx-config`):
//   current -> versions/<name>   the installed, verified tree (swapped atomically by `cp sync`)
//   versions/<name>/             immutable copies of verified trees
//   acks/                        written by the ack endpoint only; kept across syncs; served as /acks/
//   nginx/revoked-serials.map    nginx `map` bodies derived from the signed revocations
//   nginx/revoked-hosts.map
// A directory without `current` is served as it is (the zero-setup default: point `cp serve` at a tree
// that `nixfleet publish` wrote); acks/ then sits inside it.
import { existsSync, lstatSync, realpathSync } from 'node:fs';
import { join } from 'node:path';

export const CURRENT_LINK = 'current';
export const VERSIONS_DIR = 'versions';
export const ACKS_DIR = 'acks';
export const NGINX_DIR = 'nginx';
export const REVOKED_SERIALS_MAP = 'nginx/revoked-serials.map';
export const REVOKED_HOSTS_MAP = 'nginx/revoked-hosts.map';

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

export function acksRoot(treeDir: string): string {
  return join(treeDir, ACKS_DIR);
}
