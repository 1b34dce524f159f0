// How a host's phase derives from its latest ack: freshness, offline window, clock skew, soak.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { derivePhase, phaseParams, DEFAULT_TOLERANCES } from '../../reconciler/index.ts';
import { describePhase } from '../../reconciler/phase.ts';
import { parseAckTime } from '../../reconciler/time.ts';
import { ackFor, buildFleet } from '../../reconciler/simulator/builders.ts';

const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);
const MIN = 60_000;
const f = buildFleet({
  channels: [
    {
      name: 'stable',
      waves: [{ hosts: ['web-01'], soakSeconds: 600 }],
      heartbeatSeconds: 60,
      offlineWindowSeconds: 900,
    },
  ],
});
const plan = f.plans['stable']!;
const p = phaseParams(plan, f.targets['web-01']!, 600, DEFAULT_TOLERANCES);
const phase = (kind: Parameters<typeof ackFor>[2], time: number, extra = {}, now = NOW) =>
  derivePhase(p, ackFor(f, 'web-01', kind, time, extra), now, false);

test('parseAckTime agrees with Date.parse', () => {
  for (const s of [
    '1970-01-01T00:00:00Z',
    '2000-02-29T23:59:59Z',
    '2026-01-01T12:00:00Z',
    '2100-03-01T00:00:01Z',
    '2024-12-31T23:59:59Z',
  ])
    assert.is(parseAckTime(s), Date.parse(s), s);
});

test('soak counts only what the host signed; a proven soak stays proven when the heartbeat goes stale', () => {
  assert.is(phase('heartbeat', NOW - MIN, { healthySince: NOW - 5 * MIN }).phase, 'healthy');
  assert.is(phase('heartbeat', NOW - MIN, { healthySince: NOW - 5 * MIN }).healthySeconds, 240);
  const soaked = phase('heartbeat', NOW - MIN, { healthySince: NOW - 20 * MIN });
  assert.is(soaked.phase, 'soaked');
  assert.ok(soaked.settled && !soaked.inFlight);
  // 3 x 60 s heartbeat expiry: 3 minutes is still fresh, 3 minutes and a second is not.
  assert.is(phase('heartbeat', NOW - 3 * MIN, { healthySince: NOW - 20 * MIN }).phase, 'soaked');
  const stale = phase('heartbeat', NOW - 3 * MIN - 1000, { healthySince: NOW - 20 * MIN });
  assert.is(
    stale.phase,
    'soaked',
    'the soak proof is signed evidence of the past: it does not expire',
  );
  assert.ok(stale.settled && stale.done && !stale.inFlight);
  assert.match(stale.note, /stale/, 'staleness still shows as "health now unknown"');
  const silent = phase('heartbeat', NOW - 60 * MIN, { healthySince: NOW - 80 * MIN });
  assert.is(silent.phase, 'soaked', 'not even the offline window undoes a proven soak');
  // Not yet soaked and stale: unproven, and still in flight (it started and has no outcome yet).
  const unproven = phase('heartbeat', NOW - 3 * MIN - 1000, { healthySince: NOW - 8 * MIN });
  assert.is(unproven.phase, 'healthy');
  assert.ok(unproven.inFlight && !unproven.settled && !unproven.done);
  assert.is(
    phase('heartbeat', NOW - 60 * MIN, { healthySince: NOW - 65 * MIN }).phase,
    'healthy',
    'a host that started never becomes an excusable offline host',
  );
});

test('a soak of 0 is proved by a later ack, never by the healthy ack that started the health', () => {
  const p0 = phaseParams(plan, f.targets['web-01']!, 0, DEFAULT_TOLERANCES);
  const phase0 = (kind: Parameters<typeof ackFor>[2], time: number, since: number) =>
    derivePhase(p0, ackFor(f, 'web-01', kind, time, { healthySince: since }), NOW, false);
  // Signed before the agent's read-back: it may still roll back (a switch), so it stays in flight.
  const first = phase0('healthy', NOW - MIN, NOW - MIN);
  assert.is(first.phase, 'healthy');
  assert.ok(first.inFlight && !first.done && !first.settled);
  assert.match(first.note, /its soak proof \(an ack after its first healthy one\) not yet seen/);
  // Any later ack was signed after the agent committed: the proof, a second later or an hour later.
  for (const later of [1000, 60_000, 3_600_000]) {
    const proof = phase0('heartbeat', NOW - MIN - 3_600_000 + later, NOW - MIN - 3_600_000);
    assert.is(proof.phase, 'soaked', `${later} ms later`);
    assert.ok(proof.done && !proof.inFlight);
  }
  // A soak above 0 is unchanged: its proof is necessarily a later ack.
  assert.is(phase('heartbeat', NOW - MIN, { healthySince: NOW - 11 * MIN }).phase, 'soaked');
});

