// Compiles the `nixfleet` command to JavaScript (dist/), so a run pays neither TypeScript compilation
// nor loading tsx: one ESM entry plus lazily loaded chunks, one per subcommand group (cli/commands.ts
// imports each command module on demand; --splitting keeps those imports lazy).
// Runs in `prepare` (npm ci / npm install), before `npm test` and the demo, and in the Nix package build.
import { build } from 'esbuild';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tsImport } from 'tsx/esm/api';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = `${root}dist`;
// Built beside dist/ and swapped in at the end: a process already running from dist/ (an agent mid-run,
// a test spawning the CLI while `npm install` of this checkout runs `prepare`) never finds it half
// written or gone for the seconds a build takes (tests/nix/install.test.ts did that to e2e tests).
const outdir = `${root}dist.building-${process.pid}`;

// Source imports other folders through their faces (index.ts, scripts/faces.ts); esbuild's code splitting
// would put every module a face re-exports into the chunk of whoever imports one name from it, so the
// bundle reads each file with its face imports pointed at the declaring modules (start-up cost).
const faces = await tsImport('./faces.ts', import.meta.url);
const tree = new faces.Tree(root);
const directImports = {
  name: 'direct-imports',
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, (args) => {
      const contents = faces.directSource(tree, args.path);
      return contents === null ? undefined : { contents, loader: 'ts' };
    });
  },
};

// The one exception to `packages: 'external'`: zod is bundled. Loaded from node_modules it is ~95 ES
// modules, and their resolution and file reads cost a timer-mode `agent --once` (a new process every
// minute on every host) ~50 ms CPU and 3 MB of its ~250 ms and 67 MB; bundled it is one chunk, loaded
// only by commands that use schemas (issue 10; docs/benchmarks.md "agent-process"). Its licence is
// copied next to it.
// Of zod's ~750 KB, ~370 KB are the error messages of 40-odd languages (`z.locales`) and ~25 KB the
// JSON Schema importer (`z.fromJSONSchema`); this project uses neither (its messages are its own,
// protocol/schemas/issues.ts), yet every process that loads zod would compile them. The bundle takes
// only English (zod's default) of the locales and leaves the importer out; using either throws a
// clear error rather than failing silently.
const zodDir = dirname(fileURLToPath(import.meta.resolve('zod/package.json')));
const trimmedZodModules = {
  [join(zodDir, 'v4/locales/index.js')]:
    `export { default as en } from ${JSON.stringify(join(zodDir, 'v4/locales/en.js'))};`,
  [join(zodDir, 'v4/classic/from-json-schema.js')]:
    "export function fromJSONSchema() { throw new Error('nixfleet bundles zod without fromJSONSchema (scripts/build.mjs)'); }",
};
const bundleZod = {
  name: 'bundle-zod',
  setup(b) {
    const entry = fileURLToPath(import.meta.resolve('zod'));
    b.onResolve({ filter: /^zod$/ }, () => ({ path: entry, external: false }));
    b.onLoad(
      { filter: /zod[\\/]v4[\\/](locales[\\/]index|classic[\\/]from-json-schema)\.js$/ },
      (args) => {
        const contents = trimmedZodModules[args.path];
        return contents === undefined
          ? undefined
          : { contents, loader: 'js', resolveDir: dirname(args.path) };
      },
    );
  },
};

