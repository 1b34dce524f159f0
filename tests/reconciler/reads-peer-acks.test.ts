// decisionReadsPeerAcks (reconciler/decide.ts): when it says a host's decision does not read its peers'
// acks, decide() must give the same decision with any ack set as with none. The agent relies on it to
// skip the wave bundles in steady state (agent/cycle.ts), so a gate that starts reading acks where the
// helper says it does not must fail here: random ack sets include signed failures that halt the host's
// own wave, which is exactly what alreadyOnTarget would have to read to roll back, and hosts off their
// target with and without an active quarantine of it (a rolled-back host waits at gate 4, read-free).
// A host held only by a halted wave is not skipped: the last tests show the acks that lift the halt.
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
  quarantineExpired: fc.boolean(),
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
    quarantine: c.quarantined
      ? [{ target: m.target, until: now + (c.quarantineExpired ? -1000 : 3600_000) }]
      : [],
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
  let quarantinedOff = 0;
  let readsAndDiffers = 0;
  fc.assert(
    fc.property(caseArb, (c) => {
      const { input, acks } = inputsOf(c);
      const plan = input.plans[input.manifest.channel]!;
      const reads = decisionReadsPeerAcks(plan, input.local, input.manifest, input.now);
      const withAcks = decide({ ...input, acks });
      const without = decide(input);
      if (c.onFailure === 'halt' && c.onTarget && c.pending === 'none') {
        // The steady state of the brief: on target, `halt`, nothing pending.
        steadyHalt++;
        assert.not.ok(reads, 'a host on its target under halt with nothing pending reads no acks');
      }
      if (!c.onTarget && c.pending === 'none' && c.quarantined && !c.quarantineExpired) {
        // Rolled back (its own failure, or its wave under rollback-and-halt): its target quarantined.
        quarantinedOff++;
        assert.not.ok(
          reads,
          'a host off its quarantined target reads no acks, whatever the policy',
        );
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
  assert.ok(quarantinedOff > 20, `quarantined off-target cases: ${quarantinedOff}`);
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
      quarantineExpired: false,
    });
    const plan = input.plans['ch']!;
    const d = decide({ ...input, acks });
    if (onFailure === 'halt') {
      assert.not.ok(decisionReadsPeerAcks(plan, input.local, input.manifest, input.now));
      assert.is(d.kind, 'converged', 'halt: a host on target stays put when its wave halts');
    } else {
      assert.ok(decisionReadsPeerAcks(plan, input.local, input.manifest, input.now));
      assert.is(d.kind, 'rollback', 'rollback-and-halt: the halted wave rolls back');
      assert.is(decide(input).kind, 'converged', 'and without the acks it would not know');
      const noPrevious = { ...input.local, previous: null };
      assert.not.ok(
        decisionReadsPeerAcks(plan, noPrevious, input.manifest, input.now),
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
    quarantineExpired: false,
  });
  assert.ok(decisionReadsPeerAcks(input.plans['ch']!, input.local, input.manifest, input.now));
});

/** Host `host` of fleetOf(onFailure, 0) off its target, nothing pending; `quarantine` of its target. */
function offTarget(
  onFailure: 'halt' | 'rollback-and-halt',
  host: Case['host'],
  quarantine: 'none' | 'active' | 'expired',
) {
  return inputsOf({
    onFailure,
    threshold: 0,
    host,
    acks: ['none', 'none', 'none', 'none', 'none'],
    ageSeconds: [0, 0, 0, 0, 0],
    onTarget: false,
    pending: 'none',
    pendingExpired: false,
    previous: false,
    quarantined: quarantine !== 'none',
    quarantineExpired: quarantine === 'expired',
  }).input;
}

test('a rolled-back host (target quarantined) reads no acks until the quarantine expires or is cleared, or a release moves its target', () => {
  for (const onFailure of ['halt', 'rollback-and-halt'] as const) {
    const input = offTarget(onFailure, 'a0', 'active');
    const plan = input.plans['ch']!;
    const read = (local: LocalState, m = input.manifest) =>
      decisionReadsPeerAcks(plan, local, m, input.now);
    assert.not.ok(read(input.local), `${onFailure}: quarantined, off target`);
    // Its wave halted by its own failure report: the decision is the quarantine, acks or none.
    const acks = latestAcks([ackFor(fleetOf(onFailure, 0), 'a0', 'rolled-back', input.now - 1000)]);
    const d = decide({ ...input, acks });
    assert.equal([d.kind, d.kind === 'wait' && d.gate], ['wait', 'quarantined']);
    assert.equal(decide(input), d);
    // Expired (at exactly `until` too), cleared by a control, or another target: the fleet gates decide.
    const until = input.local.quarantine[0]!.until;
    assert.ok(decisionReadsPeerAcks(plan, input.local, input.manifest, until), 'expired at until');
    assert.ok(read(offTarget(onFailure, 'a0', 'expired').local), 'expired');
    assert.ok(read({ ...input.local, quarantine: [] }), 'cleared');
    const newRelease = { ...input.manifest, target: '/nix/store/' + 'y'.repeat(32) + '-new' };
    assert.ok(read(input.local, newRelease), 'a new target is not quarantined');
  }
});

test("a pending host held by a halted wave reads acks: a peer's later ack lifts the halt with no signed document", () => {
  const f = fleetOf('halt', 0);
  const input = offTarget('halt', 'a1', 'none');
  const now = input.now;
  const plan = input.plans['ch']!;
  assert.ok(decisionReadsPeerAcks(plan, input.local, input.manifest, now));
  const decided = (...acks: AckRecord[]) => {
    const d = decide({ ...input, acks: latestAcks(acks) });
    return d.kind === 'wait' ? d.gate : d.kind;
  };
  // A start with no outcome by its confirm deadline is presumed failed and halts the wave ...
  const started = ackFor(f, 'a0', 'started', now - 3600_000, { seq: 1 });
  assert.is(decided(started), 'halted');
  // ... until its real outcome arrives.
  const healthy = ackFor(f, 'a0', 'healthy', now - 1000, { seq: 2, healthySince: now - 600_000 });
  assert.is(
    decided(started, healthy),
    'activate',
    'the presumed failure resolved: the halt lifted',
  );
  // A reported failure halts it for as long as it is the failed host's latest ack: a heartbeat of
  // that host on its previous generation (one the agent never signs over its own failure) replaces it.
  const failed = ackFor(f, 'a0', 'rolled-back', now - 3600_000, { seq: 1 });
  assert.is(decided(failed), 'halted');
  const heartbeat = ackFor(f, 'a0', 'heartbeat', now - 1000, { seq: 2 });
  assert.is(heartbeat.current, f.previous['a0']);
  assert.is(decided(failed, heartbeat), 'activate', 'the failure report replaced: the halt lifted');
});

test.run();
