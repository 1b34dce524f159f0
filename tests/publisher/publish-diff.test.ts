// `nixfleet publish` of an identical fleet says "no change" and writes nothing; --dry-run prints the
// per-channel diff (targets per host, rollout restart or not, plan settings) and writes nothing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writePrivateKey } from '../../protocol/keys.ts';
import { generateFleet } from '../support/fleet-gen.ts';
import { setupTrust } from './helpers.ts';
import { runCli } from '../support/cli.ts';

const OTHER = '/nix/store/99999999999999999999999999999999-nixos-system-other';

test('identical fleet: no change, exit 0, nothing written; --dry-run shows a per-channel diff and writes nothing', async () => {
  const s = setupTrust();
  try {
    const keyFile = join(s.dir, 'release.key');
    writePrivateKey(keyFile, s.releaseKey);
    const fleet = generateFleet({ hosts: 6, channels: 2, wavesPerChannel: 2, seed: 'diff' })
      .fleet as {
      hosts: Record<string, { channel: string; target: string }>;
      channels: Record<string, { heartbeatSeconds: number }>;
    };
    const fleetFile = join(s.dir, 'fleet.json');
    writeFileSync(fleetFile, JSON.stringify(fleet));
    const args = [
      '--tree',
      s.treeDir,
      '--release-key',
      keyFile,
      '--trust',
      s.trustDir,
      '--no-cache-check',
    ];
    const first = await runCli('publish', fleetFile, ...args, '--now', '2026-01-01T00:00:00Z');
    assert.is(first.code, 0, first.err);
    const ts = readFileSync(join(s.treeDir, 'timestamp.json'));

    const same = await runCli(
      'publish',
      fleetFile,
      ...args,
      '--now',
      '2026-01-01T00:01:00Z',
      '--json',
    );
    assert.is(same.code, 0, same.err);
    const r = JSON.parse(same.out) as {
      status: string;
      version: number;
      diff: { identical: boolean };
    };
    assert.equal([r.status, r.version, r.diff.identical], ['unchanged', 1, true]);
    assert.not.ok(
      existsSync(join(s.treeDir, 'releases', '2')),
      'an identical fleet wrote a release',
    );
    assert.ok(
      readFileSync(join(s.treeDir, 'timestamp.json')).equals(ts),
      'an identical fleet re-signed the timestamp',
    );

    // One host's target changes, and another channel's heartbeat (a setting outside the rollout id).
    const [host, entry] = Object.entries(fleet.hosts)[0]!;
    const otherChannel = Object.keys(fleet.channels).find((c) => c !== entry.channel)!;
    const changed = structuredClone(fleet);
    changed.hosts[host]!.target = OTHER;
    changed.channels[otherChannel]!.heartbeatSeconds += 5;
    writeFileSync(fleetFile, JSON.stringify(changed));
    const dry = await runCli(
      'publish',
      fleetFile,
      ...args,
      '--now',
      '2026-01-01T00:02:00Z',
      '--dry-run',
    );
    assert.is(dry.code, 0, dry.err);
    assert.match(dry.out, /dry run: would publish release 2/);
    assert.match(
      dry.out,
      new RegExp(`channel ${entry.channel}: changed, new rollout, 1 target change`),
    );
    assert.ok(dry.out.includes(`${host}: ${entry.target} -> ${OTHER}`), dry.out);
    assert.match(
      dry.out,
      new RegExp(
        `channel ${otherChannel}: changed, same rollout \\(soaks kept\\); heartbeatSeconds \\d+ -> \\d+`,
      ),
    );
    assert.not.ok(existsSync(join(s.treeDir, 'releases', '2')), '--dry-run wrote a release');
    assert.ok(
      readFileSync(join(s.treeDir, 'timestamp.json')).equals(ts),
      '--dry-run wrote the timestamp',
    );

    const json = JSON.parse(
      (
        await runCli(
          'publish',
          fleetFile,
          ...args,
          '--now',
          '2026-01-01T00:02:00Z',
          '--dry-run',
          '--json',
        )
      ).out,
    ) as {
      status: string;
      diff: {
        channels: { channel: string; restartsRollout: boolean; targets: { host: string }[] }[];
      };
    };
    assert.is(json.status, 'dry-run');
    const ch = json.diff.channels.find((c) => c.channel === entry.channel)!;
    assert.equal([ch.restartsRollout, ch.targets.map((t) => t.host)], [true, [host]]);
    assert.is(json.diff.channels.find((c) => c.channel === otherChannel)!.restartsRollout, false);

    const real = await runCli('publish', fleetFile, ...args, '--now', '2026-01-01T00:03:00Z');
    assert.is(real.code, 0, real.err);
    assert.match(real.out, /published release 2/);
    assert.match(real.out, /changes against release 1/);
    assert.ok(existsSync(join(s.treeDir, 'releases', '2')));
    // --force publishes an identical fleet anyway.
    const forced = await runCli(
      'publish',
      fleetFile,
      ...args,
      '--now',
      '2026-01-01T00:04:00Z',
      '--force',
    );
    assert.match(forced.out, /published release 3/);
  } finally {
    s.cleanup();
  }
});

test.run();
