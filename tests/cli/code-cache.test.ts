// The code cache (cli/code-cache.ts, issue 10): with NIXFLEET_CODE_CACHE (or systemd's
// CACHE_DIRECTORY) the real binary runs dist/main.cjs (dist/agent.cjs for `agent`, dist/views.cjs for `status` and `trace`) and keeps V8's compiled code in that directory.
// Properties: the command behaves exactly as without a cache; the cache is written once (0600, in a
// directory created 0700) and then read, not rewritten; a damaged cache is refused by V8 and replaced;
// a cache in a directory or file others can write is never read; an older build's cache is removed;
// the operator's views (status, trace) keep one in their own cache directory unless --no-cache.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile, spawnSync } from 'node:child_process';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireTool } from '../support/skip.ts';
import { labFleet, makeLab, NEW } from '../agent/lab-fleet.ts';
import { operatorCodeCacheDir } from '../../cli/code-cache.ts';
import { operatorCacheDir } from '../../cli/operator-paths.ts';
import { defaultCacheDir } from '../../protocol/cache-dir.ts';
import { isoTime } from '../../protocol/schemas/common.ts';
import { NOW, cleanupTempDirs, publishedFixture } from '../read-side/fixture.ts';

const BIN = fileURLToPath(new URL('../../bin/nixfleet.js', import.meta.url));

