// The Nix package (nix/package.nix through the flake's overlays.default and lib.packageFor), evaluated
// (not built: nixpkgs is not available offline) against tests/nix/stand-in-pkgs.nix, whose
// buildNpmPackage and importNpmLock check the arguments the real builders need. The lockfile is read
// here too, so every entry's fetch URL is checked against the lock itself.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireTool } from '../support/skip.ts';
import { REPO, nixSandbox, nixString, run, type NixSandbox } from './nix-env.ts';

const STAND_IN = join(REPO, 'tests/nix/stand-in-pkgs.nix');
const prelude = `let
  s = import ${nixString(STAND_IN)};
  flake = (import ${nixString(join(REPO, 'flake.nix'))}).outputs { self = flake; };
  pkgs = s.pkgs // flake.overlays.default pkgs s.pkgs;
  drv = pkgs.nixfleet;
in`;

async function evalPkg(
  sandbox: NixSandbox,
  body: string,
): Promise<{ code: number; value: unknown; stderr: string }> {
  const r = await run(
    'nix-instantiate',
    ['--eval', '--read-write-mode', '--strict', '--json', '-E', `${prelude} ${body}`],
    { env: sandbox.env, cwd: sandbox.dir, timeoutMs: 120_000 },
  );
  return { code: r.code, value: r.code === 0 ? JSON.parse(r.stdout) : undefined, stderr: r.stderr };
}

interface LockEntry {
  version?: string;
  resolved?: string;
  integrity?: string;
  link?: boolean;
  name?: string;
}

test('overlays.default: pkgs.nixfleet is buildNpmPackage over importNpmLock, with no deps hash and bin/nixfleet', async () => {
  if (!requireTool('nix-instantiate', 'evaluating nix/package.nix')) return;
  const sandbox = nixSandbox();
  try {
    const r = await evalPkg(
      sandbox,
      `{
      inherit (drv) pname version bins;
      path = drv.outPath;
      mainProgram = drv.meta.mainProgram;
      argNames = builtins.attrNames drv.passthru.args;
      src = toString drv.passthru.args.src;
      srcHasNodeModules = builtins.pathExists (drv.passthru.args.src + "/node_modules");
      sameViaLib = (flake.lib.packageFor s.pkgs).outPath == drv.outPath;
      lock = drv.passthru.args.npmDeps.passthru.lock.packages;
    }`,
    );
    assert.is(r.code, 0, r.stderr);
    const v = r.value as {
      pname: string;
      version: string;
      bins: string[];
      mainProgram: string;
      argNames: string[];
      src: string;
      srcHasNodeModules: boolean;
      sameViaLib: boolean;
      lock: Record<string, LockEntry>;
    };
    const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
      name: string;
      version: string;
    };
    assert.is(v.pname, pkg.name);
    assert.is(v.version, pkg.version);
    assert.equal(v.bins, ['nixfleet']);
    assert.is(v.mainProgram, 'nixfleet');
    assert.not.ok(v.argNames.includes('npmDepsHash'), 'no hand-maintained dependency hash');
    assert.not.ok(
      v.argNames.includes('dontNpmBuild'),
      'the package is built: dist/ is what bin/nixfleet.js runs',
    );
    assert.ok(v.argNames.includes('npmBuildScript'));
    assert.match(v.src, /^\/nix\/store\/[0-9a-z]{32}-nixfleet-source$/);
    assert.not.ok(v.srcHasNodeModules, 'the local node_modules stays out of the source');
    assert.ok(v.sameViaLib, 'lib.packageFor pkgs is the overlay package');

    // Every installed lock entry is fetchable: the registry tarball of exactly its name and version,
    // checked against the integrity the lockfile records.
    const lock = (
      JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')) as {
        packages: Record<string, LockEntry>;
      }
    ).packages;
    const installed = Object.keys(lock).filter((p) => p !== '' && !lock[p]!.link);
    assert.ok(installed.length > 50);
    for (const path of installed) {
      const name =
        lock[path]!.name ?? path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
      const expected =
        lock[path]!.resolved ??
        `https://registry.npmjs.org/${name}/-/${name.split('/').pop()}-${lock[path]!.version}.tgz`;
      assert.is(v.lock[path]!.resolved, expected, path);
      assert.is(v.lock[path]!.integrity, lock[path]!.integrity, path);
    }
    assert.is(
      v.lock['node_modules/@esbuild/linux-x64']?.resolved,
      `https://registry.npmjs.org/@esbuild/linux-x64/-/linux-x64-${lock['node_modules/@esbuild/linux-x64']!.version}.tgz`,
    );
  } finally {
    sandbox.cleanup();
  }
});

test('the stand-in builders refuse what the real ones cannot build', async () => {
  if (!requireTool('nix-instantiate', 'evaluating nix/package.nix')) return;
  const sandbox = nixSandbox();
  try {
    const args = 'drv.passthru.args';
    const cases: [string, string, RegExp][] = [
      [
        'no npmConfigHook',
        `s.pkgs.buildNpmPackage (builtins.removeAttrs ${args} [ "npmConfigHook" ])`,
        /need npmConfigHook = importNpmLock\.npmConfigHook/,
      ],
      [
        'a build step that does not exist',
        `s.pkgs.buildNpmPackage (${args} // { npmBuildScript = "compile"; })`,
        /no build script: set dontNpmBuild/,
      ],
      [
        'no npmDeps',
        `s.pkgs.buildNpmPackage (builtins.removeAttrs ${args} [ "npmDeps" ])`,
        /npmDeps is required/,
      ],
      [
        'the lockfile as npm wrote it (no resolved URLs)',
        `s.pkgs.importNpmLock { npmRoot = ${args}.src; }`,
        /lock entries have no https `resolved` URL/,
      ],
    ];
    for (const [what, expr, expected] of cases) {
      const r = await evalPkg(sandbox, `(${expr}).outPath`);
      assert.is.not(r.code, 0, what);
      assert.match(r.stderr, expected, `${what}: ${r.stderr}`);
    }
  } finally {
    sandbox.cleanup();
  }
});

test('both NixOS modules default `package` to pkgs.nixfleet (nix/package.nix)', async () => {
  if (!requireTool('nix-instantiate', 'evaluating the NixOS modules')) return;
  const sandbox = nixSandbox();
  try {
    const harness = nixString(join(REPO, 'tests/nix/module-harness.nix'));
    const r = await evalPkg(
      sandbox,
      `{
      expected = drv.outPath;
      agent = (import ${harness} { module = import ${nixString(join(REPO, 'nix/modules/agent.nix'))}; service = "nixfleet-agent"; settings = { enable = true; controlPlaneUrl = "https://cp.example/"; caFile = "/c"; certFile = "/c"; keyFile = "/k"; hostKeyFile = "/h"; trustRootFile = "/r"; }; }).config.systemd.services.nixfleet-agent.serviceConfig.ExecStart;
      cp = (import ${harness} { module = import ${nixString(join(REPO, 'nix/modules/control-plane.nix'))}; service = "nixfleet-control-plane"; settings = { enable = true; pkiDir = "/pki"; }; }).config.systemd.services.nixfleet-ack-endpoint.serviceConfig.ExecStart;
    }`,
    );
    assert.is(r.code, 0, r.stderr);
    const v = r.value as { expected: string; agent: string; cp: string };
    assert.ok(v.agent.startsWith(`${v.expected}/bin/nixfleet agent `), v.agent);
    assert.ok(v.cp.startsWith(`${v.expected}/bin/nixfleet `), v.cp);
  } finally {
    sandbox.cleanup();
  }
});

test.run();
