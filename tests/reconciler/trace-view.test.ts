// trace() over simulated ack histories, and fleetView() states.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fleetView, trace, latestAcks } from '../../reconciler/index.ts';
import { buildFleet, ackFor } from '../../reconciler/simulator/builders.ts';
import { simulate } from '../../reconciler/simulator/sim.ts';

const spec = {
  channels: [
    { name: 'canary', waves: [{ hosts: ['cn-1'], soakSeconds: 300 }] },
    {
      name: 'stable',
      gatedBy: ['canary'],
      waves: [
        { hosts: ['s-1', 's-2'], soakSeconds: 300 },
        { hosts: ['s-3', 's-4', 's-5'], soakSeconds: 300 },
      ],
    },
  ],
  budgets: [{ id: 'stable', hosts: ['s-3', 's-4', 's-5'], maxInFlight: 1 }],
};

test('trace of a channel: eligibility follows soaks, holds name their gate, every host activates, confirms and soaks', () => {
  const fleet = buildFleet(spec);
  const r = simulate({ seed: 3, fleet });
  assert.ok(r.converged);
  const t = trace({
    plans: fleet.plans,
    budgets: fleet.budgets,
    revocations: fleet.revocations,
    history: r.history.map((e) => e.ack),
    subject: { channel: 'stable' },
    stepSeconds: 10,
  });
  assert.is(t.hosts.length, 5);
  for (const h of t.hosts) {
    assert.ok(
      h.activatedAt !== null && h.confirmedAt !== null && h.soakedAt !== null,
      `${h.host} lifecycle incomplete`,
    );
    assert.ok(
      h.eligibleAt! <= h.activatedAt! &&
        h.activatedAt! <= h.confirmedAt! &&
        h.confirmedAt! < h.soakedAt!,
      `${h.host} out of order`,
    );
    assert.is(h.failedAt, null);
  }
  const wave0Soaked = Math.max(...t.hosts.filter((h) => h.wave === 0).map((h) => h.soakedAt!));
  for (const h of t.hosts.filter((x) => x.wave === 1)) {
    assert.ok(h.eligibleAt! >= wave0Soaked, `${h.host} eligible before wave 0 soaked`);
    const held = h.holds.find((x) => x.gate === 'earlier-waves');
    assert.ok(
      held !== undefined && held.seconds > 0 && held.reason.includes('wave 1 of channel stable'),
      JSON.stringify(h.holds),
    );
  }
  // The canary gates the whole channel first.
  for (const h of t.hosts)
    assert.ok(
      h.holds.some((x) => x.gate === 'channel-edge'),
      `${h.host} was never held by the channel edge`,
    );
  // With a budget of 1, at least two of the three wave-1 hosts waited for a slot.
  assert.ok(t.hosts.filter((h) => h.holds.some((x) => x.gate === 'disruption-budget')).length >= 2);
  const one = trace({
    plans: fleet.plans,
    budgets: fleet.budgets,
    revocations: fleet.revocations,
    history: r.history.map((e) => e.ack),
    subject: { host: 's-4' },
  });
  assert.is(one.hosts.length, 1);
  assert.ok(one.entries.every((e) => e.host === 's-4'));
});

test('trace shows a failure and the halt that follows it', () => {
  const fleet = buildFleet(spec);
  const r = simulate({ seed: 5, fleet, failingHosts: ['s-1'], maxSeconds: 3 * 3600 });
  const t = trace({
    plans: fleet.plans,
    budgets: fleet.budgets,
    revocations: fleet.revocations,
    history: r.history.map((e) => e.ack),
    subject: { channel: 'stable' },
  });
  const s1 = t.hosts.find((h) => h.host === 's-1')!;
  assert.ok(s1.failedAt !== null);
  for (const h of t.hosts.filter((x) => x.wave === 1)) {
    assert.is(h.activatedAt, null);
    assert.ok(
      h.holds.some((x) => x.gate === 'halted' && x.to === t.until),
      `${h.host} should be held by the halt to the end`,
    );
  }
});

test('fleetView: wave, channel and host states mid-rollout', () => {
  const f = buildFleet(spec);
  const NOW = Date.UTC(2026, 0, 1, 12);
  const MIN = 60_000;
  const acks = latestAcks([
    ackFor(f, 'cn-1', 'heartbeat', NOW - MIN, { healthySince: NOW - 30 * MIN, seq: 4 }),
    ackFor(f, 's-1', 'heartbeat', NOW - MIN, { healthySince: NOW - 2 * MIN, seq: 4 }),
    ackFor(f, 's-2', 'activated', NOW - MIN, { seq: 3 }),
    ackFor(f, 's-3', 'heartbeat', NOW - MIN),
    ackFor(f, 's-4', 'heartbeat', NOW - 40 * MIN),
  ]);
  const v = fleetView({
    now: NOW,
    plans: f.plans,
    budgets: f.budgets,
    revocations: f.revocations,
    acks,
  });
  const canary = v.channels.find((c) => c.channel === 'canary')!;
  const stable = v.channels.find((c) => c.channel === 'stable')!;
  assert.is(canary.state, 'complete');
  assert.is(stable.state, 'in-progress');
  assert.is(stable.currentWave, 0);
  assert.is(stable.waves[0]!.state, 'active');
  assert.is(stable.waves[1]!.state, 'waiting');
  assert.equal(stable.waves[0]!.blockingHosts.sort(), ['s-1', 's-2']);
  const byHost = new Map(v.hosts.map((h) => [h.host, h]));
  assert.is(byHost.get('s-1')!.phase, 'healthy');
  assert.is(byHost.get('s-2')!.phase, 'confirming');
  assert.is(byHost.get('s-3')!.phase, 'pending');
  assert.is(byHost.get('s-3')!.gate, 'earlier-waves');
  assert.match(byHost.get('s-3')!.reason!, /waiting for wave 1 of channel stable/);
  assert.is(byHost.get('s-4')!.phase, 'offline');
  assert.is(byHost.get('s-5')!.phase, 'offline');
  assert.is(v.budgets[0]!.inFlight, 0);
  // Once s-2 is healthy too, the wave is soaking.
  const acks2 = {
    ...acks,
    's-2': ackFor(f, 's-2', 'healthy', NOW - MIN, { healthySince: NOW - MIN, seq: 4 }),
  };
  const v2 = fleetView({
    now: NOW,
    plans: f.plans,
    budgets: f.budgets,
    revocations: f.revocations,
    acks: acks2,
  });
  assert.is(v2.channels.find((c) => c.channel === 'stable')!.waves[0]!.state, 'soaking');
});

test.run();
