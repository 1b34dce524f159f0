// The repo's flake under a real Nix, offline: `nix flake check` on a copy of the tracked files (a flake
// in a git repo sees only those), the example fleet through `nix eval --json` and the TypeScript
// validator / `nixfleet validate --flake`, and `nixfleet publish --flake REF#fleet` producing a tree
// that verifies from the pinned root.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { requireTool } from '../support/skip.ts';
import { validateFleet } from '../../publisher/validate.ts';
import { writePrivateKey } from '../../protocol/keys.ts';
import { readRoot } from '../../protocol/trust-root.ts';
import { verifyTreeDir } from '../../protocol/disk-tree.ts';
import { setupTrust, T0 } from '../publisher/helpers.ts';
import { REPO, nixSandbox, run, type NixSandbox } from './nix-env.ts';

const BIN = join(REPO, 'bin/nixfleet.js');
let sandbox: NixSandbox | undefined;
let haveNix = false;

/** Copies the files git tracks under `paths` into `dest` and commits them in a fresh repo there. */
function gitCopy(dest: string, paths: string[], extra: Record<string, string> = {}): void {
  const files = execFileSync('git', ['ls-files', '-z', '--', ...paths], {
    cwd: REPO,
    encoding: 'utf8',
  })
    .split('\0')
    .filter(Boolean);
  for (const f of files) {
    mkdirSync(dirname(join(dest, f)), { recursive: true });
    cpSync(join(REPO, f), join(dest, f));
  }
  for (const [f, text] of Object.entries(extra)) {
    mkdirSync(dirname(join(dest, f)), { recursive: true });
    writeFileSync(join(dest, f), text);
  }
  const git = (...args: string[]) =>
    execFileSync('git', ['-c', 'user.email=test@nixfleet', '-c', 'user.name=test', ...args], {
      cwd: dest,
      stdio: 'pipe',
    });
  git('init', '-q');
  git('add', '-A');
  git('commit', '-qm', 'snapshot');
}

/** A fleet repository: the nix library plus a flake whose `fleet` output is the example (or `fleetNix`). */
function fleetRepo(name: string, fleetNix?: string): string {
  const dir = join(sandbox!.dir, name);
  gitCopy(dir, ['nix'], {
    'flake.nix':
      '{ outputs = { self }: { fleet = import ./fleet.nix { nixfleet = { lib = import ./nix/lib; }; }; }; }\n',
    'fleet.nix':
      fleetNix ??
      readFileSync(join(REPO, 'nix/examples/fleet.nix'), 'utf8').replace(
        'import ./systems.nix',
        'import ./nix/examples/systems.nix',
      ),
  });
  return dir;
}

test.before(() => {
  haveNix = requireTool('nix', 'nix flake check and nixfleet publish --flake');
  if (!haveNix) return;
  sandbox = nixSandbox('nixfleet-flake-');
  gitCopy(join(sandbox.dir, 'repo'), ['flake.nix', 'nix', 'tests/fixtures/fleets']);
});

test.after(() => sandbox?.cleanup());

test('nix flake check passes on the repo flake (offline, tracked files only)', async () => {
  if (!haveNix) return;
  const r = await run('nix', ['flake', 'check'], {
    cwd: join(sandbox!.dir, 'repo'),
    env: sandbox!.env,
    timeoutMs: 120_000,
  });
  assert.is(r.code, 0, r.stderr);
  const show = await run('nix', ['flake', 'show', '--json'], {
    cwd: join(sandbox!.dir, 'repo'),
    env: sandbox!.env,
  });
  assert.is(show.code, 0, show.stderr);
  const outputs = JSON.parse(show.stdout) as {
    nixosModules: Record<string, unknown>;
    overlays: Record<string, unknown>;
  };
  assert.equal(Object.keys(outputs.nixosModules).sort(), ['agent', 'control-plane', 'default']);
  assert.equal(Object.keys(outputs.overlays), ['default']);
});

