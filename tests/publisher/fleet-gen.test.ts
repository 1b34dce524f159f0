import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { generateFleet } from '../support/fleet-gen.ts';
import { Fleet } from '../../publisher/fleet-schema.ts';
import { b64, signingKeyFromSeed } from '../../protocol/keys.ts';
import { signBytes, verifyBytes } from '../../protocol/ed25519.ts';
import { hostKeyFor } from '../support/fleet-gen.ts';
import { canonicalString } from '../../protocol/canonical.ts';

test('generated fleets parse with the fleet schema', () => {
  const { fleet } = generateFleet({
    hosts: 50,
    channels: 3,
    wavesPerChannel: 4,
    seed: 's',
    chainChannels: true,
    budgetPct: 10,
  });
  const r = Fleet.safeParse(fleet);
  assert.ok(r.success, r.success ? '' : JSON.stringify(r.error.issues.slice(0, 3)));
  assert.is(Object.keys(fleet.hosts).length, 50);
  assert.equal(Object.keys(fleet.channels), ['ch-0', 'ch-1', 'ch-2']);
  assert.is(fleet.policies['rollout']!.waves.length, 4);
});

test('same seed -> identical fleet and keys; another seed -> different keys', () => {
  const a = generateFleet({ hosts: 5, channels: 2, wavesPerChannel: 2, seed: 'x' });
  const b = generateFleet({ hosts: 5, channels: 2, wavesPerChannel: 2, seed: 'x' });
  const c = generateFleet({ hosts: 5, channels: 2, wavesPerChannel: 2, seed: 'y' });
  assert.is(canonicalString(a.fleet), canonicalString(b.fleet));
  assert.is.not(a.fleet.hosts['host-000']!.hostKey, c.fleet.hosts['host-000']!.hostKey);
  assert.is.not(a.fleet.hosts['host-000']!.target, c.fleet.hosts['host-000']!.target);
});

test('returned host keys are the fleet host keys', () => {
  const { fleet, hostKeys } = generateFleet({
    hosts: 4,
    channels: ['stable'],
    wavesPerChannel: 1,
    seed: 'k',
  });
  for (const [name, h] of Object.entries(fleet.hosts))
    assert.is(h.hostKey, b64(hostKeys[name]!.publicKey));
  assert.is(fleet.policies['rollout']!.strategy, 'all-at-once');
});

test('generated host keys match node:crypto derivation and sign verifiably', () => {
  const k = hostKeyFor('seed', 'web-01');
  const viaNode = signingKeyFromSeed('web-01', k.seed);
  assert.equal(Buffer.from(k.publicKey), Buffer.from(viaNode.publicKey));
  assert.is(k.keyid, viaNode.keyid);
  const msg = new TextEncoder().encode('ack');
  assert.ok(verifyBytes(k.publicKey, msg, signBytes(k.seed, msg)));
});

test.run();
