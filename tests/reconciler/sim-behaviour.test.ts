// The simulated world behaves as its configuration says (reconciler/simulator/sim.ts): agents heartbeat
// like the real agent, acks become visible after the configured delay (or never), clocks are skewed by
// the configured amount, offline hosts are silent, inhibited hosts defer and then reboot, failures roll
// back, a stalled run ends, and a converged run's end is when the reconciler sees everything complete.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildFleet, type BuiltFleet } from '../../reconciler/simulator/builders.ts';
import { simulate, theoreticalMinimum, type SimResult } from '../../reconciler/simulator/sim.ts';
import { syntheticFleet } from '../../reconciler/simulator/generate.ts';
import { parseAckTime } from '../../reconciler/time.ts';
import { fleetView, latestAcks } from '../../reconciler/index.ts';

const START = Date.UTC(2026, 0, 1);
const fleet = () =>
  syntheticFleet({ hosts: 12, channels: 2, waves: 2, chain: true, soakSeconds: 300 });

/** Acks of one host in the order it posted them. */
function byHost(r: SimResult): Map<string, SimResult['history']> {
  const m = new Map<string, SimResult['history']>();
  for (const e of r.history) m.set(e.ack.host, [...(m.get(e.ack.host) ?? []), e]);
  return m;
}

test('a converged run ends when the last proof is visible, and the reconciler then sees every channel complete', () => {
  for (const seed of [1, 2, 3]) {
    const f = fleet();
    const r = simulate({ seed, fleet: f, clockSkewSeconds: 20, ackDelaySeconds: [0, 30] });
    assert.ok(r.converged, `seed ${seed}`);
    assert.is(r.endedAt, r.completedAt);
    assert.equal(
      r.finalView.channels.map((c) => c.state),
      ['complete', 'complete'],
    );
    // The end is when a proof (heartbeat or healthy ack) became visible, and, for a host whose clock runs
    // ahead, its signed time was reached; by then the acks the others see make every channel complete.
    const end = START + r.completedAt! * 1000;
    const proofs = r.history.filter((e) => e.ack.kind === 'heartbeat' || e.ack.kind === 'healthy');
    const counts = (e: (typeof proofs)[number]) =>
      Math.max(e.visibleAt, e.postedAt, parseAckTime(e.ack.time));
    assert.ok(
      proofs.some((e) => counts(e) === end),
      'the end is a proof becoming visible',
    );
    const seen = latestAcks(r.history.filter((e) => e.visibleAt <= end).map((e) => e.ack));
    const view = fleetView({
      now: end,
      plans: f.plans,
      budgets: f.budgets,
      revocations: f.revocations,
      acks: seen,
    });
    assert.ok(
      view.channels.every((c) => c.state === 'complete'),
      view.channels.map((c) => c.reason).join('; '),
    );
    assert.is(r.hosts, 12);
    assert.is(r.seed, seed);
    assert.is(r.ackCount, r.history.length);
    assert.ok(r.decisions >= r.starts.length && r.starts.length === 12);
    assert.ok(r.completedAt! >= r.theoreticalMinimum * 0.9);
  }
});

test('agents heartbeat like the real agent: on their target at every poll, while waiting within the offline window', () => {
  const f = fleet();
  for (const p of Object.values(f.plans)) p.heartbeatSeconds = 300; // longer than the poll
  const r = simulate({ seed: 4, fleet: f, pollSeconds: 60, pollJitterSeconds: 5 });
  assert.ok(r.converged);
  for (const [host, acks] of byHost(r)) {
    const target = f.targets[host];
    for (let i = 1; i < acks.length; i++) {
      const gap = acks[i]!.postedAt - acks[i - 1]!.postedAt;
      const onTarget = acks[i - 1]!.ack.current === target;
      // On the target: every poll once half the heartbeat (or poll) interval passed; a third of the 900 s offline window plus a poll before.
      const bound = onTarget ? 100_000 : 300_000 + 65_000;
      assert.ok(gap <= bound, `${host}: ${gap / 1000} s without an ack (on target: ${onTarget})`);
      // Waiting, it only heartbeats once a third of the offline window has passed.
      if (!onTarget && acks[i]!.ack.kind === 'heartbeat' && acks[i - 1]!.ack.kind === 'heartbeat')
        assert.ok(gap >= 300_000, `${host}: heartbeats ${gap / 1000} s apart while waiting`);
    }
  }
});

