// Where the operator's views (`status`, `trace`) keep what they keep, found from their argv alone: their
// cache directory, the V8 code cache in it (cli/code-cache.ts), and the socket of the view server that
// serves a tree (cli/view-server.ts, cli/view-client.ts); and the rule for trusting what lies there.
// bin/nixfleet.js reaches this before any of the CLI loads, so it imports node built-ins only (and
// protocol/private-owner.ts, which does too: the loaders' bundles import it directly, not the face).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultCacheDir } from '../protocol/index.ts';

/** The commands that keep an operator cache directory. */
export const OPERATOR_VIEWS: ReadonlySet<string> = new Set(['status', 'trace']);

/**
 * The value of `--name` in argv (`--name V` or `--name=V`; the last one wins, as node:util parseArgs
 * takes it), or undefined. Scans up to `--`. A command's strict parse still judges the whole argv: this
 * only finds where its caches are.
 */
export function flagValue(argv: readonly string[], name: string): string | undefined {
  return flagValues(argv, name).at(-1);
}

/** Every value of `--name` in argv, in order (a repeatable option such as --acks-log), as flagValue scans. */
export function flagValues(argv: readonly string[], name: string): (string | undefined)[] {
  const values: (string | undefined)[] = [];
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') break;
    if (a === `--${name}`) values.push(argv[++i]);
    else if (a.startsWith(`--${name}=`)) values.push(a.slice(name.length + 3));
  }
  return values;
}

/** Whether argv has the boolean flag `--name` before any `--`. */
export function hasFlag(argv: readonly string[], name: string): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).includes(`--${name}`);
}

/**
 * Why a view server may not answer argv, or null when it may: only an operator view, and not one that
 * reads no cache (`--no-cache`), fetches from a control plane (`--url`) or asks for help (the dispatcher
 * prints that, no command runs). The client asks nothing else (cli/view-client.ts), the server serves
 * nothing else (cli/view-server.ts).
 */
export function notServable(argv: readonly string[]): string | null {
  if (!OPERATOR_VIEWS.has(argv[0] ?? '')) return `not an operator view: ${argv[0]}`;
  if (hasFlag(argv, 'no-cache') || flagValue(argv, 'url') !== undefined)
    return '--no-cache and --url looks are not served';
  if (hasFlag(argv, 'help') || argv.includes('-h')) return '--help is not a look';
  return null;
}

/**
 * An operator view's cache directory: `--cache-dir DIR`, else the one the view itself takes (protocol
 * defaultCacheDir). Undefined for any other command and with `--no-cache` (nothing is then read or
 * written).
 */
export function operatorCacheDir(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  if (!OPERATOR_VIEWS.has(argv[0] ?? '') || hasFlag(argv, 'no-cache')) return undefined;
  const dir = flagValue(argv, 'cache-dir') ?? defaultCacheDir(env);
  return dir === null || dir === '' ? undefined : dir;
}

/**
 * The socket of the view server of the tree whose real path is `realTree`, in the cache directory: one
 * server per tree and cache directory, found by name, so a client never has to ask which tree a server
 * serves before it connects (the server still checks).
 */
export function viewServerSocket(cacheDir: string, realTree: string): string {
  const tag = createHash('sha256').update(realTree).digest('hex').slice(0, 16);
  return join(cacheDir, `views-${tag}.sock`);
}

/** What scripts/build.mjs writes to dist/build-id: the digest of everything else it built. */
const BUILD_ID = /^sha256:[0-9a-f]{64}$/;
/** The build of code that runs from the TypeScript sources (tests, tsx): there is no dist/ beside it. */
export const SOURCE_BUILD = 'source';

/**
 * The build the module at `moduleUrl` belongs to: dist/build-id beside it (scripts/build.mjs), or
 * SOURCE_BUILD. A view server answers only clients of its own build (cli/view-server.ts): a server left
 * running across an upgrade would otherwise answer the new command with the old code's verification.
 */
export function buildIdOf(moduleUrl: string): string {
  try {
    const id = readFileSync(new URL('build-id', moduleUrl), 'utf8').trim();
    return BUILD_ID.test(id) ? id : SOURCE_BUILD;
  } catch {
    return SOURCE_BUILD;
  }
}

/**
 * What lies in the cache directory is trusted only as far as the rule of protocol/private-owner.ts:
 * compiled code (a foreign cache would be foreign code), the view server's socket (a foreign server
 * could print any fleet it liked), as the verified stores are.
 */
export { ownedByThisUser } from '../protocol/index.ts';
