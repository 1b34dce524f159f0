import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateFleet } from '../support/fleet-gen.ts';
import { validateFleet, assertValidFleet, FleetInvalid } from '../../publisher/validate.ts';
import { stableHostOrder, percentOf } from '../../publisher/waves.ts';
import { findCycles, describeCycle } from '../../publisher/graph.ts';

test('percentages round up and never below one host', () => {
  assert.is(percentOf(1, 7), 1);
  assert.is(percentOf(34, 7), 3);
  assert.is(percentOf(50, 10), 5);
  assert.is(percentOf(51, 10), 6);
  assert.is(percentOf(1, 0), 1);
});

test('stable order depends on channel and host only, not on input order', () => {
  const hosts = ['a', 'b', 'c', 'd', 'e', 'f'];
  const one = stableHostOrder('stable', hosts);
  assert.equal(stableHostOrder('stable', [...hosts].reverse()), one);
  assert.not.equal(stableHostOrder('beta', hosts), one);
});

test('every host is in exactly one wave of its own channel, for many generated fleets', () => {
  for (const [hosts, channels, waves] of [
    [1, 1, 1],
    [2, 1, 4],
    [37, 3, 4],
    [100, 5, 3],
    [9, 2, 6],
  ] as const) {
    const { fleet } = generateFleet({ hosts, channels, wavesPerChannel: waves, seed: `w${hosts}` });
    const r = validateFleet(fleet);
    if (!r.ok) throw new Error(r.errors.join('\n'));
    const seen = new Map<string, string>();
    for (const ch of Object.values(r.resolved.channels)) {
      for (const w of ch.waves) {
        for (const h of w.hosts) {
          assert.not.ok(seen.has(h), `${h} twice`);
          seen.set(h, ch.name);
          assert.is(fleet.hosts[h]!.channel, ch.name);
        }
      }
    }
    assert.is(seen.size, hosts);
  }
});

test('wave sizes follow count and percent of the channel', () => {
  const { fleet } = generateFleet({ hosts: 40, channels: 1, wavesPerChannel: 1, seed: 'sizes' });
  fleet.policies['rollout'] = {
    strategy: 'canary',
    waves: [
      { count: 2, soakSeconds: 0 },
      { percent: 25, soakSeconds: 0 },
      { percent: 25, soakSeconds: 0 },
      { soakSeconds: 0 },
    ],
  };
  const r = assertValidFleet(fleet);
  assert.equal(
    r.resolved.channels['ch-0']!.waves.map((w) => w.hosts.length),
    [2, 10, 10, 18],
  );
});

test('cycles are found and named, also in long chains', () => {
  assert.equal(
    findCycles([
      { before: 'a', after: 'b' },
      { before: 'b', after: 'a' },
    ]).map(describeCycle),
    ['a -> b -> a'],
  );
  assert.equal(findCycles([{ before: 'x', after: 'x' }]).map(describeCycle), ['x -> x']);
  assert.equal(
    findCycles([
      { before: 'a', after: 'b' },
      { before: 'b', after: 'c' },
      { before: 'a', after: 'c' },
    ]),
    [],
  );
  const chain = Array.from({ length: 50_000 }, (_, i) => ({ before: `h${i}`, after: `h${i + 1}` }));
  assert.equal(findCycles(chain), []);
  chain.push({ before: 'h50000', after: 'h0' });
  assert.is(findCycles(chain)[0]!.length, 50_001);
});

test('FleetInvalid lists every violation in one message', () => {
  const { fleet } = generateFleet({ hosts: 4, channels: 2, wavesPerChannel: 2, seed: 'inv' });
  fleet.hosts['host-000']!.channel = 'nope';
  fleet.channels['ch-1']!.freshnessSeconds = 1;
  fleet.channelEdges = [{ before: 'ch-0', after: 'ch-0' }];
  try {
    assertValidFleet(fleet, 'fleet.json');
    assert.unreachable();
  } catch (e) {
    assert.instance(e, FleetInvalid);
    const m = (e as Error).message;
    assert.match(m, /^fleet\.json: the fleet is invalid \(3 violations\)/);
    assert.match(m, /hosts\.host-000\.channel: unknown channel "nope"/);
    assert.match(m, /channels\.ch-1\.freshnessSeconds: 1 is less than/);
    assert.match(m, /channelEdges: cycle ch-0 -> ch-0/);
  }
});

test('a canary wave holding most of the channel is a warning, not an error', () => {
  const { fleet } = generateFleet({ hosts: 4, channels: 1, wavesPerChannel: 1, seed: 'c' });
  fleet.policies['rollout'] = {
    strategy: 'canary',
    waves: [{ percent: 75, soakSeconds: 0 }, { soakSeconds: 0 }],
  };
  const r = validateFleet(fleet);
  assert.ok(r.ok);
  assert.ok(r.warnings.some((w) => w.includes('the canary wave holds 3 of 4 hosts')));
});

test('a revoked host kept in the fleet is a warning', () => {
  const { fleet } = generateFleet({ hosts: 3, channels: 1, wavesPerChannel: 1, seed: 'r' });
  fleet.revoked = {
    hosts: [
      { host: 'host-001', reason: 'lost' },
      { host: 'gone-01', reason: 'decommissioned' },
    ],
    closures: [],
  };
  const r = validateFleet(fleet);
  assert.ok(r.ok);
  assert.equal(
    r.warnings.filter((w) => w.startsWith('revoked.')),
    [
      'revoked.hosts[0]: host "host-001" is revoked but still in the fleet (its wave will wait for it or need an offline excuse)',
    ],
  );
});

test.run();
