// trace() carries each wave's evaluation from one instant to the next while none of its hosts' acks
// changed and every phase in it still holds (reconciler/trace.ts CarryingContext). Property: over random
// ack histories (simulated rollouts with failures, offline hosts, clock skew, lost and late acks, then
// a random subset of the acks, shuffled), the trace equals the one that evaluates every wave afresh at
// every instant, for every host and channel subject, in both instant modes and at random steps.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { trace, type TraceInput } from '../../reconciler/trace.ts';
import { simulate } from '../../reconciler/simulator/sim.ts';
import { fleet, subjects } from './trace-fleet.ts';

test('carrying wave evaluations between instants gives the same trace as evaluating afresh, over random ack histories', () => {
  let compared = 0;
  let changes = 0;
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 1_000_000 }),
      fc.constantFrom(0, 0.2, 0.5),
      fc.constantFrom(0, 0.3),
      fc.constantFrom(10, 30, 60),
      fc.array(fc.boolean(), { minLength: 200, maxLength: 200 }),
      (seed, failureRate, offlineRate, stepSeconds, keep) => {
        const r = simulate({
          seed,
          fleet,
          failureRate,
          offlineRate,
          offlineSeconds: [60, 400],
          ackDelaySeconds: [0, 40],
          ackLossRate: 0.1,
          clockSkewSeconds: 20,
          maxSeconds: 3600,
        });
        // A random subset (about 7 in 8 acks), in a scrambled order: traces depend on the acks only.
        const history = r.history
          .map((e) => e.ack)
          .filter((_, i) => keep[i % keep.length] || i % 3 !== 0)
          .reverse();
        for (const subject of subjects)
          for (const instants of ['every-ack', 'on-change'] as const) {
            const input: TraceInput = {
              plans: fleet.plans,
              budgets: fleet.budgets,
              revocations: fleet.revocations,
              history,
              subject,
              stepSeconds,
              instants,
            };
            const fresh = trace({ ...input, carryWaves: false });
            assert.equal(
              trace(input),
              fresh,
              `seed ${seed} ${JSON.stringify(subject)} ${instants}`,
            );
            compared++;
            changes += fresh.entries.length;
          }
      },
    ),
    { numRuns: 12, seed: 20261130 },
  );
  assert.ok(compared > 0 && changes > compared, 'traces with phase and gate changes were compared');
});

test.run();
