// Property tests (issue 3 section 7) over random small fleets driven through the simulator, plus
// order-independence and halting checks directly on decide()/fleetView().
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import {
  buildFleet,
  type ChannelSpec,
  type FleetSpec,
} from '../../reconciler/simulator/builders.ts';
import { simulate, type SimConfig } from '../../reconciler/simulator/sim.ts';
import {
  decide,
  fleetView,
  latestAcks,
  prepareFleet,
  type AckRecord,
} from '../../reconciler/index.ts';

interface FleetShape {
  channels: {
    waves: { hosts: number; soak: number; threshold: number }[];
    gated: boolean;
    edges: [number, number][];
  }[];
  budget: { every: number; max: number } | null;
}

const shapeArb: fc.Arbitrary<FleetShape> = fc.record({
  channels: fc.array(
    fc.record({
      waves: fc.array(
        fc.record({
          hosts: fc.integer({ min: 1, max: 4 }),
          soak: fc.constantFrom(60, 120, 300),
          threshold: fc.constantFrom(0, 0, 1),
        }),
        { minLength: 1, maxLength: 3 },
      ),
      gated: fc.boolean(),
      edges: fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 2 }),
    }),
    { minLength: 1, maxLength: 3 },
  ),
  budget: fc.option(
    fc.record({ every: fc.integer({ min: 1, max: 2 }), max: fc.integer({ min: 1, max: 3 }) }),
    { nil: null },
  ),
});

function fleetFromShape(shape: FleetShape): FleetSpec {
  const channels: ChannelSpec[] = [];
  const all: string[] = [];
  shape.channels.forEach((c, ci) => {
    const order: string[] = [];
    const waves = c.waves.map((w, wi) => {
      const hosts = Array.from({ length: w.hosts }, (_, i) => `c${ci}-w${wi}-h${i}`);
      order.push(...hosts);
      all.push(...hosts);
      return { hosts, soakSeconds: w.soak, failureThreshold: { count: w.threshold } };
    });
    // Host edges only point forward in wave order, so they can never deadlock a wave.
    const hostEdges = c.edges
      .map(([a, b]) => [a % order.length, b % order.length] as const)
      .filter(([a, b]) => a < b)
      .map(([a, b]) => ({ before: order[a]!, after: order[b]! }));
    channels.push({
      name: `ch${ci}`,
      waves,
      hostEdges,
      gatedBy: c.gated && ci > 0 ? [`ch${ci - 1}`] : [],
    });
  });
  const budgets =
    shape.budget === null
      ? []
      : [
          {
            id: 'b',
            hosts: all.filter((_, i) => i % shape.budget!.every === 0),
            maxInFlight: shape.budget.max,
          },
        ];
  return { channels, budgets };
}

/** Channels transitively gated by `channel` (including itself). */
function downstream(spec: FleetSpec, channel: string): Set<string> {
  const out = new Set([channel]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const c of spec.channels)
      if (!out.has(c.name) && (c.gatedBy ?? []).some((g) => out.has(g))) {
        out.add(c.name);
        grew = true;
      }
  }
  return out;
}

const RUNS = { numRuns: 20 };

test('without failures every host converges; waves, channel edges and budgets hold (consistent views)', () => {
  fc.assert(
    fc.property(
      shapeArb,
      fc.integer({ min: 1, max: 1_000_000 }),
      fc.constantFrom(0, 20),
      (shape, seed, skew) => {
        const spec = fleetFromShape(shape);
        const r = simulate({
          seed,
          fleet: buildFleet(spec),
          clockSkewSeconds: skew,
          pollJitterSeconds: 10,
        });
        assert.equal(r.violations, [], 'violations');
        assert.ok(
          r.converged,
          `did not converge: ${r.finalView.channels.map((c) => c.reason).join('; ')}`,
        );
        for (const [id, b] of Object.entries(r.budgets))
          assert.ok(b.observed <= b.max, `budget ${id}: ${b.observed} > ${b.max}`);
        assert.is(
          new Set(r.starts.map((s) => s.host)).size,
          r.hosts,
          'every host started exactly once',
        );
      },
    ),
    RUNS,
  );
});

test('a failure beyond the threshold halts the rollout: nothing downstream starts', () => {
  fc.assert(
    fc.property(shapeArb, fc.integer({ min: 1, max: 1_000_000 }), fc.nat(), (shape, seed, pick) => {
      // Threshold 0 everywhere so any single failure crosses it.
      for (const c of shape.channels) for (const w of c.waves) w.threshold = 0;
      const spec = fleetFromShape(shape);
      const fleet = buildFleet(spec);
      const hosts = Object.keys(fleet.manifests).sort();
      const bad = hosts[pick % hosts.length]!;
      const r = simulate({ seed, fleet, failingHosts: [bad], maxSeconds: 6 * 3600 });
      assert.equal(r.violations, []);
      assert.not.ok(r.converged);
      const ch = fleet.manifests[bad]!.channel;
      const failAt = r.starts.find((s) => s.host === bad)!.at;
      const badWave = fleet.manifests[bad]!.wave;
      const blocked = downstream(spec, ch);
      for (const s of r.starts) {
        if (s.channel === ch && s.wave > badWave)
          assert.unreachable(`${s.host} of a later wave started after the failure`);
        if (blocked.has(s.channel) && s.channel !== ch)
          assert.unreachable(`${s.host} in gated channel ${s.channel} started`);
      }
      // Whatever started in the failing wave started before the failure was known (probes take time).
      for (const s of r.starts)
        if (s.channel === ch && s.wave === badWave)
          assert.ok(s.at <= failAt + 200, `${s.host} started long after the failure`);
      const view = r.finalView.channels.find((c) => c.channel === ch)!;
      assert.is(view.state, 'halted');
    }),
    RUNS,
  );
});