rmSync(outdir, { recursive: true, force: true });
try {
  await build({
    absWorkingDir: root,
    // The signature batch helper, the signing thread, the dashboard's ack intake helper and the view server's stat helper run in worker threads: each its own entry, loaded
    // by URL (protocol/module-thread.ts).
    entryPoints: {
      main: 'cli/main.ts',
      'batch-verify-worker': 'protocol/verify/batch-verify-worker.ts',
      'ed25519-signing-worker': 'protocol/ed25519-signing-worker.ts',
      'ack-preparse-worker': 'site-gen/ack-preparse-worker.ts',
      'stat-helper-worker': 'read-side/stat-helper-worker.ts',
    },
    outdir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    sourcemap: 'linked',
    // Dependencies stay in node_modules (resolved at run time, as npm installed them): the bundle holds only
    // this project's code, so a dependency update needs no rebuild and licences stay with their packages.
    packages: 'external',
    logLevel: 'warning',
    plugins: [directImports, bundleZod],
  });
  // zod is MIT-licensed: its notice travels with the copy bundled above.
  copyFileSync(join(zodDir, 'LICENSE'), `${outdir}/zod.LICENSE`);

  // The same CLI once more as ONE CommonJS script, for runs with a code cache (cli/code-cache.ts): Node 20
  // caches compiled code for scripts only, not for ES modules. A timer-mode `agent --once` compiled ~1 MB
  // of JavaScript in every run (a third of its CPU, issue 10). A script cannot import the ESM-only
  // packages (@noble/*, chokidar; Node 20 has no require(esm)), so this build bundles every dependency
  // but cron (CommonJS, loaded on demand) and copies their licences to dist/licenses/.
  const cjsOptions = {
    absWorkingDir: root,
    entryPoints: ['cli/main.ts'],
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    sourcemap: 'linked',
    external: ['cron'],
    // Three modules locate files next to themselves (the worker entry, package.json, cron): the scripts
    // sit beside main.js in dist/, so their own URL stands in for theirs.
    define: { 'import.meta.url': '__nixfleet_main_url' },
    // The file is the function CommonJS would wrap the module in, not a module itself: cli/code-cache.ts
    // compiles it as it is, where adding the wrapper at run time made a second copy of the whole text.
    banner: {
      js: "(function (exports, require, module, __filename, __dirname) {const __nixfleet_main_url = require('node:url').pathToFileURL(__filename).href;",
    },
    footer: { js: '})' },
    // No comments: two non-ASCII characters in dependency comments made V8 hold the whole text as a
    // two-byte string (1.5 instead of 0.77 MB of the agent's RSS; string literals are ASCII-escaped
    // anyway, esbuild's default charset). Checked below for agent.cjs.
    minifyWhitespace: true,
    metafile: true,
    logLevel: 'warning',
  };
  // The builds below are independent of each other, so they are started together: esbuild's service
  // builds them in parallel on the cores that are free, instead of one after the other.
  // A small CommonJS script bin/nixfleet.js requires before any of the CLI loads (node built-ins only).
  const loaderScript = (entry, script) =>
    build({
      absWorkingDir: root,
      entryPoints: [entry],
      outfile: `${outdir}/${script}`,
      bundle: true,
      format: 'cjs',
      platform: 'node',
      target: 'node20',
      sourcemap: 'linked',
      logLevel: 'warning',
      // The view client finds dist/build-id beside itself (cli/operator-paths.ts buildIdOf), as main.cjs does.
      define: { 'import.meta.url': '__nixfleet_loader_url' },
      banner: {
        js: "const __nixfleet_loader_url = require('node:url').pathToFileURL(__filename).href;",
      },
      // Through a face (protocol/index.ts) a loader would bundle all it re-exports; it gets what it names.
      plugins: [directImports],
    });
  // The code-cache loader (cli/code-cache.ts) runs the scripts below; bin/nixfleet.js (CommonJS, see
  // there) requires it.
  const codeCacheLoader = loaderScript('cli/code-cache.ts', 'code-cache.cjs');
  // The view server's client (cli/view-client.ts), which bin/nixfleet.js asks before `status` or `trace`
  // loads anything else: a few kilobytes.
  const viewClient = loaderScript('cli/view-client.ts', 'view-client.cjs');
  const mainScript = build({
    ...cjsOptions,
    outfile: `${outdir}/main.cjs`,
    plugins: [directImports, bundleZod],
  });

  // A script with only the named commands: the others' modules stay outside (cli/commands.ts loads
  // each on demand; such a script never asks for them).
  const only = (...commands) => ({
    name: 'only-commands',
    setup(b) {
      b.onResolve({ filter: /^\.\/[a-z-]+\.ts$/ }, (args) =>
        args.importer === join(root, 'cli/commands.ts') && !commands.includes(args.path)
          ? { path: args.path, external: true }
          : undefined,
      );
    },
  });
  // And once more with the `agent` command only, for the systemd timer's `agent --once` (bin/nixfleet.js
  // picks it for `agent`): a run loads, hashes and keeps in memory its whole script and the code cache
  // of what it ran, so the publisher, the operator views, the site generator and the demo (two thirds of
  // main.cjs) cost every host CPU and ~5 MB RSS every minute for nothing (issue 10).
  const agentScript = build({
    ...cjsOptions,
    outfile: `${outdir}/agent.cjs`,
    plugins: [directImports, bundleZod, only('./agent.ts')],
  });
  // And with the operator's views only (`status`, `trace`: bin/nixfleet.js picks it for them), for the
  // same reason: a warm `status --host` reads, hashes and deserialises its script and code cache in
  // every run, and the publisher, the agent, the site generator and the demo are no part of it.
  const viewsScript = build({
    ...cjsOptions,
    outfile: `${outdir}/views.cjs`,
    plugins: [directImports, bundleZod, only('./status.ts', './trace.ts')],
  });
  const [, cjs] = await Promise.all([
    codeCacheLoader,
    mainScript,
    agentScript,
    viewsScript,
    viewClient,
  ]);
  // The agent's and the views' scripts must stay ASCII (a tagged template keeps its characters as
  // written, so main.cjs, with the site generator's, is not).
  for (const script of ['agent.cjs', 'views.cjs']) {
    const nonAscii = readFileSync(`${outdir}/${script}`).findIndex((byte) => byte > 0x7f);
    if (nonAscii !== -1)
      throw new Error(
        `build: dist/${script} has a non-ASCII byte at offset ${nonAscii}: V8 would hold the whole script as a two-byte string (see minifyWhitespace above)`,
      );
  }
  const packages = new Set();
  for (const input of Object.keys(cjs.metafile.inputs)) {
    const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(join(root, input));
    if (m) packages.add(m[1]);
  }
  mkdirSync(`${outdir}/licenses`);
  for (const dir of packages) {
    const notice = readdirSync(dir).find((f) => /^(licen[cs]e|copying)/i.test(f));
    if (!notice)
      throw new Error(`build: ${dir} is bundled into dist/main.cjs but has no licence file`);
    const name = dir.slice(dir.lastIndexOf('node_modules/') + 'node_modules/'.length);
    copyFileSync(join(dir, notice), `${outdir}/licenses/${name.replace('/', '__')}.LICENSE`);
  }
  writeFileSync(`${outdir}/build-id`, `${digestOfFiles(outdir)}\n`);
} catch (e) {
  rmSync(outdir, { recursive: true, force: true });
  throw e;
}
// Two renames: dist/ is missing for an instant only, never half written.
const replaced = `${root}dist.replaced-${process.pid}`;
if (existsSync(dist)) renameSync(dist, replaced);
renameSync(outdir, dist);
rmSync(replaced, { recursive: true, force: true });

/**
 * The build's identity (dist/build-id, cli/operator-paths.ts buildIdOf): the SHA-256 of every file built,
 * names and bytes, so any change of the code or of a bundled dependency gives another. A view server
 * answers only clients of its own build.
 */
function digestOfFiles(dir) {
  const files = readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath ?? e.path, e.name)))
    .sort();
  const hash = createHash('sha256');
  for (const file of files) {
    const bytes = readFileSync(join(dir, file));
    hash.update(`${file}\0${bytes.length}\0`).update(bytes);
  }
  return `sha256:${hash.digest('hex')}`;
}