test('the example fleet: nix eval --json output is accepted by the TypeScript validator and nixfleet validate --flake', async () => {
  if (!haveNix) return;
  const repo = join(sandbox!.dir, 'repo');
  const evaluated = await run('nix', ['eval', '--json', '.#examples.fleet'], {
    cwd: repo,
    env: sandbox!.env,
  });
  assert.is(evaluated.code, 0, evaluated.stderr);
  const fleet = JSON.parse(evaluated.stdout) as { hosts: Record<string, { target: string }> };
  const r = validateFleet(fleet);
  assert.ok(r.ok, r.ok ? '' : r.errors.join('\n'));
  // Targets taken from nixosConfiguration are the real store paths of the stand-in systems.
  assert.match(fleet.hosts['web-01']!.target, /^\/nix\/store\/[0-9a-z]{32}-nixos-system-web-01$/);
  const cli = await run('node', [BIN, 'validate', '--json', '--flake', `${repo}#examples.fleet`], {
    env: sandbox!.env,
    timeoutMs: 120_000,
  });
  assert.is(cli.code, 0, cli.stderr);
  const view = JSON.parse(cli.stdout) as {
    ok: boolean;
    channels: Record<string, { waves: { hosts: string[] }[] }>;
  };
  assert.ok(view.ok);
  assert.equal(
    view.channels.stable!.waves.map((w) => w.hosts.length),
    [1, 2, 1],
  );
});

test("a broken fleet: nixfleet validate --flake fails with mkFleet's violation report", async () => {
  if (!haveNix) return;
  const example = readFileSync(join(REPO, 'nix/examples/fleet.nix'), 'utf8').replace(
    'import ./systems.nix',
    'import ./nix/examples/systems.nix',
  );
  const broken = example
    .replace('channel = "edge"; tags = [ "lab" ]', 'channel = "egde"; tags = [ "lab" ]')
    .replace('freshnessSeconds = 7200', 'freshnessSeconds = 60');
  assert.not.equal(broken, example);
  const repo = fleetRepo('broken', broken);
  const cli = await run('node', [BIN, 'validate', '--flake', `${repo}#fleet`], {
    env: sandbox!.env,
    timeoutMs: 120_000,
  });
  assert.is.not(cli.code, 0);
  assert.match(cli.stderr, /mkFleet: the fleet is invalid \(2 violations\)/);
  assert.match(cli.stderr, /hosts\.lab-01\.channel: unknown channel "egde"/);
  assert.match(
    cli.stderr,
    /channels\.stable\.freshnessSeconds: 60 is less than 2 x signingIntervalSeconds \(1800\)/,
  );
});

test('nixfleet publish --flake REF#fleet writes a tree that verifies from the pinned root', async () => {
  if (!haveNix) return;
  const repo = fleetRepo('fleet-repo');
  const trust = setupTrust('example');
  try {
    const keyFile = join(trust.dir, 'release.key');
    writePrivateKey(keyFile, trust.releaseKey);
    const now = new Date(T0).toISOString().replace('.000Z', 'Z');
    const r = await run(
      'node',
      [
        BIN,
        'publish',
        '--flake',
        `${repo}#fleet`,
        '--tree',
        trust.treeDir,
        '--release-key',
        keyFile,
        '--trust',
        trust.trustDir,
        '--now',
        now,
        '--json',
        '--no-cache-check',
      ],
      { env: sandbox!.env, timeoutMs: 120_000 },
    );
    assert.is(r.code, 0, r.stderr + r.stdout);
    const published = JSON.parse(r.stdout) as { version: number; hosts: number };
    assert.is(published.version, 1);
    assert.is(published.hosts, 5);
    const pinned = readRoot(readFileSync(join(trust.trustDir, 'root', '1.json')), 'root/1.json');
    const report = await verifyTreeDir(trust.treeDir, pinned, { now: T0 + 60_000 });
    assert.is(report.release.hosts, 5);
    assert.equal(report.release.channels.sort(), ['edge', 'stable']);
    const manifest = JSON.parse(
      readFileSync(join(trust.treeDir, 'releases/1/hosts/db-01.json'), 'utf8'),
    ) as { signed: { target: string; wave: number; machineId: string } };
    assert.is(manifest.signed.wave, 2);
    assert.is(manifest.signed.machineId, '0f4b2c7e9a1d4e6f8b3c5a7d9e1f2a4b');
  } finally {
    trust.cleanup();
  }
});

test.run();
