// decide() refuses inputs that do not belong together instead of deciding on a mix: a prepared fleet
// from another input, or a host manifest that is not the one its channel plan names.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { decide, prepareFleet, type DecideInput } from '../../reconciler/index.ts';

const fixture = (name: string) =>
  (
    JSON.parse(
      readFileSync(new URL(`../fixtures/reconciler/${name}.json`, import.meta.url), 'utf8'),
    ) as { input: DecideInput }
  ).input;

test('a prepared fleet is only used with the very input it was built from', () => {
  const input = fixture('rollout-opens');
  const prepared = prepareFleet(input);
  assert.is(decide(input, prepared).kind, decide(input).kind);
  assert.throws(() => decide({ ...input, now: input.now + 1 }, prepared), /different input/);
  assert.throws(() => decide({ ...input, acks: { ...input.acks } }, prepared), /different input/);
});

test('a manifest whose target, wave or rollout id differs from the channel plan is refused', () => {
  const input = fixture('rollout-opens');
  const m = input.manifest;
  for (const manifest of [
    { ...m, target: '/nix/store/00000000000000000000000000000000-nixos-system-other' },
    { ...m, wave: m.wave + 1 },
    { ...m, rolloutId: `sha256:${'0'.repeat(64)}` },
  ])
    assert.throws(() => decide({ ...input, manifest }), /does not match the plan of channel/);
});

test('a plan whose host list names a host none of its waves holds is refused, naming host and channel', () => {
  const input = fixture('rollout-opens');
  const m = input.manifest;
  const plan = input.plans[m.channel]!;
  // The manifest still matches the plan's host entry; only the waves lost the host.
  const waves = plan.waves.map((w) => ({ ...w, hosts: w.hosts.filter((h) => h !== m.host) }));
  const plans = { ...input.plans, [m.channel]: { ...plan, waves } };
  const err = (() => {
    try {
      decide({ ...input, plans });
    } catch (e) {
      return e as Error;
    }
    return null;
  })();
  assert.is(err?.name, 'ReconcilerInputError');
  assert.is(err?.message, `host "${m.host}" is in no wave of channel "${m.channel}"`);
});

test.run();
