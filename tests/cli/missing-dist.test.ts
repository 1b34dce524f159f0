// A checkout whose dist/ is missing or incomplete (never built, or a build cut short): bin/nixfleet.js
// says so and exits 2, whichever script the command runs from (dist/main.js without a code cache;
// code-cache.cjs and then main.cjs, agent.cjs or views.cjs with one), instead of a module-loader trace.
// Any other error is not taken for a missing build.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { commandCopy } from '../support/built-copy.ts';

const MISSING = /^nixfleet: dist\/ is missing or incomplete: run `npm run build`/;

/** A copy of the checkout's bin/ beside a dist/ holding only `files` of the real build. */
function checkoutWith(files: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'nf-missing-dist-'));
  commandCopy(dir, files);
  return dir;
}

function run(dir: string, args: string[], env: Record<string, string> = {}) {
  const base = { ...process.env };
  delete base['NIXFLEET_CODE_CACHE'];
  delete base['CACHE_DIRECTORY'];
  const r = spawnSync(process.execPath, [join(dir, 'bin', 'nixfleet.js'), ...args], {
    env: { ...base, ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { code: r.status, err: r.stderr };
}

test('each script a command runs from, when absent, is reported as a missing build (exit 2)', () => {
  const cases: [string[], string[], Record<string, string>][] = [
    [[], ['version'], {}],
    [[], ['version'], { NIXFLEET_CODE_CACHE: 'CACHE' }],
    [['code-cache.cjs'], ['version'], { NIXFLEET_CODE_CACHE: 'CACHE' }],
    [['code-cache.cjs', 'main.cjs'], ['agent', '--help'], { NIXFLEET_CODE_CACHE: 'CACHE' }],
    [['code-cache.cjs', 'main.cjs', 'agent.cjs'], ['status', '--cache-dir', 'CACHE'], {}],
    [
      ['code-cache.cjs', 'main.cjs', 'agent.cjs', 'views.cjs'],
      ['status', '--tree', '.', '--cache-dir', 'CACHE'],
      {},
    ],
  ];
  for (const [files, args, env] of cases) {
    const dir = checkoutWith(files);
    try {
      const fill = (s: string) => s.replace('CACHE', join(dir, 'cache'));
      const r = run(
        dir,
        args.map(fill),
        Object.fromEntries(Object.entries(env).map(([k, v]) => [k, fill(v)])),
      );
      assert.is(r.code, 2, `${args.join(' ')} with dist/ = [${files.join(', ')}]: ${r.err}`);
      assert.match(r.err, MISSING, `${args.join(' ')} with dist/ = [${files.join(', ')}]`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

test('a script that is there but needs something else that is missing is not reported as a missing build', () => {
  const dir = checkoutWith(['code-cache.cjs', 'main.cjs', 'agent.cjs', 'view-client.cjs']);
  try {
    // dist/views.cjs is there (in the form scripts/build.mjs gives it) and requires a package that is not:
    // the loader's error names the package, with dist/views.cjs in its require stack.
    writeFileSync(
      join(dir, 'dist', 'views.cjs'),
      "(function (exports, require, module, __filename, __dirname) { require('nixfleet-no-such-package'); })",
    );
    const r = run(dir, ['status', '--cache-dir', join(dir, 'cache')]);
    assert.not.match(r.err, MISSING);
    assert.match(r.err, /Cannot find module 'nixfleet-no-such-package'/);
    assert.match(r.err, /dist\/views\.cjs/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
