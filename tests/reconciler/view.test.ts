// fleetView() (reconciler/view.ts): every wave and channel state with the reason an operator reads, the
// per-host list, the counts, and the budgets, over hand-written fleets at one instant.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ackFor, buildFleet, type BuiltFleet } from '../../reconciler/simulator/builders.ts';
import { fleetView, HOST_PHASES, type AckRecord, type FleetView } from '../../reconciler/index.ts';

const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);
const MIN = 60_000;

const f = buildFleet({
  channels: [
    {
      name: 'canary',
      waves: [{ hosts: ['c-1'], soakSeconds: 600 }],
    },
    {
      name: 'stable',
      gatedBy: ['canary'],
      reboot: 'allowed',
      deferredHosts: 'excuse',
      waves: [
        { hosts: ['s-1', 's-2', 's-3'], soakSeconds: 600, failureThreshold: { count: 1 } },
        { hosts: ['s-4'], soakSeconds: 300 },
      ],
    },
  ],
  budgets: [{ id: 'fleet', hosts: ['c-1', 's-1', 's-2', 's-3', 's-4'], maxInFlight: 2 }],
});

const soaked = (g: BuiltFleet, h: string) =>
  ackFor(g, h, 'heartbeat', NOW - MIN, { healthySince: NOW - 20 * MIN, seq: 5 });
const idle = (g: BuiltFleet, h: string) => ackFor(g, h, 'heartbeat', NOW - MIN);

function view(acks: AckRecord[], hosts = true, g: BuiltFleet = f): FleetView {
  return fleetView(
    {
      now: NOW,
      plans: g.plans,
      budgets: g.budgets,
      revocations: g.revocations,
      acks: Object.fromEntries(acks.map((a) => [a.host, a])),
    },
    { hosts },
  );
}

test('a gated channel: its waves wait, the channel names the edge; the gating channel is in progress', () => {
  const v = view([ackFor(f, 'c-1', 'started', NOW - MIN, { seq: 2 })]);
  assert.is(v.now, NOW);
  assert.equal(
    v.channels.map((c) => c.channel),
    ['canary', 'stable'],
    'channels in name order',
  );
  const [canary, stable] = v.channels as [FleetView['channels'][0], FleetView['channels'][0]];
  assert.is(canary.state, 'in-progress');
  assert.is(
    canary.reason,
    'waiting for wave 1 of channel canary: c-1 is activating (started (last ack 60 s ago))',
  );
  assert.is(canary.waves[0]!.state, 'active');
  assert.is(stable.state, 'gated');
  assert.match(stable.reason, 'channel stable waits for channel canary to complete');
  assert.equal(
    stable.waves.map((w) => w.state),
    ['waiting', 'waiting'],
  );
  assert.is(stable.rolloutId, f.plans['stable']!.rolloutId);
  assert.is(stable.releaseVersion, 1);
  assert.is(stable.reboot, 'allowed');
  assert.is(stable.deferredHosts, 'excuse');
  assert.is(canary.reboot, 'never');
  assert.is(canary.deferredHosts, 'hold');
  assert.is(stable.currentWave, 0);
  const w = stable.waves[1]!;
  assert.equal(
    [w.channel, w.index, w.hosts, w.soakSeconds, w.allowedFailures, w.failures],
    ['stable', 1, 1, 300, 0, 0],
  );
  // Every host listed once, with its channel, wave and target; gated ones with the edge's reason.
  assert.equal(v.hosts.map((h) => h.host).sort(), ['c-1', 's-1', 's-2', 's-3', 's-4']);
  const s4 = v.hosts.find((h) => h.host === 's-4')!;
  assert.equal(
    [s4.channel, s4.wave, s4.target, s4.phase, s4.gate, s4.lastAck, s4.healthySeconds, s4.excused],
    ['stable', 1, f.targets['s-4'], 'offline', null, null, 0, false],
  );
  assert.is(s4.reason, null, 'only pending and deferred hosts carry a reason');
  assert.is(s4.detail, 'no ack received');
  const c1 = v.hosts.find((h) => h.host === 'c-1')!;
  assert.is(c1.lastAck, NOW - MIN);
  assert.is(c1.detail, 'started (last ack 60 s ago)');
  assert.equal(v.budgets, [{ id: 'fleet', max: 2, inFlight: 1, inFlightHosts: ['c-1'] }]);
});

