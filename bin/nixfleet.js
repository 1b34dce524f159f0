#!/usr/bin/env node
// The `nixfleet` command runs the compiled JavaScript in dist/ (scripts/build.mjs; built by `npm ci`
// through `prepare`, by `npm test` and by the Nix package). A checkout that was never built says so
// instead of falling back to compiling TypeScript at every start.
let cli;
try {
  cli = await import('../dist/main.js');
} catch (e) {
  if (e?.code !== 'ERR_MODULE_NOT_FOUND' || !String(e.message).includes('dist/main.js')) throw e;
  process.stderr.write('nixfleet: dist/main.js is missing: run `npm run build` (or `npm ci`) in the nixfleet checkout\n');
  process.exit(2);
}
cli.endQuietlyWhenOutputCloses();
process.exitCode = await cli.main(process.argv.slice(2));
