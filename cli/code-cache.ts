// Runs the `nixfleet` command from dist/main.cjs (the whole CLI as one script; dist/agent.cjs for
// `agent`, that command alone; dist/views.cjs for `status` and `trace`, those two alone) with V8's
// code cache kept in a directory, so a short run does not compile its JavaScript again (issue 10:
// `agent --once` runs every minute on every host, and compiling ~1 MB of JavaScript was a third of
// its CPU).
// Node 20 caches compiled code only for scripts (node:vm's cachedData), not for ES modules, and has no
// `module.enableCompileCache` (Node >= 22.1): hence a second, single-file build of the same CLI.
//
// Where: NIXFLEET_CODE_CACHE, else the first directory of systemd's CACHE_DIRECTORY (the agent's unit
// sets CacheDirectory=), created 0700 if missing. Neither set: bin/nixfleet.js loads the ES-module
// build as before.
//
// A cache file is compiled code the process will run, so it is trusted only as far as the directory
// is: both must belong to this process's user and be writable by nobody else, or the cache is neither
// read nor written. Its name carries the SHA-256 of the script and the Node version, so a rebuilt or
// upgraded CLI never meets an old cache (V8 itself also refuses a cache of another V8 or other flags,
// then it is written anew). The cache is an optimisation only: a missing, refused or unwritable cache
// costs compile time, never a failed run.
import { createHash } from 'node:crypto';
import {
  closeSync,
  constants as fs,
  fstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { Script, constants as vm } from 'node:vm';
import { operatorCacheDir, ownedByThisUser } from './operator-paths.ts';

/** What dist/main.cjs, dist/agent.cjs and dist/views.cjs export (cli/main.ts). */
interface Cli {
  main(argv: string[]): Promise<number>;
  endQuietlyWhenOutputCloses(): void;
}

const CACHE_PREFIX = 'nixfleet-cli-';
const CACHE_SUFFIX = '.v8cache';

/** The cache file's bytes when it exists and is trusted; undefined otherwise. */
function readTrusted(file: string): Buffer | undefined {
  let fd: number;
  try {
    fd = openSync(file, fs.O_RDONLY | fs.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    return st.isFile() && ownedByThisUser(st) ? readFileSync(fd) : undefined;
  } finally {
    closeSync(fd);
  }
}

/**
 * Atomically replaces the cache (0600) and drops the caches of other builds of the same script
 * (names starting with `prefix`); failures are ignored.
 */
function writeCache(dir: string, prefix: string, file: string, data: Buffer): void {
  const tmp = join(dir, `.${basename(file)}.${process.pid}.tmp`);
  try {
    writeFileSync(tmp, data, { mode: 0o600, flag: 'wx' });
    renameSync(tmp, file);
    for (const f of readdirSync(dir))
      if (f.startsWith(prefix) && f.endsWith(CACHE_SUFFIX) && f !== basename(file))
        unlinkSync(join(dir, f));
  } catch {
    try {
      unlinkSync(tmp);
    } catch {
      // already gone
    }
  }
}

/** The compiled script, the CLI it exported and where its cache goes. */
interface Loaded {
  script: Script;
  cli: Cli;
  dir: string;
  prefix: string;
  file: string;
  dirTrusted: boolean;
  /** A trusted cache file was there and handed to V8 (whether V8 took it is `cachedDataRejected`). */
  offered: boolean;
}

/**
 * Reads and compiles `bundle` with the cache in `dir` and runs its top level. Its own function so that
 * the file's bytes and the cache's bytes (~1.4 MB for agent.cjs) are garbage once it returns, not held
 * through the run.
 */
function load(bundle: string, dir: string): Loaded {
  // Hashed as bytes: hashing the decoded string would encode it back to UTF-8 first.
  const bytes = readFileSync(bundle);
  const key = createHash('sha256')
    .update(`${process.version} ${process.arch}\n`)
    .update(bytes)
    .digest('hex')
    .slice(0, 32);
  // One cache per script (main.cjs, agent.cjs, views.cjs): a run replaces only its own script's
  // older caches.
  const prefix = `${CACHE_PREFIX}${basename(bundle, '.cjs')}-`;
  const file = join(dir, `${prefix}${key}${CACHE_SUFFIX}`);
  let dirTrusted = false;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    dirTrusted = ownedByThisUser(statSync(dir));
  } catch {
    // cannot be created or read: no cache
  }
  const cached = dirTrusted ? readTrusted(file) : undefined;

  // The script is the CommonJS wrapper Node itself puts around a module (scripts/build.mjs writes it
  // so): a function expression, compiled as a script so that its code can be cached.
  const script = new Script(bytes.toString('utf8'), {
    filename: bundle,
    cachedData: cached,
    // The bundle imports a few packages at run time (cron): through Node's ordinary loader.
    importModuleDynamically: vm.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  const module = { exports: {} as Cli };
  (script.runInThisContext() as (...a: unknown[]) => void).call(
    module.exports,
    module.exports,
    createRequire(bundle),
    module,
    bundle,
    dirname(bundle),
  );
  return { script, cli: module.exports, dir, prefix, file, dirTrusted, offered: !!cached };
}

/**
 * Where an operator view (`status`, `trace`) keeps its code cache when NIXFLEET_CODE_CACHE does not
 * say: `code/` in the view's own cache directory (cli/operator-paths.ts operatorCacheDir). Undefined
 * for any other command and with `--no-cache` (then nothing is read or written). A warm
 * `status --host` at 10,000 hosts spends ~0.05 s of its ~0.5 s compiling without it
 * (docs/benchmarks.md "operator"); the agent's unit sets its own directory.
 */
export function operatorCodeCacheDir(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  const dir = operatorCacheDir(argv, env);
  return dir === undefined ? undefined : join(dir, 'code');
}

/** Loads `bundle` (a CommonJS script) with the code cache in `dir`, runs the CLI, keeps the cache. */
export async function runWithCodeCache(
  bundle: string,
  dir: string,
  argv: string[],
): Promise<number> {
  const { script, cli, prefix, file, dirTrusted, offered } = load(bundle, dir);
  cli.endQuietlyWhenOutputCloses();
  const code = await cli.main(argv);
  // V8 sets cachedDataRejected to false only when it took the cache. A new cache is made after the
  // run, so it holds every function this command compiled, not only the top level: the next run of
  // the same command compiles (almost) nothing.
  const used = offered && script.cachedDataRejected === false;
  const write = dirTrusted && !used;
  if (write) writeCache(dir, prefix, file, script.createCachedData());
  // What happened, for whoever wonders whether the cache works (NIXFLEET_DEBUG, as cli/main.ts).
  if (process.env['NIXFLEET_DEBUG']) {
    const read = !dirTrusted
      ? 'untrusted directory'
      : !offered
        ? 'none'
        : used
          ? 'used'
          : 'refused by V8';
    process.stderr.write(`nixfleet: code cache ${file}: ${read}${write ? ', written' : ''}\n`);
  }
  return code;
}
