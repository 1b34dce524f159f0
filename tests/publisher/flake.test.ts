// `--flake REF` runs `nix eval --json REF`: a flake whose output is a golden fleet must resolve exactly as
// the JSON file does. (mkFleet itself is wired in a later issue; here the flake just reads the JSON.)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireTool } from '../support/skip.ts';

const BIN = fileURLToPath(new URL('../../bin/nixfleet.js', import.meta.url));
const golden = fileURLToPath(new URL('../fixtures/fleets/golden/selector-waves/', import.meta.url));

test('validate --flake evaluates the flake with nix and resolves like the JSON file', () => {
  if (!requireTool('nix', 'nixfleet validate --flake runs nix eval')) return;
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-flake-'));
  try {
    writeFileSync(join(dir, 'registry.json'), '{"version":2,"flakes":[]}');
    copyFileSync(join(golden, 'fleet.json'), join(dir, 'fleet.json'));
    writeFileSync(
      join(dir, 'flake.nix'),
      '{ outputs = { self }: { fleet = builtins.fromJSON (builtins.readFile ./fleet.json); }; }\n',
    );
    const env = {
      ...process.env,
      NIX_CONFIG: `experimental-features = nix-command flakes\nsubstituters =\nflake-registry = ${dir}/registry.json\nnarinfo-cache-negative-ttl = 0`,
      XDG_CACHE_HOME: join(dir, 'cache'),
    };
    const r = spawnSync(
      process.execPath,
      [BIN, 'validate', '--flake', `path:${dir}#fleet`, '--json'],
      { env, encoding: 'utf8', timeout: 120_000 },
    );
    assert.is(r.status, 0, r.stderr);
    const { ok, ...view } = JSON.parse(r.stdout) as { ok: boolean };
    assert.ok(ok);
    assert.equal(view, JSON.parse(readFileSync(join(golden, 'expected.json'), 'utf8')));
    const broken = spawnSync(
      process.execPath,
      [BIN, 'validate', '--flake', `path:${dir}#nothing`],
      { env, encoding: 'utf8', timeout: 120_000 },
    );
    assert.is(broken.status, 2);
    assert.match(broken.stderr, /nix eval --json path:.*#nothing failed/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
