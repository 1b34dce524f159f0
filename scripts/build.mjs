// Compiles the `nixfleet` command to JavaScript (dist/), so a run pays neither TypeScript compilation
// nor loading tsx: one ESM entry plus lazily loaded chunks, one per subcommand group (cli/commands.ts
// imports each command module on demand; --splitting keeps those imports lazy).
// Runs in `prepare` (npm ci / npm install), before `npm test` and the demo, and in the Nix package build.
import { build } from 'esbuild';
import { copyFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tsImport } from 'tsx/esm/api';

const root = fileURLToPath(new URL('..', import.meta.url));
const outdir = `${root}dist`;

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
const bundleZod = {
  name: 'bundle-zod',
  setup(b) {
    const entry = fileURLToPath(import.meta.resolve('zod'));
    b.onResolve({ filter: /^zod$/ }, () => ({ path: entry, external: false }));
  },
};

rmSync(outdir, { recursive: true, force: true });
await build({
  absWorkingDir: root,
  // The signature batch helper runs in a worker thread: its own entry, loaded by URL (batch-verify.ts).
  entryPoints: {
    main: 'cli/main.ts',
    'batch-verify-worker': 'protocol/verify/batch-verify-worker.ts',
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
copyFileSync(
  join(dirname(fileURLToPath(import.meta.resolve('zod/package.json'))), 'LICENSE'),
  `${outdir}/zod.LICENSE`,
);