test('late and out-of-order acks: still converges, wave order and edges hold; budget excess is bounded', () => {
  let worstExcess = 0;
  fc.assert(
    fc.property(shapeArb, fc.integer({ min: 1, max: 1_000_000 }), (shape, seed) => {
      const spec = fleetFromShape(shape);
      const r = simulate({
        seed,
        fleet: buildFleet(spec),
        clockSkewSeconds: 20,
        ackDelaySeconds: [0, 45],
        pollJitterSeconds: 10,
      });
      assert.equal(r.violations, []);
      assert.ok(r.converged);
      // The simulator flags any start that puts a budget above its max: none may occur.
      for (const b of Object.values(r.budgets))
        worstExcess = Math.max(worstExcess, b.observed - b.max);
    }),
    RUNS,
  );
  console.log(`    (worst budget excess with lagging acks: ${worstExcess})`);
  assert.is(worstExcess, 0, 'worst budget excess with lagging acks');
});

test('arbitrary ack delay, loss and reordering (plus failures, offline hosts, reboots): no budget is ever exceeded', () => {
  let worstExcess = 0;
  fc.assert(
    fc.property(
      shapeArb,
      fc.integer({ min: 1, max: 1_000_000 }),
      fc.constantFrom(0, 0.1, 0.3),
      fc.constantFrom(60, 600, 1800),
      fc.constantFrom('allowed' as const, 'never' as const),
      (shape, seed, loss, maxDelay, reboot) => {
        if (shape.budget === null) shape.budget = { every: 1, max: 1 };
        const fleet = buildFleet(fleetFromShape(shape));
        // Deferred hosts reboot only where the signed policy allows it; under `never` they stay deferred
        // (in flight) for good, which must not push anyone else over a budget either.
        for (const p of Object.values(fleet.plans)) p.reboot = reboot;
        const hosts = Object.keys(fleet.manifests).sort();
        const r = simulate({
          seed,
          fleet,
          clockSkewSeconds: 20,
          pollJitterSeconds: 10,
          ackDelaySeconds: [0, maxDelay],
          ackLossRate: loss,
          failureRate: 0.15,
          offlineRate: 0.2,
          offlineSeconds: [300, 1500],
          offlineStartWithin: 1800,
          inhibitedHosts: hosts.filter((_, i) => i % 3 === 0),
          maxSeconds: 8 * 3600,
        });
        assert.equal(r.violations, []);
        for (const b of Object.values(r.budgets))
          worstExcess = Math.max(worstExcess, b.observed - b.max);
      },
    ),
    RUNS,
  );
  assert.is(worstExcess, 0, 'worst budget excess under arbitrary delay and loss');
});

test('completion is monotonic: a wave or channel that completed stays complete as time passes and acks arrive late, out of order or never', () => {
  fc.assert(
    fc.property(shapeArb, fc.integer({ min: 1, max: 1_000_000 }), (shape, seed) => {
      const fleet = buildFleet(fleetFromShape(shape));
      const r = simulate({
        seed,
        fleet,
        clockSkewSeconds: 20,
        ackDelaySeconds: [0, 120],
        ackLossRate: 0.1,
        failureRate: 0.15,
        pollJitterSeconds: 10,
        maxSeconds: 8 * 3600,
      });
      const visible = r.history
        .filter((e) => e.visibleAt !== Infinity)
        .sort((a, b) => a.visibleAt - b.visibleAt);
      const base = { plans: fleet.plans, budgets: fleet.budgets, revocations: fleet.revocations };
      const seen = new Map<string, number>();
      // Every instant an ack becomes visible, and an hour after the last one (heartbeats long stale).
      const instants = [
        ...new Set(visible.map((e) => e.visibleAt)),
        visible[visible.length - 1]!.visibleAt + 3600_000,
      ];
      let i = 0;
      const acks: AckRecord[] = [];
      for (const now of instants) {
        while (i < visible.length && visible[i]!.visibleAt <= now) acks.push(visible[i++]!.ack);
        const view = fleetView({ now, ...base, acks: latestAcks(acks) }, { hosts: false });
        for (const c of view.channels) {
          const keys: [string, boolean][] = [
            [c.channel, c.state === 'complete'],
            ...c.waves.map((w): [string, boolean] => [
              `${c.channel}/${w.index}`,
              w.state === 'complete',
            ]),
          ];
          for (const [key, complete] of keys) {
            if (complete && !seen.has(key)) seen.set(key, now);
            if (!complete && seen.has(key))
              assert.unreachable(
                `${key} completed at ${seen.get(key)} but is ${c.state} at ${now}: ${c.reason}`,
              );
          }
        }
      }
    }),
    RUNS,
  );
});

