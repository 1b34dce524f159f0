// Tests that need a system tool (nix, nginx, chromium, openssl, ip netns) call requireTool().
// On a developer's machine a missing tool skips the test loudly; in CI (CI=true) it fails the test.
import { execFileSync } from 'node:child_process';

let skipped = 0;
export function skipCount(): number {
  return skipped;
}

export function hasTool(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Returns true when the test may proceed; false means "skip" (only outside CI). Throws in CI. */
export function requireTool(cmd: string, why: string): boolean {
  if (hasTool(cmd)) return true;
  if (process.env.CI === 'true')
    throw new Error(`required tool '${cmd}' is missing in CI (${why})`);
  skipped++;
  console.warn(`\n  !!! SKIPPED (${why}): '${cmd}' is not installed on this machine\n`);
  return false;
}