test('wave states: soaking while only healthy hosts hold it, complete with excused deferrals named, halted past its threshold', () => {
  const base = [soaked(f, 'c-1'), idle(f, 's-4')];
  const soaking = view([
    ...base,
    soaked(f, 's-1'),
    ackFor(f, 's-2', 'heartbeat', NOW - MIN, { healthySince: NOW - 3 * MIN, seq: 4 }),
    soaked(f, 's-3'),
  ]).channels[1]!;
  assert.is(soaking.state, 'in-progress');
  assert.is(soaking.waves[0]!.state, 'soaking');
  assert.is(soaking.waves[1]!.state, 'waiting');
  assert.is(
    soaking.reason,
    'waiting for wave 1 of channel stable: s-2 healthy for 2 of 10 soak minutes',
  );
  // s-2 deferred under `excuse`: the wave completes and says which hosts it excused.
  const deferred = ackFor(f, 's-2', 'deferred', NOW - MIN, { seq: 3, reason: 'kernel changes' });
  const excused = view([...base, soaked(f, 's-1'), deferred, soaked(f, 's-3')]);
  const st = excused.channels[1]!;
  assert.is(st.waves[0]!.state, 'complete');
  assert.is(
    st.waves[0]!.reason,
    'wave 1 of channel stable is complete (deferred, excused by deferredHosts: excuse: s-2)',
  );
  assert.is(st.currentWave, 1);
  assert.is(st.waves[1]!.state, 'active');
  const s2 = excused.hosts.find((h) => h.host === 's-2')!;
  assert.is(s2.excused, true);
  assert.match(s2.reason!, 'excused for wave 1 of channel stable (deferredHosts: excuse)');
  assert.equal(st.waves[0]!.counts, {
    ...Object.fromEntries(HOST_PHASES.map((p) => [p, 0])),
    soaked: 2,
    deferred: 1,
  });
  // All soaked: complete, with the plain reason.
  const done = view([
    ...base,
    soaked(f, 's-1'),
    soaked(f, 's-2'),
    soaked(f, 's-3'),
    soaked(f, 's-4'),
  ]);
  assert.is(done.channels[1]!.state, 'complete');
  assert.is(done.channels[1]!.reason, 'rollout of channel stable is complete');
  assert.is(done.channels[1]!.waves[0]!.reason, 'wave 1 of channel stable is complete');
  assert.is(done.channels[1]!.currentWave, 2);
  // Two failures, one allowed: wave 1 halted, wave 2 (not complete) halted with it.
  const failed = (h: string) => ackFor(f, h, 'failed', NOW - MIN, { seq: 4, reason: 'probe' });
  const halted = view([...base, failed('s-1'), failed('s-2'), soaked(f, 's-3')]).channels[1]!;
  assert.is(halted.state, 'halted');
  assert.equal(
    halted.waves.map((w) => w.state),
    ['halted', 'halted'],
  );
  assert.match(
    halted.reason,
    'rollout of channel stable is halted: wave 1 has 2 failed host(s) (s-1, s-2)',
  );
  assert.is(halted.waves[1]!.reason, halted.reason);
  assert.is(halted.waves[0]!.failures, 2);
  // A halt in wave 2 leaves the completed wave 1 complete.
  const late = view([
    ...base.slice(0, 1),
    soaked(f, 's-1'),
    soaked(f, 's-2'),
    soaked(f, 's-3'),
    ackFor(f, 's-4', 'failed', NOW - MIN, { seq: 4 }),
  ]).channels[1]!;
  assert.is(late.state, 'halted');
  assert.equal(
    late.waves.map((w) => w.state),
    ['complete', 'halted'],
  );
  assert.is(halted.waves[0]!.allowedFailures, 1);
});

test('a pending host that passes every gate says it starts at its next poll; hosts: false lists none but counts all', () => {
  const acks = [soaked(f, 'c-1'), idle(f, 's-1'), idle(f, 's-2'), idle(f, 's-3')];
  const v = view(acks);
  const s1 = v.hosts.find((h) => h.host === 's-1')!;
  assert.is(s1.phase, 'pending');
  assert.is(s1.gate, null);
  assert.is(s1.reason, 'every gate passed: starts at its next poll');
  assert.is(v.channels[1]!.waves[0]!.state, 'active');
  const bare = view(acks, false);
  assert.equal(bare.hosts, []);
  assert.equal(bare.channels, v.channels);
  assert.equal(bare.budgets, v.budgets);
});

