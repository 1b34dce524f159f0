// A copy of the built `nixfleet` command (bin/, dist/, package.json; node_modules linked to the
// checkout's, since the scripts import packages), for tests that need the command somewhere else: with
// only some of dist/ (tests/cli/missing-dist.test.ts), or with a dist/build-id of the test's own, so that
// a view server run from it is a server of another build (cli/view-server.ts BuildCheck) and rewriting
// its build-id is an upgrade in place.
import { copyFileSync, cpSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** This checkout's build (dist/build-id, what bin/nixfleet.js runs). */
export function checkoutBuild(): string {
  return readFileSync(join(ROOT, 'dist', 'build-id'), 'utf8').trim();
}

/** A build id no checkout has: `sha256:` and 64 times `digit`. */
export const fakeBuild = (digit: string) => `sha256:${digit.repeat(64)}`;

/**
 * The command copied into `dir` (which must not hold bin/ or dist/ yet): bin/, package.json and dist/,
 * all of it or only `distFiles`. Returns its bin/nixfleet.js.
 */
export function commandCopy(dir: string, distFiles?: readonly string[]): string {
  cpSync(join(ROOT, 'bin'), join(dir, 'bin'), { recursive: true });
  if (distFiles === undefined) cpSync(join(ROOT, 'dist'), join(dir, 'dist'), { recursive: true });
  else {
    mkdirSync(join(dir, 'dist'));
    for (const f of distFiles) copyFileSync(join(ROOT, 'dist', f), join(dir, 'dist', f));
  }
  copyFileSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return join(dir, 'bin', 'nixfleet.js');
}

/** The whole built command copied into `dir`, its build-id set to `build` (and settable again). */
export function builtCopy(
  dir: string,
  build: string,
): { bin: string; setBuild: (id: string) => void } {
  const bin = commandCopy(dir);
  const setBuild = (id: string) => writeFileSync(join(dir, 'dist', 'build-id'), `${id}\n`);
  setBuild(build);
  return { bin, setBuild };
}