function nixfleet(args: string[], env: Record<string, string> = {}) {
  const base = { ...process.env };
  delete base['NIXFLEET_CODE_CACHE'];
  delete base['CACHE_DIRECTORY'];
  delete base['NIXFLEET_DEBUG'];
  const r = spawnSync(process.execPath, [BIN, ...args], {
    env: { ...base, ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** A run with NIXFLEET_DEBUG: its output without the cache's report, and that report. */
function debugRun(args: string[], dir: string) {
  const r = nixfleet(args, { NIXFLEET_CODE_CACHE: dir, NIXFLEET_DEBUG: '1' });
  const report = /^nixfleet: code cache .*: (.*)\n/m.exec(r.err);
  assert.ok(report, `a code cache report in: ${r.err}`);
  return { run: { ...r, err: r.err.replace(report[0], '') }, cache: report[1] };
}

const caches = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.v8cache'));
const only = (dir: string) => {
  const files = caches(dir);
  assert.equal(files.length, 1, `one cache file in ${dir}: ${files.join(', ')}`);
  return join(dir, files[0]!);
};
const identity = (file: string) => {
  const st = statSync(file);
  return `${st.ino}:${st.mtimeMs}:${st.size}`;
};

test('same behaviour with and without the cache; written once (0600 in a new 0700 directory), then read as it is', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'nf-codecache-'));
  try {
    const dir = join(tmp, 'cache');
    const plain = nixfleet(['version']);
    assert.is(plain.code, 0, plain.err);
    const first = nixfleet(['version'], { NIXFLEET_CODE_CACHE: dir });
    assert.equal(first, plain);
    assert.is(statSync(dir).mode & 0o777, 0o700);
    const file = only(dir);
    assert.is(statSync(file).mode & 0o777, 0o600);
    const written = identity(file);

    // Accepted by V8: the next run uses it and does not rewrite it.
    assert.equal(debugRun(['version'], dir), { run: plain, cache: 'used' });
    assert.is(identity(file), written, 'a valid cache is read, not rewritten');

    // Errors and exit codes are the CLI's own, cache or not (here systemd's variable names the directory).
    const bad = ['agent', '--config', join(tmp, 'missing.json'), '--once'];
    const badPlain = nixfleet(bad);
    assert.is(badPlain.code, 2);
    assert.equal(nixfleet(bad, { CACHE_DIRECTORY: dir }), badPlain);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('a damaged cache is refused and replaced; an older build cache is removed', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'nf-codecache-'));
  try {
    const dir = join(tmp, 'cache');
    const plain = nixfleet(['version']);
    nixfleet(['version'], { NIXFLEET_CODE_CACHE: dir });
    const file = only(dir);
    const good = readFileSync(file);
    const garbage = Buffer.alloc(good.length, 0x5a);
    writeFileSync(file, garbage, { mode: 0o600 });
    const old = join(dir, 'nixfleet-cli-main-00000000000000000000000000000000.v8cache');
    writeFileSync(old, garbage, { mode: 0o600 });

    assert.equal(debugRun(['version'], dir), { run: plain, cache: 'refused by V8, written' });
    assert.equal(caches(dir), [file.slice(dir.length + 1)], 'the older build cache is gone');
    assert.not.ok(readFileSync(file).equals(garbage), 'the refused cache was written anew');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('`agent` runs from its own script with its own cache, beside the one of the other commands', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'nf-codecache-'));
  try {
    const dir = join(tmp, 'cache');
    const help = ['agent', '--help'];
    const plain = nixfleet(help);
    assert.is(plain.code, 0, plain.err);
    assert.equal(nixfleet(['version'], { NIXFLEET_CODE_CACHE: dir }), nixfleet(['version']));
    assert.equal(nixfleet(help, { NIXFLEET_CODE_CACHE: dir }), plain);
    const files = caches(dir).sort();
    assert.is(files.length, 2, files.join(', '));
    assert.match(files[0]!, /^nixfleet-cli-agent-/);
    assert.match(files[1]!, /^nixfleet-cli-main-/);
    assert.equal(debugRun(help, dir), { run: plain, cache: 'used' });
    assert.equal(debugRun(['version'], dir).cache, 'used');
    assert.equal(caches(dir).sort(), files);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('operator views default to a code cache in their own cache directory; --no-cache and other commands keep none', () => {
  const env = { HOME: '/home/op' };
  assert.is(operatorCodeCacheDir(['status', '--cache-dir', '/c'], env), '/c/code');
  assert.is(operatorCodeCacheDir(['trace', '--host', 'h', '--cache-dir=/c'], env), '/c/code');
  assert.is(operatorCodeCacheDir(['status'], env), '/home/op/.cache/nixfleet/code');
  assert.is(operatorCodeCacheDir(['status'], { ...env, XDG_CACHE_HOME: '/x' }), '/x/nixfleet/code');
  assert.is(operatorCodeCacheDir(['status', '--cache-dir', '/c', '--no-cache'], env), undefined);
  assert.is(operatorCodeCacheDir(['status'], { HOME: '' }), undefined, 'an empty home: no cache');
  // $HOME unset: the account's home, as the views themselves take it (protocol defaultCacheDir).
  assert.is(operatorCodeCacheDir(['status'], {}), join(homedir(), '.cache/nixfleet/code'));
  // The client finds the directory the view keeps (its view server's socket, its code cache).
  for (const e of [env, { ...env, XDG_CACHE_HOME: '/x' }, { HOME: '' }, {}])
    assert.is(operatorCacheDir(['status'], e), defaultCacheDir(e) ?? undefined, JSON.stringify(e));
  assert.is(defaultCacheDir({ HOME: '/home/op', XDG_CACHE_HOME: '/x' }), '/x/nixfleet');
  assert.is(defaultCacheDir({ HOME: '/home/op', XDG_CACHE_HOME: '' }), '/home/op/.cache/nixfleet');
  for (const other of [['version'], ['verify', '--cache-dir', '/c'], ['agent', '--once'], []])
    assert.is(operatorCodeCacheDir(other, env), undefined, other.join(' '));

  // The real binary: `status --cache-dir DIR` writes DIR/code, prints what `--no-cache` prints.
  const tmp = mkdtempSync(join(tmpdir(), 'nf-codecache-'));
  try {
    const fx = publishedFixture('code-cache-status');
    const args = ['status', '--tree', fx.tree, '--root', fx.rootFile, '--now', isoTime(NOW)];
    const cold = nixfleet([...args, '--no-cache'], { HOME: tmp });
    assert.is(cold.code, 0, cold.err);
    assert.equal(readdirSync(tmp), [], '--no-cache: no cache of any kind');
    const dir = join(tmp, 'views');
    assert.equal(nixfleet([...args, '--cache-dir', dir]), cold);
    const code = join(dir, 'code');
    assert.is(statSync(code).mode & 0o777, 0o700);
    const file = only(code);
    // Run from the views' own script (dist/views.cjs: status and trace alone), not main.cjs.
    assert.match(basename(file), /^nixfleet-cli-views-/);
    assert.equal(nixfleet([...args, '--cache-dir', dir, '--host', fx.wave('ch-0', 0)[0]!]).code, 0);
    assert.is(only(code), file, 'read by the next view, not rewritten');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
    cleanupTempDirs();
  }
});

test('a cache others can write is never read: group-writable directory or file', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'nf-codecache-'));
  try {
    const plain = nixfleet(['version']);
    // A directory others can write: nothing is read from it or written to it.
    const open = join(tmp, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    assert.equal(debugRun(['version'], open), { run: plain, cache: 'untrusted directory' });
    assert.equal(caches(open), []);

    // A group-writable cache file in a private directory: not read (V8 would have accepted it), but
    // replaced by a private one.
    const dir = join(tmp, 'cache');
    nixfleet(['version'], { NIXFLEET_CODE_CACHE: dir });
    const file = only(dir);
    chmodSync(file, 0o660);
    const before = identity(file);
    assert.equal(debugRun(['version'], dir), { run: plain, cache: 'none, written' });
    assert.is.not(identity(file), before, 'not trusted, so not used: written anew');
    assert.is(statSync(file).mode & 0o777, 0o600);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('agent --once through the code cache (as the systemd unit runs it): the host converges, later runs use the cache', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const lab = makeLab(['c1']);
  const tmp = mkdtempSync(join(tmpdir(), 'nf-codecache-'));
  try {
    lab.publish(
      labFleet(lab, {
        prod: { hosts: { c1: NEW }, waves: [{ soakSeconds: 0 }], heartbeatSeconds: 3600 },
      }),
    );
    await lab.startControlPlane(); // in this process: the agent runs asynchronously beside it
    lab.agentConfig('c1');
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      CACHE_DIRECTORY: join(tmp, 'cache'),
      NIXFLEET_DEBUG: '1',
    };
    delete env['NIXFLEET_CODE_CACHE'];
    const run = () =>
      new Promise<{ code: number; out: string; err: string }>((resolve) =>
        execFile(
          process.execPath,
          [BIN, 'agent', '--config', lab.host('c1').configFile, '--once'],
          { env, timeout: 120_000 },
          (e, out, err) => resolve({ code: e ? Number(e.code) : 0, out, err }),
        ),
      );
    let last = await run();
    for (let i = 0; i < 10 && !last.out.includes('"decision":"converged"'); i++) last = await run();
    assert.is(last.code, 0, last.err);
    assert.match(last.out, /"event":"decision","decision":"converged"/);
    assert.match(last.err, /nixfleet: code cache .*: used\n/);
  } finally {
    await lab.close();
    rmSync(tmp, { recursive: true, force: true });
  }
});

test.run();