test('long lists are cut: the first ten blocking hosts of a wave, the first twenty in-flight hosts of a budget', () => {
  const hosts = Array.from({ length: 25 }, (_, i) => `h-${String(i).padStart(2, '0')}`);
  const g = buildFleet({
    channels: [{ name: 'big', waves: [{ hosts, soakSeconds: 600 }] }],
    budgets: [{ id: 'big', hosts, maxInFlight: 30 }],
  });
  const v = view(
    hosts.map((h) => ackFor(g, h, 'started', NOW - MIN, { seq: 2 })),
    false,
    g,
  );
  assert.equal(v.channels[0]!.waves[0]!.blockingHosts, hosts.slice(0, 10));
  assert.equal(v.budgets[0], {
    id: 'big',
    max: 30,
    inFlight: 25,
    inFlightHosts: hosts.slice(0, 20),
  });
});

test("a view of some channels has only theirs, yet reads the others' gates: stable still waits for canary", () => {
  const input = {
    now: NOW,
    plans: f.plans,
    budgets: f.budgets,
    revocations: f.revocations,
    acks: Object.fromEntries([idle(f, 'c-1'), idle(f, 's-1')].map((a) => [a.host, a])),
  };
  const all = fleetView(input);
  const stable = fleetView(input, { channels: ['stable'] });
  assert.equal(
    stable.channels.map((c) => c.channel),
    ['stable'],
  );
  assert.equal(
    stable.channels[0],
    all.channels.find((c) => c.channel === 'stable'),
  );
  assert.equal(
    stable.hosts.map((h) => h.host),
    ['s-1', 's-2', 's-3', 's-4'],
  );
  assert.match(stable.channels[0]!.reason, 'canary');
  // A budget is shown when one of its hosts is (fleet spans canary and stable).
  assert.equal(
    stable.budgets.map((b) => b.id),
    ['fleet'],
  );
  assert.equal(stable.budgets, all.budgets);
  assert.equal(
    fleetView(input, { channels: ['canary'] }).channels.map((c) => c.channel),
    ['canary'],
  );
});

test("a one-host view (only) lists that host's row alone, as the full view has it; waves, channels and budgets unchanged", () => {
  const input = {
    now: NOW,
    plans: f.plans,
    budgets: f.budgets,
    revocations: f.revocations,
    acks: Object.fromEntries(
      [soaked(f, 'c-1'), idle(f, 's-1'), soaked(f, 's-2')].map((a) => [a.host, a]),
    ),
  };
  const stable = fleetView(input, { channels: ['stable'] });
  for (const host of ['s-1', 's-2', 's-4']) {
    const one = fleetView(input, { channels: ['stable'], only: new Set([host]) });
    assert.equal(
      one.hosts,
      stable.hosts.filter((h) => h.host === host),
    );
    assert.equal(one.channels, stable.channels);
    assert.equal(one.budgets, stable.budgets);
  }
});

test('a presumed failure within the threshold still holds its wave: its real outcome may yet arrive', () => {
  const g = buildFleet({
    channels: [
      {
        name: 'stable',
        confirmDeadlineSeconds: 300,
        waves: [
          { hosts: ['web-01', 'web-02'], soakSeconds: 600, failureThreshold: { count: 1 } },
          { hosts: ['web-03'], soakSeconds: 600 },
        ],
      },
    ],
  });
  const v = view(
    [
      ackFor(g, 'web-01', 'started', NOW - 30 * MIN, { seq: 2 }),
      soaked(g, 'web-02'),
      idle(g, 'web-03'),
    ],
    true,
    g,
  );
  const ch = v.channels[0]!;
  assert.is(ch.state, 'in-progress', 'one failure is tolerated: not halted');
  assert.is(ch.waves[0]!.state, 'active');
  assert.match(
    ch.waves[0]!.reason,
    'web-01 is failed (started, but no outcome within its confirm deadline',
  );
  assert.is(ch.waves[1]!.state, 'waiting');
});

test.run();