test('offline window: only a host with no evidence of starting becomes offline', () => {
  assert.is(phase('heartbeat', NOW - 15 * MIN).phase, 'pending');
  const off = phase('heartbeat', NOW - 15 * MIN - 1000);
  assert.is(off.phase, 'offline');
  assert.ok(!off.done && !off.inFlight, 'an offline host is not done: it keeps its budget rank');
  assert.is(phase('blocked', NOW - 16 * MIN, { seq: 2 }).phase, 'offline');
  const def = phase('deferred', NOW - 60 * MIN, { seq: 2 });
  assert.is(def.phase, 'deferred', 'a deferred host may reboot into the target at any time');
  assert.ok(def.inFlight);
  const failed = phase('rolled-back', NOW - 48 * 60 * MIN, { seq: 3 });
  assert.is(failed.phase, 'failed', 'failures never expire within a rollout');
  assert.ok(failed.failure === 'reported' && failed.done && !failed.inFlight);
});

test('confirm deadline: a start with no outcome past deadline + skew is presumed failed and stays in flight', () => {
  // Confirm deadline 300 s (builders default) + 60 s skew tolerance.
  const within = phase('started', NOW - 6 * MIN, { seq: 2 });
  assert.is(within.phase, 'activating');
  assert.ok(within.inFlight && within.failure === null);
  const past = phase('started', NOW - 6 * MIN - 1000, { seq: 2 });
  assert.is(past.phase, 'failed');
  assert.is(past.failure, 'presumed');
  assert.ok(
    past.inFlight && !past.done,
    'it may still be switching or soaking with its acks withheld: it keeps its budget slot',
  );
  assert.is(phase('activated', NOW - 60 * MIN, { seq: 3 }).failure, 'presumed');
  assert.is(phase('started', NOW - 6 * MIN, { seq: 2 }).validUntil, NOW + 1);
});

test('clock skew: acks up to 60 s in the future are clamped to now; later ones are ignored', () => {
  const ahead = phase('heartbeat', NOW + 30_000, { healthySince: NOW + 30_000 - 10 * MIN });
  assert.is(ahead.phase, 'healthy', 'the clamp removes the 30 s a fast clock would add');
  assert.is(ahead.healthySeconds, 570);
  const far = phase('heartbeat', NOW + 61_000, { healthySince: NOW - 20 * MIN });
  assert.is(far.phase, 'offline');
  assert.match(far.note, /in the future/);
});

test('acks of another rollout: on the target means converged, otherwise pending', () => {
  assert.is(
    phase('heartbeat', NOW - MIN, {
      rolloutId: 'sha256:' + '0'.repeat(64),
      current: f.targets['web-01']!,
    }).phase,
    'converged',
  );
  assert.is(
    phase('heartbeat', NOW - MIN, { rolloutId: 'sha256:' + '0'.repeat(64) }).phase,
    'pending',
  );
});

test('validity interval: the phase holds until the next threshold', () => {
  const ph = phase('heartbeat', NOW - MIN, { healthySince: NOW - 20 * MIN });
  assert.is(ph.validUntil, NOW - MIN + 3 * MIN + 1);
  const later = derivePhase(
    p,
    ackFor(f, 'web-01', 'heartbeat', NOW - MIN, { healthySince: NOW - 20 * MIN }),
    ph.validUntil,
    false,
  );
  assert.is(later.phase, 'soaked');
  assert.equal(
    [later.validFrom, later.validUntil],
    [ph.validUntil, Number.MAX_SAFE_INTEGER],
    'from the threshold on, for ever',
  );
  // A host not started: pending until the offline window, then offline for ever.
  const idle = phase('heartbeat', NOW - MIN);
  assert.equal([idle.validFrom, idle.validUntil], [NOW - MIN, NOW - MIN + 15 * MIN + 1]);
  const gone = derivePhase(p, ackFor(f, 'web-01', 'heartbeat', NOW - MIN), idle.validUntil, false);
  assert.is(gone.phase, 'offline');
  assert.is(gone.note, 'no ack within the offline window');
  assert.equal([gone.validFrom, gone.validUntil], [idle.validUntil, Number.MAX_SAFE_INTEGER]);
  assert.match(
    later.note,
    /stale/,
    'the note (health now) changes at the threshold, the phase does not',
  );
});

