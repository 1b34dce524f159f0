import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFileSync, writeFileSync } from 'node:fs';
import { writePrivateKey } from '../../protocol/keys.ts';
import { generateFleet } from '../support/fleet-gen.ts';
import { checkTree } from './tree-check.ts';
import { setupTrust, keyFromLabel } from './helpers.ts';
import { runCli } from '../support/cli.ts';

const fixtures = fileURLToPath(new URL('../fixtures/fleets/', import.meta.url));
const BIN = fileURLToPath(new URL('../../bin/nixfleet.js', import.meta.url));

async function cli(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await runCli(...argv);
  return { code: r.code, stdout: r.out, stderr: r.err };
}

test('validate: 0 with the resolved waves, 1 with every violation, 2 for a missing file', async () => {
  const ok = await cli('validate', join(fixtures, 'golden/canary-then-staged/fleet.json'));
  assert.is(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /wave 0 \[count\] 1 host, soak 600s/);
  const json = await cli(
    'validate',
    join(fixtures, 'golden/canary-then-staged/fleet.json'),
    '--json',
  );
  assert.is(JSON.parse(json.stdout).channels.stable.waves.length, 3);
  const bad = await cli('validate', join(fixtures, 'negative/many-violations-at-once.json'));
  assert.is(bad.code, 1);
  assert.match(bad.stderr, /the fleet is invalid \(4 violations\)/);
  assert.match(bad.stderr, /hosts\.web-02\.channel: unknown channel "stabel"/);
  const badJson = await cli('validate', '--json', join(fixtures, 'negative/unknown-policy.json'));
  assert.is(badJson.code, 1);
  assert.equal(JSON.parse(badJson.stdout).errors, [
    'channels.beta.policy: unknown policy "stagged" (did you mean "staged"?)',
  ]);
  const dup = await cli('validate', join(fixtures, 'negative/duplicate-json-key.json'));
  assert.is(dup.code, 1);
  assert.match(dup.stderr, /duplicate key "fleet"/);
  assert.is((await cli('validate', '/nonexistent/fleet.json')).code, 2);
  assert.is((await cli('validate')).code, 2);
});

test('publish, refresh and their refusals', async () => {
  const s = setupTrust();
  try {
    const keyFile = join(s.dir, 'release.key');
    writePrivateKey(keyFile, s.releaseKey);
    const fleetFile = join(s.dir, 'fleet.json');
    writeFileSync(
      fleetFile,
      JSON.stringify(
        generateFleet({ hosts: 12, channels: 2, wavesPerChannel: 2, seed: 'cli' }).fleet,
      ),
    );
    const args = [
      '--tree',
      s.treeDir,
      '--release-key',
      keyFile,
      '--trust',
      s.trustDir,
      '--no-cache-check',
    ];
    // Without --no-cache-check a fleet with no cacheUrl is refused (tests/publisher/cache-check.test.ts
    // covers the check itself against a real signed cache).
    const { cacheUrl: _, ...noCache } = JSON.parse(readFileSync(fleetFile, 'utf8'));
    const noCacheFile = join(s.dir, 'fleet-no-cache.json');
    writeFileSync(noCacheFile, JSON.stringify(noCache));
    const unchecked = await cli(
      'publish',
      noCacheFile,
      ...args.slice(0, -1),
      '--now',
      '2026-01-01T00:00:00Z',
    );
    assert.is(unchecked.code, 1, unchecked.stderr);
    assert.match(unchecked.stderr, /the fleet has no cacheUrl.*--no-cache-check/);
    const first = await cli(
      'publish',
      fleetFile,
      ...args,
      '--now',
      '2026-01-01T00:00:00Z',
      '--json',
      '--source',
      'git:1234',
    );
    assert.is(first.code, 0, first.stderr);
    const r = JSON.parse(first.stdout);
    assert.is(r.version, 1);
    assert.is(r.hosts, 12);
    assert.equal(r.cacheCheck, { skipped: true });
    assert.is(checkTree(s.treeDir, s.releaseKey).index.source, 'git:1234');

    const again = await cli(
      'publish',
      fleetFile,
      ...args,
      '--now',
      '2026-01-01T00:01:00Z',
      '--version',
      '1',
    );
    assert.is(again.code, 1);
    assert.match(again.stderr, /not greater than the tree's version 1/);

    const unchanged = await cli('publish', fleetFile, ...args, '--now', '2026-01-01T00:01:30Z');
    assert.is(unchanged.code, 0, unchanged.stderr);
    assert.match(unchanged.stdout, /no change: the fleet is identical to release 1/);
    const progress = await cli(
      'publish',
      fleetFile,
      ...args,
      '--now',
      '2026-01-01T00:02:00Z',
      '--progress',
      '--force',
    );
    assert.is(progress.code, 0, progress.stderr);
    assert.match(progress.stderr, /signing \d+\/\d+/);
    assert.match(progress.stdout, /published release 2 of 12 hosts/);
    assert.match(progress.stdout, /binary cache: NOT checked \(--no-cache-check\)/);

    const refreshed = await cli(
      'refresh',
      '--tree',
      s.treeDir,
      '--release-key',
      keyFile,
      '--now',
      '2026-01-01T00:30:00Z',
      '--json',
    );
    assert.is(refreshed.code, 0, refreshed.stderr);
    assert.is(JSON.parse(refreshed.stdout).expires, '2026-01-01T01:30:00Z');

    const intruderFile = join(s.dir, 'intruder.key');
    writePrivateKey(intruderFile, keyFromLabel('intruder'));
    const refused = await cli(
      'refresh',
      '--tree',
      s.treeDir,
      '--release-key',
      intruderFile,
      '--now',
      '2026-01-01T00:40:00Z',
    );
    assert.is(refused.code, 1);
    assert.match(refused.stderr, /not listed in trust root v1/);

    assert.is(
      (await cli('publish', fleetFile, '--tree', s.treeDir, '--release-key', keyFile)).code,
      2,
      'missing --trust',
    );
    assert.is((await cli('publish', fleetFile, ...args, '--version', 'two')).code, 2);
    assert.is(
      (await cli('publish', fleetFile, ...args, '--release-key', join(s.dir, 'missing.key'))).code,
      2,
    );
    assert.is(
      (await cli('publish', join(fixtures, 'negative/unknown-channel.json'), ...args)).code,
      1,
    );
  } finally {
    s.cleanup();
  }
});

test('the binary: --flake without nix says so plainly (exit 2); an invalid fleet exits 1', () => {
  const env = { ...process.env, PATH: '/nonexistent' };
  const flake = spawnSync(process.execPath, [BIN, 'validate', '--flake', '.#fleet'], {
    env,
    encoding: 'utf8',
  });
  assert.is(flake.status, 2, flake.stderr);
  assert.match(
    flake.stderr,
    /nix is not installed \(needed for --flake\); pass a fleet JSON file instead/,
  );
  const bad = spawnSync(
    process.execPath,
    [BIN, 'validate', join(fixtures, 'negative/host-edge-cycle.json')],
    { encoding: 'utf8' },
  );
  assert.is(bad.status, 1);
  assert.match(bad.stderr, /hostEdges: cycle web-01 -> web-02 -> web-03 -> web-01/);
});

test.run();