test('hosts going offline are excused up to the limit and the rollout still converges', () => {
  const spec: FleetSpec = {
    channels: [
      {
        name: 'a',
        waves: [
          { hosts: ['a1', 'a2', 'a3'], soakSeconds: 120, offlineExcuseLimit: 1 },
          { hosts: ['a4', 'a5'], soakSeconds: 120, offlineExcuseLimit: 1 },
        ],
        offlineWindowSeconds: 300,
      },
    ],
  };
  for (let seed = 1; seed <= 5; seed++) {
    const r = simulate({
      seed,
      fleet: buildFleet(spec),
      offlineRate: 0.4,
      offlineSeconds: [400, 900],
      offlineStartWithin: 300,
    });
    assert.equal(r.violations, []);
    assert.ok(r.converged, `seed ${seed}`);
  }
});

test('determinism: the same seed replays the same run', () => {
  fc.assert(
    fc.property(shapeArb, fc.integer({ min: 1, max: 1_000_000 }), (shape, seed) => {
      const cfg = (): SimConfig => ({
        seed,
        fleet: buildFleet(fleetFromShape(shape)),
        clockSkewSeconds: 20,
        ackDelaySeconds: [0, 30],
        failureRate: 0.1,
      });
      const a = simulate(cfg());
      const b = simulate(cfg());
      assert.equal(a.starts, b.starts);
      assert.equal(a.history, b.history);
      assert.equal(a.finalView, b.finalView);
    }),
    { numRuns: 8 },
  );
});

test('order independence: decisions do not depend on the order acks arrived in', () => {
  fc.assert(
    fc.property(
      shapeArb,
      fc.integer({ min: 1, max: 1_000_000 }),
      fc.double({ min: 0.1, max: 1, noNaN: true }),
      fc.integer(),
      (shape, seed, cut, shuffleSeed) => {
        const fleet = buildFleet(fleetFromShape(shape));
        const r = simulate({ seed, fleet, ackDelaySeconds: [0, 30], failureRate: 0.1 });
        const prefix = r.history.slice(0, Math.max(1, Math.floor(r.history.length * cut)));
        const acks: AckRecord[] = prefix.map((e) => e.ack);
        const shuffled = [...acks];
        let s = shuffleSeed >>> 0;
        for (let i = shuffled.length - 1; i > 0; i--) {
          s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
          const j = s % (i + 1);
          [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
        }
        const now = prefix[prefix.length - 1]!.postedAt + 1000;
        const base = {
          now,
          plans: fleet.plans,
          budgets: fleet.budgets,
          revocations: fleet.revocations,
        };
        const inA = { ...base, acks: latestAcks(acks) };
        const inB = { ...base, acks: latestAcks(shuffled) };
        assert.equal(fleetView(inA), fleetView(inB));
        const pa = prepareFleet(inA);
        for (const m of Object.values(fleet.manifests)) {
          const local = {
            current: fleet.previous[m.host]!,
            pending: null,
            previous: null,
            quarantine: [],
          };
          const da = decide(
            { ...inA, manifest: m, freshness: { status: 'fresh' }, local, inhibitor: null },
            pa,
          );
          const db = decide({
            ...inB,
            manifest: m,
            freshness: { status: 'fresh' },
            local,
            inhibitor: null,
          });
          assert.equal(da, db);
        }
      },
    ),
    { numRuns: 20 },
  );
});

test('a halted rollout starts no host: no pending host of a halted channel passes the gates', () => {
  fc.assert(
    fc.property(shapeArb, fc.integer({ min: 1, max: 1_000_000 }), (shape, seed) => {
      const fleet = buildFleet(fleetFromShape(shape));
      const r = simulate({ seed, fleet, failureRate: 0.3, maxSeconds: 4 * 3600 });
      const acks = latestAcks(r.history.map((e) => e.ack));
      const now = r.history[r.history.length - 1]!.postedAt + 1000;
      const input = {
        now,
        plans: fleet.plans,
        budgets: fleet.budgets,
        revocations: fleet.revocations,
        acks,
      };
      const view = fleetView(input);
      for (const c of view.channels) {
        if (c.state !== 'halted') continue;
        for (const m of Object.values(fleet.manifests)) {
          if (m.channel !== c.channel) continue;
          const d = decide({
            ...input,
            manifest: m,
            freshness: { status: 'fresh' },
            local: {
              current: fleet.previous[m.host]!,
              pending: null,
              previous: null,
              quarantine: [],
            },
            inhibitor: null,
          });
          assert.is.not(d.kind, 'activate', `${m.host} would start in halted channel ${c.channel}`);
        }
      }
    }),
    { numRuns: 20 },
  );
});

test.run();
