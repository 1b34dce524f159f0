// How a host's phase derives from its latest ack: freshness, offline window, clock skew, soak.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { derivePhase, phaseParams, DEFAULT_TOLERANCES } from '../../reconciler/index.ts';
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
  assert.match(
    later.note,
    /stale/,
    'the note (health now) changes at the threshold, the phase does not',
  );
});

test.run();
