// The fleet evaluation memoises per plan object (phases per ack while their validity interval holds,
// plan indexes, budget orders: reconciler/context.ts). Memoisation must never change an answer: at any
// instant, in any order of instants (forwards, backwards, exactly at a phase's threshold), the view over
// the shared documents equals the view over fresh copies that have never been evaluated.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { ackFor, buildFleet } from '../../reconciler/simulator/builders.ts';
import { simulate } from '../../reconciler/simulator/sim.ts';
import {
  decide,
  fleetView,
  latestAcks,
  parseAckTime,
  prepareFleet,
  type AckRecord,
  type FleetInput,
} from '../../reconciler/index.ts';

const spec = {
  channels: [
    {
      name: 'canary',
      heartbeatSeconds: 30,
      offlineWindowSeconds: 300,
      confirmDeadlineSeconds: 120,
      waves: [{ hosts: ['c-1', 'c-2'], soakSeconds: 120, offlineExcuseLimit: 1 }],
    },
    {
      name: 'stable',
      gatedBy: ['canary'],
      heartbeatSeconds: 30,
      offlineWindowSeconds: 300,
      confirmDeadlineSeconds: 120,
      waves: [
        { hosts: ['s-1', 's-2', 's-3'], soakSeconds: 120, failureThreshold: { count: 1 } },
        { hosts: ['s-4', 's-5'], soakSeconds: 60 },
      ],
      hostEdges: [{ before: 's-4', after: 's-5' }],
    },
  ],
  budgets: [
    { id: 'all', hosts: ['c-1', 'c-2', 's-1', 's-2', 's-3', 's-4', 's-5'], maxInFlight: 2 },
  ],
};

/** The instants at which some phase changes: each ack's time plus each threshold, and one ms either side. */
function edges(acks: AckRecord[]): number[] {
  // heartbeat expiry 3 x 30 s, confirm deadline 120 s + 60 s skew, offline window 300 s.
  const thresholds = [0, 90_000, 180_000, 300_000];
  const out = new Set<number>();
  for (const a of acks)
    for (const x of thresholds) for (const d of [0, 1, 2]) out.add(parseAckTime(a.time) + x + d);
  return [...out];
}

test('memoised evaluation equals a fresh one at every instant, in any order (thresholds included)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 1_000_000 }),
      fc.double({ min: 0.2, max: 1, noNaN: true }),
      fc.integer(),
      (seed, cut, orderSeed) => {
        const fleet = buildFleet(spec);
        const r = simulate({
          seed,
          fleet,
          failureRate: 0.2,
          offlineRate: 0.3,
          offlineSeconds: [200, 600],
          offlineStartWithin: 600,
          ackDelaySeconds: [0, 20],
          maxSeconds: 3 * 3600,
        });
        const history = r.history.slice(0, Math.max(1, Math.floor(r.history.length * cut)));
        const acks = latestAcks(history.map((e) => e.ack));
        const instants = edges(Object.values(acks));
        // A deterministic shuffle: the cache is visited backwards and forwards in time.
        let s = orderSeed >>> 0;
        for (let i = instants.length - 1; i > 0; i--) {
          s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
          const j = s % (i + 1);
          [instants[i], instants[j]] = [instants[j]!, instants[i]!];
        }
        const shared = {
          plans: fleet.plans,
          budgets: fleet.budgets,
          revocations: fleet.revocations,
          acks,
        };
        for (const now of instants.slice(0, 60)) {
          const input: FleetInput = { now, ...shared };
          const fresh: FleetInput = structuredClone(input);
          assert.equal(fleetView(input), fleetView(fresh), `view at ${now}`);
          // decide() alone (one-host budget count) and with a prepared fleet agree with the fresh view.
          const prepared = prepareFleet(input);
          const view = fleetView(fresh);
          for (const m of Object.values(fleet.manifests)) {
            const local = {
              current: fleet.previous[m.host]!,
              pending: null,
              previous: null,
              quarantine: [],
            };
            const din = {
              ...input,
              manifest: m,
              freshness: { status: 'fresh' as const },
              local,
              inhibitor: null,
            };
            const alone = decide(din);
            assert.equal(decide(din, prepared), alone, `${m.host} at ${now}`);
            const hv = view.hosts.find((h) => h.host === m.host)!;
            if (hv.phase === 'pending')
              assert.is(
                alone.kind === 'wait' ? alone.gate : null,
                hv.gate,
                `${m.host} at ${now}: ${alone.reason}`,
              );
          }
        }
      },
    ),
    { numRuns: 6 },
  );
});

test('the memo is per tolerances too: the same plans read under other tolerances answer for those', () => {
  const fleet = buildFleet(spec);
  const now = Date.UTC(2026, 0, 1, 12);
  // Soaked hosts whose last heartbeat is 2 min old: stale past 3 heartbeats (90 s), not past 10 (300 s).
  const acks = latestAcks(
    ['c-1', 'c-2'].map((h) =>
      ackFor(fleet, h, 'heartbeat', now - 2 * 60_000, { healthySince: now - 30 * 60_000, seq: 5 }),
    ),
  );
  const shared = {
    now,
    plans: fleet.plans,
    budgets: fleet.budgets,
    revocations: fleet.revocations,
    acks,
  };
  const detail = (v: ReturnType<typeof fleetView>) => v.hosts.find((h) => h.host === 'c-1')!.detail;
  for (const heartbeatExpiryFactor of [3, 10, 3, 10]) {
    const input: FleetInput = { ...shared, tolerances: { heartbeatExpiryFactor } };
    const v = fleetView(input);
    assert.equal(v, fleetView(structuredClone(input)), `factor ${heartbeatExpiryFactor}`);
    assert.is(detail(v).includes('stale'), heartbeatExpiryFactor === 3, detail(v));
  }
});

test.run();
