// FleetContext.waveUpdated (reconciler/context.ts): a wave's evaluation adjusted by the old and new
// phases of the hosts that changed, which trace() uses while it carries a wave between instants. Property:
// over random sequences of phase changes (every phase, settled or not, reported or presumed failures,
// accepted or not, offline hosts beyond the excuse limit, deferred hosts under both policies), each
// adjusted evaluation, chained from the previous adjusted one as trace() chains them, equals waveOf
// over the same phases: excuses, failures, blocking hosts (in wave order), halt and completion.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { FleetContext, type WaveEval } from '../../reconciler/context.ts';
import type { DerivedPhase } from '../../reconciler/phase.ts';
import { buildFleet } from '../../reconciler/simulator/builders.ts';
import type { ChannelPlan } from '../../protocol/index.ts';
import type { HostPhase } from '../../reconciler/types.ts';

const HOSTS = 9;
const PHASES: HostPhase[] = [
  'offline',
  'blocked',
  'deferred',
  'pending',
  'activating',
  'confirming',
  'healthy',
  'failed',
  'soaked',
  'converged',
];

function planWith(deferredHosts: 'hold' | 'excuse'): ChannelPlan {
  const hosts = Array.from({ length: HOSTS }, (_, i) => `h-${i}`);
  const fleet = buildFleet({
    channels: [
      {
        name: 'c',
        deferredHosts,
        waves: [{ hosts, soakSeconds: 60, offlineExcuseLimit: 2, failureThreshold: { count: 1 } }],
      },
    ],
    budgets: [],
  });
  return fleet.plans['c']!;
}

/** The protected wave arithmetic, callable. */
class Waves extends FleetContext {
  of(plan: ChannelPlan, phases: DerivedPhase[], acceptedUntil: number): WaveEval {
    return this.waveOf(plan, 0, phases, acceptedUntil);
  }
  updated(
    plan: ChannelPlan,
    prev: WaveEval,
    phases: DerivedPhase[],
    changed: number[],
    acceptedUntil: number,
  ): WaveEval {
    return this.waveUpdated(plan, 0, prev, phases, changed, acceptedUntil);
  }
}

const phaseArb: fc.Arbitrary<DerivedPhase> = fc
  .record({
    // Offline often: more offline hosts than the excuse limit, and offline hosts changing, are the cases.
    phase: fc.constantFrom(...PHASES, 'offline', 'offline', 'offline', 'offline'),
    settled: fc.boolean(),
    failure: fc.constantFrom('reported' as const, 'presumed' as const),
    lastAck: fc.option(fc.integer({ min: 0, max: 100 }), { nil: null }),
  })
  .map(({ phase, settled, failure, lastAck }) => ({
    phase,
    note: phase,
    lastAck,
    healthySeconds: 0,
    inFlight: false,
    done: false,
    settled,
    failure: phase === 'failed' ? failure : null,
    validFrom: 0,
    validUntil: 1,
  }));

const stepArb = fc.array(fc.tuple(fc.integer({ min: 0, max: HOSTS - 1 }), phaseArb), {
  minLength: 1,
  maxLength: 3,
});

test('a wave adjusted by its changed hosts equals the wave evaluated afresh, over random phase changes', () => {
  let steps = 0;
  let adjusted = 0;
  fc.assert(
    fc.property(
      fc.constantFrom('hold' as const, 'excuse' as const),
      fc.constantFrom(-Infinity, 50),
      fc.array(phaseArb, { minLength: HOSTS, maxLength: HOSTS }),
      fc.array(stepArb, { minLength: 1, maxLength: 12 }),
      (policy, acceptedUntil, start, changes) => {
        const plan = planWith(policy);
        const ctx = new Waves({
          now: 0,
          plans: { c: plan },
          budgets: buildFleet({ channels: [], budgets: [] }).budgets,
          revocations: { hosts: [] } as never,
          acks: {},
        });
        let phases = start;
        let ev = ctx.of(plan, phases, acceptedUntil);
        for (const step of changes) {
          phases = phases.slice();
          // A position may change twice in one step, or be listed without changing (an ack whose
          // phase is the same): the last phase counts, as in trace().
          for (const [pos, ph] of step) phases[pos] = ph;
          const prev = ev;
          ev = ctx.updated(
            plan,
            prev,
            phases,
            step.map(([pos]) => pos),
            acceptedUntil,
          );
          assert.equal(ev, ctx.of(plan, phases, acceptedUntil));
          steps++;
          if (ev.blocking !== prev.blocking || ev.excused !== prev.excused) adjusted++;
        }
      },
    ),
    { numRuns: 400, seed: 20261201 },
  );
  assert.ok(steps > 1000 && adjusted > 100, 'adjusted evaluations were compared');
});

test.run();