test('ack visibility: within the configured delay, never for a lost ack, at whole quanta when batched', () => {
  const f = fleet();
  const r = simulate({ seed: 5, fleet: f, ackDelaySeconds: [10, 40], ackLossRate: 0.2 });
  const lost = r.history.filter((e) => e.visibleAt === Infinity).length;
  assert.ok(lost > 0.1 * r.history.length && lost < 0.3 * r.history.length, `${lost} lost`);
  const delays = r.history
    .filter((e) => e.visibleAt !== Infinity)
    .map((e) => e.visibleAt - e.postedAt);
  assert.ok(
    delays.every((d) => d >= 10_000 && d <= 40_000 && d % 1000 === 0),
    'delays in range',
  );
  assert.ok(new Set(delays).size > 10, 'delays vary');
  const none = simulate({ seed: 5, fleet: f });
  assert.ok(
    none.history.every((e) => e.visibleAt === e.postedAt),
    'no delay by default',
  );

  const b = simulate({ seed: 5, fleet: f, batchVisibility: true, timeQuantumSeconds: 5 });
  assert.ok(b.converged);
  for (const e of b.history)
    assert.ok(
      e.visibleAt > e.postedAt && (e.visibleAt - START) % 5000 === 0,
      `visible at ${e.visibleAt - START} ms, posted at ${e.postedAt - START} ms`,
    );
  // Polls (and so starts) fall on whole quanta too.
  assert.ok(b.starts.every((s) => s.at % 5 === 0));
  const unbatched = simulate({ seed: 5, fleet: f, timeQuantumSeconds: 5 });
  assert.ok(
    unbatched.starts.some((s) => s.at % 5 !== 0),
    'the quantum applies only when batching',
  );
});

test('clock skew: each host signs every ack with one fixed offset of -s, 0 or +s', () => {
  const f = fleet();
  const r = simulate({ seed: 6, fleet: f, clockSkewSeconds: 20 });
  const offsets = new Set<number>();
  for (const [host, acks] of byHost(r)) {
    const mine = new Set(acks.map((e) => parseAckTime(e.ack.time) - e.postedAt));
    assert.is(mine.size, 1, `${host} keeps one offset`);
    const [o] = mine;
    assert.ok([-20_000, 0, 20_000].includes(o!), `${host}: ${o}`);
    offsets.add(o!);
  }
  assert.is(offsets.size, 3, 'all three offsets occur among 12 hosts');
  const none = simulate({ seed: 6, fleet: f });
  assert.ok(none.history.every((e) => parseAckTime(e.ack.time) === e.postedAt));
});

test('offline hosts are silent for their episode, and the run waits for them', () => {
  const f = fleet();
  const r = simulate({
    seed: 7,
    fleet: f,
    offlineRate: 1,
    offlineSeconds: [600, 600],
    offlineStartWithin: 0,
  });
  const during = r.history.filter((e) => e.postedAt >= START && e.postedAt < START + 600_000);
  assert.equal(during, [], 'every host is offline for the first 10 minutes');
  assert.ok(r.converged);
  assert.ok(r.starts.every((s) => s.at >= 600));
  // Hellos come before the start, within 30 s.
  for (const acks of byHost(r).values()) {
    const hello = acks[0]!;
    assert.is(hello.ack.kind, 'heartbeat');
    assert.ok(hello.postedAt < START && hello.postedAt >= START - 30_000);
  }
});

test('an inhibited host defers (saying why), then reboots into its target only where the policy allows', () => {
  const allowed = fleet();
  for (const p of Object.values(allowed.plans)) p.reboot = 'allowed';
  const r = simulate({
    seed: 8,
    fleet: allowed,
    inhibitedHosts: ['h-00'],
    rebootDelaySeconds: 300,
  });
  assert.ok(r.converged);
  const acks = byHost(r).get('h-00')!;
  const deferred = acks.find((e) => e.ack.kind === 'deferred')!;
  assert.is(deferred.ack.reason, 'kernel changed');
  const started = acks.find((e) => e.ack.kind === 'started')!;
  assert.ok(started.postedAt - deferred.postedAt >= 300_000, 'rebooted after the delay');
  assert.ok(started.postedAt - deferred.postedAt < 400_000, 'and not much later');
  // Under `never` it stays deferred, and keeps saying so.
  const never = simulate({
    seed: 8,
    fleet: fleet(),
    inhibitedHosts: ['h-00'],
    maxSeconds: 4 * 3600,
  });
  assert.not.ok(never.converged);
  const h0 = byHost(never).get('h-00')!;
  assert.not.ok(h0.some((e) => e.ack.kind === 'started'));
  assert.ok(h0.slice(1).every((e) => e.ack.kind === 'deferred'));
  assert.ok(h0.length > 5);
});

