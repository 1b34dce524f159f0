// A copy of the built `nixfleet` command (bin/, dist/, package.json; node_modules linked) whose
// dist/build-id the test sets: to this checkout's command, a view server run from the copy is a server of
// another build (cli/view-server.ts BuildCheck), and rewriting the copy's build-id is an upgrade in place.
import { copyFileSync, cpSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** This checkout's build (dist/build-id, what bin/nixfleet.js runs). */
export function checkoutBuild(): string {
  return readFileSync(join(ROOT, 'dist', 'build-id'), 'utf8').trim();
}

/** A build id no checkout has: `sha256:` and 64 times `digit`. */
export const fakeBuild = (digit: string) => `sha256:${digit.repeat(64)}`;

export function builtCopy(
  dir: string,
  build: string,
): { bin: string; setBuild: (id: string) => void } {
  for (const part of ['bin', 'dist'])
    cpSync(join(ROOT, part), join(dir, part), { recursive: true });
  copyFileSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  const setBuild = (id: string) => writeFileSync(join(dir, 'dist', 'build-id'), `${id}\n`);
  setBuild(build);
  return { bin: join(dir, 'bin', 'nixfleet.js'), setBuild };
}