const OTHER = 'sha256:' + '0'.repeat(64);

test('soak threshold: exactly the soak is soaked, a second less is still in flight; health before the switch is not health', () => {
  const at = phase('heartbeat', NOW - MIN, { healthySince: NOW - 11 * MIN, seq: 4 });
  assert.is(at.phase, 'soaked', 'exactly 600 s of signed health');
  assert.is(at.healthySeconds, 600);
  assert.match(at.note, 'soaked (10 min healthy)');
  assert.not.match(at.note, 'stale');
  const short = phase('heartbeat', NOW - MIN, { healthySince: NOW - 11 * MIN + 1000, seq: 4 });
  assert.is(short.phase, 'healthy');
  assert.ok(short.inFlight && !short.done && !short.settled);
  assert.is(short.note, 'healthy for 9 of 10 soak minutes');
  // healthySince after the ack's own time: nothing proven yet, a switch without established health.
  const future = phase('heartbeat', NOW - MIN, { healthySince: NOW - MIN + 1000, seq: 4 });
  assert.is(future.phase, 'confirming');
  assert.is(future.note, 'switched, health not yet established');
  assert.ok(future.inFlight && future.healthySeconds === 0);
  // healthySince exactly the ack's time: healthy for 0 s, health established.
  const zero = phase('heartbeat', NOW - MIN, { healthySince: NOW - MIN, seq: 4 });
  assert.is(zero.phase, 'healthy');
  assert.is(zero.note, 'healthy for 0 of 10 soak minutes');
  const none = phase('healthy', NOW - MIN, { healthySince: null, seq: 4 });
  assert.is(none.phase, 'confirming');
  // A healthy ack of this rollout whose current closure is not the target: it has not switched.
  const off = phase('heartbeat', NOW - MIN, {
    healthySince: NOW - 20 * MIN,
    current: f.previous['web-01']!,
  });
  assert.is(off.phase, 'pending');
  assert.ok(!off.inFlight && !off.done);
});

test('clock skew at its edge: exactly the tolerance ahead still counts (clamped to now, valid for one instant)', () => {
  const edge = phase('heartbeat', NOW + 60_000, { healthySince: NOW - 20 * MIN, seq: 4 });
  assert.is(edge.phase, 'soaked');
  assert.is(edge.healthySeconds, 20 * 60, 'clamped: the 60 s ahead are not counted');
  assert.is(edge.lastAck, NOW);
  assert.equal([edge.validFrom, edge.validUntil], [NOW, NOW + 1]);
  const beyond = phase('heartbeat', NOW + 61_000, { healthySince: NOW - 20 * MIN, seq: 4 });
  assert.is(beyond.phase, 'offline');
  assert.ok(!beyond.settled && !beyond.done && !beyond.inFlight && beyond.lastAck === null);
  assert.match(beyond.note, 'signed 61 s in the future');
  assert.equal([beyond.validFrom, beyond.validUntil], [NOW, NOW + 1]);
  // Signed exactly now: an ordinary ack, valid until its next threshold.
  const now = phase('heartbeat', NOW, { healthySince: NOW - 20 * MIN, seq: 4 });
  assert.equal([now.validFrom, now.validUntil], [NOW, NOW + 3 * MIN + 1]);
});

