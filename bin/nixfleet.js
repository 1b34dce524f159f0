#!/usr/bin/env node
// The `nixfleet` command runs the compiled JavaScript in dist/ (scripts/build.mjs; built by `npm ci`
// through `prepare`, by `npm test` and by the Nix package). A checkout that was never built says so
// instead of falling back to compiling TypeScript at every start.
// This file is CommonJS (bin/package.json): an ES-module entry makes Node set up its ES-module loader
// (~20 internal modules, fs/promises, readline) and wrap every built-in it imports, ~10 ms of a
// timer-mode `agent --once` (issue 10), which with a code cache loads nothing else as an ES module.
'use strict';
// `nixfleet agent --once` (the systemd timer's run) lives for a fraction of a second: zod's JIT, which
// compiles a parser per object schema on its first use, costs such a run more CPU than it saves. It has
// to be switched off before any schema is built, so here, before the CLI loads (issue 10).
// zod keeps its configuration on globalThis (`__zod_globalConfig`, shared by every copy of zod 4 in
// the process; dist/ bundles its own copy), so it is set here without loading zod at all.
if (process.argv[2] === 'agent' && process.argv.includes('--once'))
  globalThis.__zod_globalConfig = { ...globalThis.__zod_globalConfig, jitless: true };
// The script each command runs from when a code cache is kept (scripts/build.mjs builds them: the agent's
// and the operator views' hold only their commands, main.cjs every command). Named once, here: the choice
// below and the missing-build check read this table.
const SCRIPT_OF = new Map([
  ['agent', 'agent.cjs'],
  ['status', 'views.cjs'],
  ['trace', 'views.cjs'],
]);
const DIST_FILES = [
  'main.js',
  'main.cjs',
  'code-cache.cjs',
  'view-client.cjs',
  ...SCRIPT_OF.values(),
];
// The loaders name the file they did not find first, in quotes ("Cannot find module '...'", "open '...'");
// a script that is there but requires something missing (say, a package) names that instead.
const NOT_BUILT = new RegExp(
  `^[^']*'[^']*/dist/(${DIST_FILES.map((f) => f.replaceAll('.', '\\.')).join('|')})'`,
);
const missing = (e) => {
  const notFound = ['ERR_MODULE_NOT_FOUND', 'MODULE_NOT_FOUND', 'ENOENT'].includes(e?.code);
  if (!notFound || !NOT_BUILT.test(String(e?.message))) throw e;
  process.stderr.write(
    'nixfleet: dist/ is missing or incomplete: run `npm run build` (or `npm ci`) in the nixfleet checkout\n',
  );
  process.exit(2);
};
// With a code-cache directory (NIXFLEET_CODE_CACHE, or systemd's CACHE_DIRECTORY: the agent's unit
// sets CacheDirectory=), the CLI runs from one script whose compiled code V8 keeps there
// (cli/code-cache.ts); a timer-mode `agent --once` then compiles almost nothing (issue 10).
// The operator's views (`status`, `trace`) keep one by default beside their verified-ack cache
// (cli/code-cache.ts operatorCodeCacheDir; none with --no-cache).
const OPERATOR_VIEWS = [...SCRIPT_OF]
  .filter(([, script]) => script === 'views.cjs')
  .map(([c]) => c);
async function run() {
  const argv = process.argv.slice(2);
  // `status` and `trace` of a tree a view server keeps warm (`nixfleet views serve`) are answered by it
  // (cli/view-client.ts: the same look, run in that process); with none, the command looks itself.
  if (OPERATOR_VIEWS.includes(argv[0])) {
    let client;
    try {
      client = require('../dist/view-client.cjs');
    } catch (e) {
      missing(e);
    }
    const served = await client.askViewServer(argv);
    if (served !== undefined) return served;
  }
  const codeCache = () => {
    try {
      return require('../dist/code-cache.cjs');
    } catch (e) {
      missing(e);
    }
  };
  let cacheDir = process.env.NIXFLEET_CODE_CACHE || process.env.CACHE_DIRECTORY?.split(':')[0];
  if (!cacheDir && OPERATOR_VIEWS.includes(argv[0]))
    cacheDir = codeCache().operatorCodeCacheDir(argv);
  if (cacheDir) {
    const { runWithCodeCache } = codeCache();
    // `agent` runs from a script holding that command alone, the operator's views from one holding
    // theirs (scripts/build.mjs: each under half the size of main.cjs, so less to read, hash,
    // deserialise and keep in memory every minute on every host, or at every look at the fleet).
    const script = SCRIPT_OF.get(argv[0]) ?? 'main.cjs';
    const bundle = require('node:path').join(__dirname, '..', 'dist', script);
    return runWithCodeCache(bundle, cacheDir, argv).catch(missing);
  }
  const cli = await import('../dist/main.js').catch(missing);
  cli.endQuietlyWhenOutputCloses();
  return cli.main(argv);
}
run().then((code) => {
  process.exitCode = code;
});
