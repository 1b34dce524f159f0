// The documented CI example (nix/examples/ci/publish.sh, refresh.sh) run for real against a tiny fleet
// flake: real `nix build` of each host's (stand-in) system, `nix copy` into a file:// cache signed with
// a cache key, `nixfleet publish --flake`, then `nixfleet refresh`. Checked: the closures come out of
// the cache only for the right public key, and the tree verifies from the pinned root naming exactly
// the built systems.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireTool } from '../support/skip.ts';
import { writePrivateKey } from '../../protocol/keys.ts';
import { readRoot } from '../../protocol/trust-root.ts';
import { verifyTreeDir } from '../../protocol/disk-tree.ts';
import { setupTrust, T0 } from '../publisher/helpers.ts';
import { REPO, nixSandbox, run } from './nix-env.ts';

const SCRIPTS = join(REPO, 'nix/examples/ci');

/** A fleet flake: two hosts whose nixosConfigurations are tiny systems unique to this run (so they are built now). */
function fleetFlake(dir: string, nonce: string, cacheUrl = 'file:///var/empty/cache'): void {
  mkdirSync(dir, { recursive: true });
  cpSync(join(REPO, 'nix/lib'), join(dir, 'nix/lib'), { recursive: true });
  writeFileSync(
    join(dir, 'flake.nix'),
    `{
  outputs = { self }:
    let
      nixfleet.lib = import ./nix/lib;
      system = name: {
        config.nixpkgs.hostPlatform.system = "x86_64-linux";
        config.system.build.toplevel = derivation {
          name = "nixos-system-\${name}";
          system = "x86_64-linux";
          builder = "/bin/sh";
          nonce = "${nonce}";
          args = [ "-c" "/bin/mkdir -p $out/bin && echo '#!/bin/sh' > $out/bin/switch-to-configuration && echo \${name} > $out/kernel" ];
        };
      };
    in {
      nixosConfigurations = { web-01 = system "web-01"; web-02 = system "web-02"; };
      fleet = nixfleet.lib.mkFleet {
        fleet = "ci";
        cacheUrl = "${cacheUrl}";
        hosts = builtins.mapAttrs (name: cfg: nixfleet.lib.mkHost { channel = "stable"; hostKey = if name == "web-01" then "RbwIwFUreC5qBoWDW1V9Vq0ct6uBimAn21NofFPvL04=" else "Mm83Si8Bqicb9IllKdcKhmYtooS5bhtmFQnezVmwLb4="; nixosConfiguration = cfg; }) self.nixosConfigurations;
        channels.stable = { policy = "all"; freshnessSeconds = 3600; signingIntervalSeconds = 900; confirmDeadlineSeconds = 300; heartbeatSeconds = 60; offlineWindowSeconds = 900; };
        policies.all = { strategy = "all-at-once"; waves = [ ]; };
      };
    };
}
`,
  );
}

