// Commands that keep a cache (status / trace: verified acks) must never read or fill the user's: every
// test process points XDG_CACHE_HOME at a fresh directory of its own, removed when the process exits.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function isolateCacheHome(): void {
  const cacheHome = mkdtempSync(join(tmpdir(), 'nixfleet-test-cache-'));
  process.env.XDG_CACHE_HOME = cacheHome;
  process.on('exit', () => rmSync(cacheHome, { recursive: true, force: true }));
}
