// decisionReadsPeerAcks (reconciler/decide.ts): when it says a host's decision does not read its peers'
// acks, decide() must give the same decision with any ack set as with none. The agent relies on it to
// skip the wave bundles in steady state (agent/cycle.ts), so a gate that starts reading acks where the
// helper says it does not must fail here: random ack sets include signed failures that halt the host's
// own wave, which is exactly what alreadyOnTarget would have to read to roll back.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { ackFor, buildFleet } from '../../reconciler/simulator/builders.ts';
import {
  decide,
  decisionReadsPeerAcks,
  latestAcks,
  type AckRecord,
  type DecideInput,
  type LocalState,
} from '../../reconciler/index.ts';

const T0 = Date.UTC(2026, 0, 1);
const KINDS = [
  'none',
  'started',
  'activated',
  'healthy',
  'heartbeat',
  'failed',
  'rolled-back',
  'deferred',
  'blocked',
] as const;

function fleetOf(onFailure: 'halt' | 'rollback-and-halt', threshold: number) {
  return buildFleet({
    issuedAt: T0,
    channels: [
      {
        name: 'ch',
        onFailure,
        waves: [
          { hosts: ['a0', 'a1', 'a2'], soakSeconds: 60, failureThreshold: { count: threshold } },
          { hosts: ['b0', 'b1'], soakSeconds: 60, failureThreshold: { count: threshold } },
        ],
      },
    ],
  });
}

const caseArb = fc.record({
  onFailure: fc.constantFrom('halt' as const, 'rollback-and-halt' as const),
  threshold: fc.constantFrom(0, 0, 1),
  host: fc.constantFrom('a0', 'a1', 'a2', 'b0', 'b1'),
  acks: fc.array(fc.constantFrom(...KINDS), { minLength: 5, maxLength: 5 }),
  ageSeconds: fc.array(fc.integer({ min: 0, max: 3600 }), { minLength: 5, maxLength: 5 }),
  onTarget: fc.boolean(),
  pending: fc.constantFrom('none', 'none', 'same-target', 'other-target'),
  pendingExpired: fc.boolean(),
  previous: fc.boolean(),
  quarantined: fc.boolean(),
});

type Case = typeof caseArb extends fc.Arbitrary<infer C> ? C : never;

function inputsOf(c: Case): { input: DecideInput; acks: Record<string, AckRecord> } {
  const f = fleetOf(c.onFailure, c.threshold);
  const now = T0 + 2 * 3600_000;
  const hosts = ['a0', 'a1', 'a2', 'b0', 'b1'];
  const signed = hosts.flatMap((h, i) => {
    const kind = c.acks[i]!;
    if (kind === 'none') return [];
    const time = now - c.ageSeconds[i]! * 1000;
    const onTarget = kind === 'healthy' || kind === 'heartbeat' || kind === 'activated';
    return [ackFor(f, h, kind, time, onTarget ? { healthySince: time - 600_000 } : {})];
  });
  const m = f.manifests[c.host]!;
  const previousPath = f.previous[c.host]!;
  const local: LocalState = {
    current: c.onTarget ? m.target : previousPath,
    pending:
      c.pending === 'none'
        ? null
        : {
            target: c.pending === 'same-target' ? m.target : '/nix/store/' + 'z'.repeat(32) + '-x',
            rolloutId: m.rolloutId,
            previous: { generation: 6, path: previousPath },
            deadline: now + (c.pendingExpired ? -1000 : 60_000),
          },
    previous: c.previous ? { generation: 7, path: previousPath } : null,
    quarantine: c.quarantined ? [{ target: m.target, until: now + 3600_000 }] : [],
  };
  const input: DecideInput = {
    now,
    plans: f.plans,
    budgets: f.budgets,
    revocations: f.revocations,
    acks: {},
    manifest: m,
    freshness: { status: 'fresh' },
    local,
    inhibitor: null,
  };
  return { input, acks: latestAcks(signed) };
}

test('a decision the helper says reads no peer acks is the same with any ack set as with none', () => {
  let skipped = 0;
  let steadyHalt = 0;
  let readsAndDiffers = 0;
  fc.assert(
    fc.property(caseArb, (c) => {
      const { input, acks } = inputsOf(c);
      const plan = input.plans[input.manifest.channel]!;
      const reads = decisionReadsPeerAcks(plan, input.local, input.manifest);
      const withAcks = decide({ ...input, acks });
      const without = decide(input);
      if (c.onFailure === 'halt' && c.onTarget && c.pending === 'none') {
        // The steady state of the brief: on target, `halt`, nothing pending.
        steadyHalt++;
        assert.not.ok(reads, 'a host on its target under halt with nothing pending reads no acks');
      }
      if (!reads) {
        skipped++;
        assert.equal(withAcks, without, `decision changed by peers' acks: ${JSON.stringify(c)}`);
      } else if (JSON.stringify(withAcks) !== JSON.stringify(without)) readsAndDiffers++;
    }),
    { numRuns: 400 },
  );
  // Not vacuous: the skip was exercised, and the ack sets do change decisions where acks are read
  // (so they would change a skipped one too if a skipped gate read them).
  assert.ok(steadyHalt > 20, `steady halt cases: ${steadyHalt}`);
  assert.ok(skipped > 50, `skipped cases: ${skipped}`);
  assert.ok(readsAndDiffers > 20, `cases where acks changed a decision: ${readsAndDiffers}`);
});

test('under rollback-and-halt a host on target with a previous generation reads acks: its halted wave rolls it back', () => {
  for (const onFailure of ['halt', 'rollback-and-halt'] as const) {
    const { input, acks } = inputsOf({
      onFailure,
      threshold: 0,
      host: 'a0',
      acks: ['healthy', 'failed', 'none', 'none', 'none'],
      ageSeconds: [10, 10, 0, 0, 0],
      onTarget: true,
      pending: 'none',
      pendingExpired: false,
      previous: true,
      quarantined: false,
    });
    const plan = input.plans['ch']!;
    const d = decide({ ...input, acks });
    if (onFailure === 'halt') {
      assert.not.ok(decisionReadsPeerAcks(plan, input.local, input.manifest));
      assert.is(d.kind, 'converged', 'halt: a host on target stays put when its wave halts');
    } else {
      assert.ok(decisionReadsPeerAcks(plan, input.local, input.manifest));
      assert.is(d.kind, 'rollback', 'rollback-and-halt: the halted wave rolls back');
      assert.is(decide(input).kind, 'converged', 'and without the acks it would not know');
      const noPrevious = { ...input.local, previous: null };
      assert.not.ok(
        decisionReadsPeerAcks(plan, noPrevious, input.manifest),
        'nothing to roll back to: converged whatever the acks say',
      );
    }
  }
});

test('a host off its target reads acks (the fleet gates decide), whatever the policy', () => {
  const { input } = inputsOf({
    onFailure: 'halt',
    threshold: 0,
    host: 'b0',
    acks: ['none', 'none', 'none', 'none', 'none'],
    ageSeconds: [0, 0, 0, 0, 0],
    onTarget: false,
    pending: 'none',
    pendingExpired: false,
    previous: false,
    quarantined: false,
  });
  assert.ok(decisionReadsPeerAcks(input.plans['ch']!, input.local, input.manifest));
});

test.run();
