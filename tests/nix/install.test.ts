// README's install for non-NixOS machines: `npm install -g` from the checkout puts `nixfleet` on PATH
// (here under a private --prefix), and the demo's printed "Look around" commands then work exactly as
// printed (run by name through PATH, arguments split on spaces, never through a shell).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireTool } from '../support/skip.ts';
import { REPO, run } from './nix-env.ts';

test("npm install -g from the checkout puts nixfleet on PATH, and the demo's next steps run as printed", async () => {
  if (!requireTool('openssl', 'the demo')) return;
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-install-'));
  try {
    const prefix = join(dir, 'prefix');
    const install = await run(
      'npm',
      ['install', '-g', '--prefix', prefix, '--offline', '--no-audit', '--no-fund', REPO],
      { timeoutMs: 120_000 },
    );
    assert.is(install.code, 0, install.stderr);
    const env = { ...process.env, PATH: `${join(prefix, 'bin')}:${process.env.PATH}` };
    const version = await run('nixfleet', ['version'], { env, cwd: dir });
    assert.is(version.code, 0, version.stderr);

    const demo = await run('nixfleet', ['demo', '--dir', join(dir, 'demo-output')], {
      env,
      cwd: dir,
      timeoutMs: 300_000,
    });
    assert.is(demo.code, 0, demo.stderr + demo.stdout);
    const lines = demo.stdout.split('\n');
    const start = lines.findIndex((l) => l.startsWith('Look around: '));
    assert.ok(start >= 0, demo.stdout);
    const commands = lines
      .slice(start)
      .map((l) =>
        l
          .replace(/^Look around: /, '')
          .trim()
          .replace(/\s+\(then open .*\)$/, ''),
      )
      .filter((l) => l.startsWith('nixfleet '));
    assert.ok(commands.length >= 3, commands.join('\n'));
    for (const command of commands) {
      const [cmd, ...args] = command.split(/\s+/);
      const r = await run(cmd!, args, { env, cwd: dir, timeoutMs: 120_000 });
      assert.is(r.code, 0, `${command}\n${r.stderr}${r.stdout}`);
    }
    assert.ok(
      existsSync(join(dir, 'demo-output/site/index.html')),
      'site build wrote the page the demo tells you to open',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