test('CI example: build every host, copy the closures to a signed cache, publish, refresh', async () => {
  if (!requireTool('nix', 'the CI example (nix build, nix copy)')) return;
  if (!requireTool('bash', 'the CI example scripts')) return;
  const sandbox = nixSandbox('nixfleet-ci-');
  // The cache key first: the trust root names its public half, so publish accepts only closures it signed.
  const cacheKey = join(sandbox.dir, 'cache.key');
  const secret = await run('nix', ['key', 'generate-secret', '--key-name', 'ci-cache-1'], {
    env: sandbox.env,
  });
  assert.is(secret.code, 0, secret.stderr);
  writeFileSync(cacheKey, secret.stdout);
  const pub = await run('sh', ['-c', 'nix key convert-secret-to-public < "$0"', cacheKey], {
    env: sandbox.env,
  });
  assert.is(pub.code, 0, pub.stderr);
  const trust = setupTrust('ci', { cacheKeys: [pub.stdout.trim()] });
  try {
    const flake = join(sandbox.dir, 'fleet');
    const cache = join(sandbox.dir, 'cache');
    fleetFlake(flake, randomBytes(8).toString('hex'), `file://${cache}`);
    const releaseKey = join(trust.dir, 'release.key');
    writePrivateKey(releaseKey, trust.releaseKey);

    const env = {
      ...sandbox.env,
      FLAKE: flake,
      CACHE_URL: `file://${cache}`,
      CACHE_KEY_FILE: cacheKey,
      TREE_DIR: trust.treeDir,
      TRUST_DIR: trust.trustDir,
      RELEASE_KEY: releaseKey,
      NIXFLEET: join(REPO, 'bin/nixfleet.js'),
      SOURCE: 'ci-test',
      NOW: new Date(T0).toISOString(),
    };
    // The targets the fleet names are not built yet.
    const targets = JSON.parse(
      (
        await run(
          'nix',
          [
            'eval',
            '--json',
            `${flake}#fleet`,
            '--apply',
            'f: map (h: h.target) (builtins.attrValues f.hosts)',
          ],
          { env: sandbox.env },
        )
      ).stdout,
    ) as string[];
    assert.is(targets.length, 2);
    for (const t of targets)
      assert.is.not(
        (await run('nix', ['path-info', t], { env: sandbox.env })).code,
        0,
        `${t} exists before the build`,
      );

    const published = await run('bash', [join(SCRIPTS, 'publish.sh')], { env, timeoutMs: 300_000 });
    assert.is(published.code, 0, published.stderr + published.stdout);
    assert.is((JSON.parse(published.stdout) as { version: number; hosts: number }).hosts, 2);

    // The cache holds each closure, signed: it copies into another store only under the cache's public key.
    assert.is(readdirSync(cache).filter((f) => f.endsWith('.narinfo')).length, 2);
    for (const t of targets) {
      const narinfo = readFileSync(
        join(cache, `${t.slice('/nix/store/'.length, '/nix/store/'.length + 32)}.narinfo`),
        'utf8',
      );
      assert.match(narinfo, /^Sig: ci-cache-1:/m);
    }
    const copyOut = (key: string, root: string) =>
      run(
        'nix',
        [
          'copy',
          '--from',
          `file://${cache}`,
          '--to',
          `local?root=${join(sandbox.dir, root)}`,
          '--option',
          'trusted-public-keys',
          key,
          ...targets,
        ],
        { env: sandbox.env, timeoutMs: 120_000 },
      );
    const trusted = await copyOut(pub.stdout.trim(), 'host-a');
    assert.is(trusted.code, 0, trusted.stderr);
    const other = await run('nix', ['key', 'generate-secret', '--key-name', 'other-1'], {
      env: sandbox.env,
    });
    const otherKey = join(sandbox.dir, 'other.key');
    writeFileSync(otherKey, other.stdout);
    const otherPub = await run('sh', ['-c', 'nix key convert-secret-to-public < "$0"', otherKey], {
      env: sandbox.env,
    });
    const untrusted = await copyOut(otherPub.stdout.trim(), 'host-b');
    assert.is.not(untrusted.code, 0, 'a cache signed by another key is refused');

    // The release verifies from the pinned root and names exactly the built systems.
    const pinned = readRoot(readFileSync(join(trust.trustDir, 'root', '1.json')), 'root/1.json');
    const report = await verifyTreeDir(trust.treeDir, pinned, { now: T0 + 60_000 });
    assert.is(report.release.hosts, 2);
    const named = ['web-01', 'web-02'].map(
      (h) =>
        (
          JSON.parse(readFileSync(join(trust.treeDir, `releases/1/hosts/${h}.json`), 'utf8')) as {
            signed: { target: string };
          }
        ).signed.target,
    );
    assert.equal(named.sort(), [...targets].sort());

    // The scheduled job: a later timestamp over the same release.
    const refreshed = await run('bash', [join(SCRIPTS, 'refresh.sh')], {
      env: { ...env, NOW: new Date(T0 + 600_000).toISOString() },
      timeoutMs: 120_000,
    });
    assert.is(refreshed.code, 0, refreshed.stderr + refreshed.stdout);
    const after = await verifyTreeDir(trust.treeDir, pinned, { now: T0 + 660_000 });
    assert.is(after.release.hosts, 2);
  } finally {
    trust.cleanup();
    sandbox.cleanup();
  }
});

test('CI example: an invalid fleet stops the script before anything is built or copied', async () => {
  if (!requireTool('nix', 'the CI example')) return;
  const sandbox = nixSandbox('nixfleet-ci-');
  try {
    const flake = join(sandbox.dir, 'fleet');
    fleetFlake(flake, randomBytes(8).toString('hex'));
    writeFileSync(
      join(flake, 'flake.nix'),
      readFileSync(join(flake, 'flake.nix'), 'utf8').replace(
        'freshnessSeconds = 3600',
        'freshnessSeconds = 60',
      ),
    );
    const cache = join(sandbox.dir, 'cache');
    const r = await run('bash', [join(SCRIPTS, 'publish.sh')], {
      env: {
        ...sandbox.env,
        FLAKE: flake,
        CACHE_URL: `file://${cache}`,
        CACHE_KEY_FILE: '/nonexistent',
        TREE_DIR: join(sandbox.dir, 'tree'),
        TRUST_DIR: '/nonexistent',
        RELEASE_KEY: '/nonexistent',
        NIXFLEET: join(REPO, 'bin/nixfleet.js'),
      },
      timeoutMs: 120_000,
    });
    assert.is.not(r.code, 0);
    assert.match(
      r.stderr,
      /channels\.stable\.freshnessSeconds: 60 is less than 2 x signingIntervalSeconds/,
    );
    let cacheExists = true;
    try {
      readdirSync(cache);
    } catch {
      cacheExists = false;
    }
    assert.not.ok(cacheExists, 'nothing was copied');
  } finally {
    sandbox.cleanup();
  }
});

test.run();