test('an ack of another rollout proves only current health: fresh on target converges, stale or failed does not', () => {
  const on = { rolloutId: OTHER, current: f.targets['web-01']! };
  const fresh = phase('heartbeat', NOW - 3 * MIN, on);
  assert.is(fresh.phase, 'converged');
  assert.ok(fresh.done && fresh.settled && !fresh.inFlight);
  assert.is(fresh.note, 'already runs the target');
  assert.equal([fresh.validFrom, fresh.validUntil], [NOW - 3 * MIN, NOW + 1]);
  const stale = phase('heartbeat', NOW - 3 * MIN - 1000, on);
  assert.is(stale.phase, 'healthy');
  assert.ok(!stale.done && !stale.settled && !stale.inFlight, 'stale: neither done nor started');
  assert.is(stale.note, 'runs the target but its heartbeat is stale');
  assert.equal(stale.validFrom, NOW - 1000 + 1);
  for (const kind of ['failed', 'rolled-back'] as const) {
    const ph = phase(kind, NOW - MIN, { ...on, seq: 3 });
    assert.is(ph.phase, 'pending', `${kind} of another rollout`);
    assert.ok(!ph.done && ph.failure === null);
  }
  // The same rollout id for another target is another rollout too.
  assert.is(phase('failed', NOW - MIN, { target: OTHER, seq: 3 }).phase, 'pending');
  assert.is(phase('failed', NOW - 16 * MIN, { target: OTHER, seq: 3 }).phase, 'offline');
});

test('reported failures, blocks and deferrals: what each holds and for how long', () => {
  const failed = phase('failed', NOW - MIN, { seq: 3, reason: 'unit nginx failed' });
  assert.is(failed.note, 'failed: unit nginx failed');
  assert.is(failed.failure, 'reported');
  assert.ok(!failed.settled);
  assert.is(failed.validUntil, Number.MAX_SAFE_INTEGER, 'a failure holds for the whole rollout');
  assert.is(phase('rolled-back', NOW - MIN, { seq: 3 }).note, 'rolled-back');
  const blocked = phase('blocked', NOW - 15 * MIN, { seq: 2, reason: 'disk full' });
  assert.is(blocked.phase, 'blocked', 'blocked until the offline window passes');
  assert.is(blocked.note, 'blocked: disk full');
  assert.ok(!blocked.inFlight && !blocked.done && !blocked.settled);
  const def = phase('deferred', NOW - MIN, { seq: 2, reason: 'kernel changes' });
  assert.is(def.note, 'deferred: kernel changes');
  assert.ok(def.inFlight && !def.done && !def.settled && def.failure === null);
  assert.is(def.validUntil, Number.MAX_SAFE_INTEGER);
  const act = phase('activated', NOW - MIN, { seq: 3, reason: 'switched' });
  assert.is(act.phase, 'confirming');
  assert.is(act.note, 'activated: switched');
  const presumed = phase('activated', NOW - 7 * MIN, { seq: 3 });
  assert.is(
    presumed.note,
    'activated, but no outcome within its confirm deadline: presumed failed',
  );
  assert.equal([presumed.validFrom, presumed.validUntil], [NOW - MIN + 1, Number.MAX_SAFE_INTEGER]);
});

test('no ack, or a revoked host: offline, holding nothing, for ever', () => {
  const none = derivePhase(p, undefined, NOW, false);
  assert.is(none.phase, 'offline');
  assert.is(none.note, 'no ack received');
  assert.ok(!none.inFlight && !none.done && !none.settled && none.lastAck === null);
  const revoked = derivePhase(
    p,
    ackFor(f, 'web-01', 'heartbeat', NOW - MIN, { healthySince: NOW - 20 * MIN }),
    NOW,
    true,
  );
  assert.is(revoked.phase, 'offline', 'a revoked host soaks nothing, whatever it signed');
  assert.is(revoked.note, 'host revoked: its acks no longer count');
  assert.ok(!revoked.settled && !revoked.done && !revoked.inFlight);
  for (const ph of [none, revoked])
    assert.equal(
      [ph.validFrom, ph.validUntil],
      [-Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
    );
});

test('describePhase says how old the ack is', () => {
  const ph = phase('activated', NOW - 2 * MIN, { seq: 3 });
  assert.is(describePhase(ph, NOW), 'activated (last ack 2 min ago)');
  assert.is(describePhase(derivePhase(p, undefined, NOW, false), NOW), 'no ack received');
});

test('phase parameters come from the plan, the wave and the tolerances', () => {
  const q = phaseParams(plan, 'T', 42, { clockSkewSeconds: 7, heartbeatExpiryFactor: 5 });
  assert.equal(
    { ...q, compliance: undefined },
    {
      rolloutId: plan.rolloutId,
      target: 'T',
      soakSeconds: 42,
      heartbeatExpiryMs: 5 * 60 * 1000,
      offlineWindowMs: 900 * 1000,
      confirmMs: 300 * 1000 + 7000,
      skewMs: 7000,
      compliance: undefined,
    },
  );
});

test.run();
