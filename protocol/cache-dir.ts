// The operator's cache directory, the one rule for every command that keeps one (the views, `site
// build`, the view server) and for the client that finds their files from argv alone
// (cli/operator-paths.ts). Node built-ins only: that client stays a few kilobytes.
import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * $XDG_CACHE_HOME/nixfleet, else ~/.cache/nixfleet ($HOME, else the account's home when $HOME is
 * unset); null when there is no home to put it in ($HOME set but empty: no cache).
 */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string | null {
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'nixfleet');
  const home = env.HOME ?? homedir();
  return home ? join(home, '.cache', 'nixfleet') : null;
}