test('a failing host rolls back once, keeps reporting it, never restarts; the stalled run ends about two hours later', () => {
  const f: BuiltFleet = fleet();
  const r = simulate({ seed: 9, fleet: f, failingHosts: ['h-00'], maxSeconds: 12 * 3600 });
  assert.not.ok(r.converged);
  assert.is(r.completedAt, null);
  assert.equal(r.failures, ['h-00']);
  assert.equal(r.rollbacks, []);
  const acks = byHost(r).get('h-00')!;
  assert.equal(
    acks.slice(0, 4).map((e) => [e.ack.kind, e.ack.reason]),
    [
      ['heartbeat', null],
      ['started', null],
      ['activated', null],
      ['rolled-back', 'health probes failed'],
    ],
  );
  assert.ok(
    acks
      .slice(4)
      .every(
        (e) =>
          e.ack.kind === 'rolled-back' &&
          e.ack.reason === 'activation failed' &&
          e.ack.current === f.previous['h-00'] &&
          e.ack.healthySince === null,
      ),
  );
  assert.is(r.starts.filter((s) => s.host === 'h-00').length, 1);
  const lastMove = Math.max(
    ...r.history
      .filter(
        (e) =>
          (e.ack.kind !== 'heartbeat' && e.ack.kind !== 'rolled-back') ||
          e.ack.reason === 'health probes failed',
      )
      .map((e) => e.postedAt),
  );
  const ended = START + r.endedAt * 1000;
  assert.ok(
    ended - lastMove > 2 * 3600_000,
    `ended ${(ended - lastMove) / 1000} s after the last move`,
  );
  assert.ok(ended - lastMove < 2 * 3600_000 + 600_000);
});

test('rollback-and-halt: a failure makes the wave roll back, each rollback reason kept short', () => {
  const f = buildFleet({
    channels: [
      {
        name: 'c',
        onFailure: 'rollback-and-halt',
        waves: [{ hosts: ['a', 'b', 'c', 'd'], soakSeconds: 1800 }],
      },
    ],
  });
  const r = simulate({ seed: 2, fleet: f, failingHosts: ['a'], maxSeconds: 6 * 3600 });
  assert.ok(r.failures.includes('a'));
  assert.ok(r.rollbacks.length > 0, 'the other hosts of the wave rolled back');
  for (const h of [...r.rollbacks, ...r.failures]) {
    const acks = byHost(r).get(h)!;
    const i = acks.findIndex((e) => e.ack.kind === 'rolled-back');
    const rb = acks[i]!;
    assert.ok(rb.ack.reason!.length > 0 && rb.ack.reason!.length <= 200, rb.ack.reason!);
    // Once rolled back, a host says so in every later ack (its pending soak proof included).
    assert.ok(
      acks.slice(i).every((e) => e.ack.kind === 'rolled-back' && e.ack.current === f.previous[h]),
      `${h}: ${acks.slice(i).map((e) => e.ack.kind)}`,
    );
  }
});

test('theoreticalMinimum: per wave a poll, the slowest switch, the probes and the soak, along the longest chain of edges', () => {
  const f = buildFleet({
    channels: [
      { name: 'canary', waves: [{ hosts: ['c'], soakSeconds: 300 }] },
      {
        name: 'main',
        gatedBy: ['canary'],
        waves: [
          { hosts: ['a'], soakSeconds: 300 },
          { hosts: [], soakSeconds: 5000 },
          { hosts: ['b'], soakSeconds: 600 },
        ],
      },
      { name: 'side', waves: [{ hosts: ['s'], soakSeconds: 1000 }] },
    ],
  });
  // canary 60+40+10+300 = 410; main 410 + (410) + (710) = 1530 (the empty wave costs nothing).
  assert.is(theoreticalMinimum(f, 60, 40, 10), 1530);
  assert.is(simulate({ seed: 1, fleet: f, maxSeconds: 60 }).theoreticalMinimum, 1530);
  // Without the edge the longest channel alone counts: side is 1110, main 1120.
  for (const p of Object.values(f.plans)) p.gatedBy = [];
  assert.is(theoreticalMinimum(f, 60, 40, 10), 1120);
});

test.run();
