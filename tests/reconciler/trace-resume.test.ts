// trace() resumed from a checkpoint (TraceInput.resume: the state an earlier replay kept after a step's
// end) with only the acks signed after it gives the trace a replay of the whole history gives. Property
// over random ack histories (simulated rollouts with failures, offline hosts, clock skew, lost and late
// acks, shuffled), every host and channel subject, both instant modes, random steps and checkpoints.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { trace, type Trace, type TraceInput } from '../../reconciler/trace.ts';
import { parseAckTime } from '../../reconciler/time.ts';
import { simulate } from '../../reconciler/simulator/sim.ts';
import { fleet, subjects } from './trace-fleet.ts';

const withoutCheckpoints = ({ checkpoints: _, ...t }: Trace) => t;

test('a trace resumed from a checkpoint with the acks after it equals the replay of the whole history', () => {
  let resumed = 0;
  let changesAfter = 0;
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 1_000_000 }),
      fc.constantFrom(0, 0.2, 0.5),
      fc.constantFrom(10, 30, 60),
      fc.double({ min: 0, max: 1, noNaN: true }),
      (seed, failureRate, stepSeconds, where) => {
        const r = simulate({
          seed,
          fleet,
          failureRate,
          offlineRate: 0.2,
          offlineSeconds: [60, 400],
          ackDelaySeconds: [0, 40],
          ackLossRate: 0.1,
          clockSkewSeconds: 20,
          maxSeconds: 3600,
        });
        const history = r.history.map((e) => e.ack).reverse();
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
            const { from, until } = trace(input);
            const steps = Math.floor((until - from) / (stepSeconds * 1000));
            const at = from + Math.floor(where * steps) * stepSeconds * 1000;
            const whole = trace({ ...input, checkpointAt: [at] });
            const label = `seed ${seed} ${JSON.stringify(subject)} ${instants} at ${at}`;
            if (at >= until) {
              assert.equal(whole.checkpoints, [], label);
              continue;
            }
            const [checkpoint] = whole.checkpoints!;
            assert.ok(checkpoint !== undefined, label);
            const rest = trace({
              ...input,
              from,
              until,
              history: history.filter((a) => parseAckTime(a.time) > at),
              resume: checkpoint!,
            });
            assert.equal(rest, withoutCheckpoints(whole), label);
            resumed++;
            changesAfter += whole.entries.length - checkpoint!.entries.length;
          }
      },
    ),
    { numRuns: 10, seed: 20261201 },
  );
  assert.ok(
    resumed > 0 && changesAfter > 0,
    'traces with changes after the checkpoint were resumed',
  );
});

test('a checkpoint is kept only at a step end before the end of the period', () => {
  const r = simulate({ seed: 7, fleet, maxSeconds: 1800 });
  const input: TraceInput = {
    plans: fleet.plans,
    budgets: fleet.budgets,
    revocations: fleet.revocations,
    history: r.history.map((e) => e.ack),
    subject: { host: 's-4' },
    stepSeconds: 60,
    instants: 'on-change',
  };
  const { from, until } = trace(input);
  const kept = trace({
    ...input,
    checkpointAt: [from + 90_000, from + 120_000, from + 600_000, until],
  });
  assert.equal(
    kept.checkpoints!.map((c) => c.at),
    [from + 120_000, from + 600_000],
  );
});

test('a resumed trace refuses an ack at or before its checkpoint and a missing period', () => {
  const r = simulate({ seed: 3, fleet, maxSeconds: 1800 });
  const history = r.history.map((e) => e.ack);
  const input: TraceInput = {
    plans: fleet.plans,
    budgets: fleet.budgets,
    revocations: fleet.revocations,
    history,
    subject: { host: 's-1' },
    instants: 'on-change',
  };
  const { from, until } = trace(input);
  const [checkpoint] = trace({ ...input, checkpointAt: [from + 600_000] }).checkpoints!;
  assert.throws(() => trace({ ...input, from, until, resume: checkpoint! }), /only the acks after/);
  assert.throws(
    () =>
      trace({
        ...input,
        history: history.filter((a) => parseAckTime(a.time) > checkpoint!.at),
        resume: checkpoint!,
      }),
    /given its period/,
  );
});

test.run();
