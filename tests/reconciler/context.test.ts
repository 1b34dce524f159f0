// The fleet-wide gates (reconciler/context.ts) at their edges, through fleetView() and decide():
// failure thresholds, offline excuses in wave order, operator controls at their instant, which host a
// waiting wave names, channel edges, budget ranks across channels and budgets, and the plans the
// reconciler refuses to evaluate.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  ackFor,
  buildFleet,
  type BuiltFleet,
  type FleetSpec,
} from '../../reconciler/simulator/builders.ts';
import {
  decide,
  fleetView,
  type AckRecord,
  type DecideInput,
  type Decision,
  type FleetInput,
} from '../../reconciler/index.ts';
import type { Controls } from '../../protocol/index.ts';

const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);
const MIN = 60_000;
const iso = (ms: number) => new Date(ms).toISOString().replace('.000Z', 'Z');

const idle = (f: BuiltFleet, h: string) => ackFor(f, h, 'heartbeat', NOW - MIN);
const soaked = (f: BuiltFleet, h: string) =>
  ackFor(f, h, 'heartbeat', NOW - MIN, { healthySince: NOW - 20 * MIN, seq: 5 });
const healthyFor = (f: BuiltFleet, h: string, minutes: number) =>
  ackFor(f, h, 'heartbeat', NOW - 30_000, { healthySince: NOW - 30_000 - minutes * MIN, seq: 4 });
const failed = (f: BuiltFleet, h: string, at = NOW - MIN) =>
  ackFor(f, h, 'rolled-back', at, { seq: 4, reason: 'probe failed' });

function controls(c: Partial<Controls>): Controls {
  return {
    type: 'controls',
    schemaVersion: 1,
    fleet: 'sim',
    version: 1,
    issuedAt: iso(NOW - 10 * MIN),
    paused: [],
    resumedHalts: [],
    retries: [],
    quarantineClears: [],
    ...c,
  };
}

/** The latest ack per host, the later in the list winning (scenarios override a host's ack by appending). */
function lastPerHost(acks: AckRecord[]): Record<string, AckRecord> {
  return Object.fromEntries(acks.map((a) => [a.host, a]));
}

function fleetInput(f: BuiltFleet, acks: AckRecord[], extra: Partial<FleetInput> = {}): FleetInput {
  return {
    now: NOW,
    plans: f.plans,
    budgets: f.budgets,
    revocations: f.revocations,
    acks: lastPerHost(acks),
    ...extra,
  };
}

function decideFor(
  f: BuiltFleet,
  host: string,
  acks: AckRecord[],
  extra: Partial<FleetInput> = {},
): Decision {
  const input: DecideInput = {
    ...fleetInput(f, acks, extra),
    manifest: f.manifests[host]!,
    freshness: { status: 'fresh' },
    local: { current: f.previous[host]!, pending: null, previous: null, quarantine: [] },
    inhibitor: null,
  };
  return decide(input);
}

const gateOf = (d: Decision) => ('gate' in d ? d.gate : d.kind);

test('a percent failure threshold allows floor(percent x hosts / 100) failures; one more halts', () => {
  const hosts = Array.from({ length: 7 }, (_, i) => `h-${i}`);
  const f = buildFleet({
    channels: [
      {
        name: 'stable',
        waves: [
          { hosts, soakSeconds: 600, failureThreshold: { percent: 30 } },
          { hosts: ['last'], soakSeconds: 600 },
        ],
      },
    ],
  });
  // 30 % of 7 = 2.1: two failures are tolerated.
  const two = [failed(f, 'h-0'), failed(f, 'h-1'), ...hosts.slice(2).map((h) => soaked(f, h))];
  const w = fleetView(fleetInput(f, two)).channels[0]!.waves[0]!;
  assert.is(w.allowedFailures, 2);
  assert.is(w.failures, 2);
  assert.is(w.state, 'complete');
  assert.is(decideFor(f, 'last', two).kind, 'activate');
  const three = [...two, failed(f, 'h-2')];
  const v = fleetView(fleetInput(f, three)).channels[0]!;
  assert.is(v.waves[0]!.state, 'halted');
  assert.is(v.state, 'halted');
  assert.match(v.reason, 'wave 1 has 3 failed host(s) (h-0, h-1, h-2), more than the 2 allowed');
  assert.is(gateOf(decideFor(f, 'last', three)), 'halted');
});

test('offline hosts are excused in wave order up to the limit; the next one holds the wave and is named', () => {
  const f = buildFleet({
    channels: [
      {
        name: 'stable',
        waves: [
          { hosts: ['a', 'b', 'c', 'd'], soakSeconds: 600, offlineExcuseLimit: 1 },
          { hosts: ['e'], soakSeconds: 600 },
        ],
      },
    ],
  });
  const gone = (h: string) => ackFor(f, h, 'heartbeat', NOW - 60 * MIN);
  const acks = [soaked(f, 'a'), gone('b'), soaked(f, 'c'), gone('d'), idle(f, 'e')];
  const v = fleetView(fleetInput(f, acks));
  const byHost = new Map(v.hosts.map((h) => [h.host, h]));
  assert.is(byHost.get('b')!.excused, true, 'the first offline host in wave order is excused');
  assert.is(byHost.get('d')!.excused, false);
  const w = v.channels[0]!.waves[0]!;
  assert.equal(w.blockingHosts, ['d']);
  assert.match(w.reason, 'waiting for wave 1 of channel stable: d is offline');
  assert.match(w.reason, '1 of 1 offline excuse(s) used');
  const d = decideFor(f, 'e', acks);
  assert.is(gateOf(d), 'earlier-waves');
  assert.match(d.reason, 'd is offline');
  // Once d is back and soaked, b's excuse lets the wave complete (an excused offline host is no deferral).
  assert.is(decideFor(f, 'e', [...acks, soaked(f, 'd')]).kind, 'activate');
  const done = fleetView(fleetInput(f, [...acks, soaked(f, 'd')])).channels[0]!.waves[0]!;
  assert.is(done.state, 'complete');
  assert.is(done.reason, 'wave 1 of channel stable is complete');
});

test('offline excuses used counts offline hosts only, not deferred hosts excused by deferredHosts: excuse', () => {
  const f = buildFleet({
    channels: [
      {
        name: 'stable',
        deferredHosts: 'excuse',
        waves: [
          { hosts: ['a', 'b', 'c'], soakSeconds: 600, offlineExcuseLimit: 0 },
          { hosts: ['z'], soakSeconds: 600 },
        ],
      },
    ],
  });
  const acks = [
    ackFor(f, 'a', 'deferred', NOW - MIN, { seq: 2, reason: 'kernel changes' }),
    ackFor(f, 'b', 'heartbeat', NOW - 60 * MIN),
    soaked(f, 'c'),
    idle(f, 'z'),
  ];
  const d = decideFor(f, 'z', acks);
  assert.is(gateOf(d), 'earlier-waves');
  assert.match(d.reason, 'b is offline');
  assert.match(d.reason, '0 of 0 offline excuse(s) used');
});

test('a waiting wave names the host furthest behind, and how many more hold it', () => {
  const f = buildFleet({
    channels: [
      {
        name: 'stable',
        waves: [
          { hosts: ['a', 'b', 'c', 'd', 'e'], soakSeconds: 600 },
          { hosts: ['z'], soakSeconds: 600 },
        ],
      },
    ],
  });
  const reason = (acks: AckRecord[]) =>
    fleetView(fleetInput(f, acks)).channels[0]!.waves[0]!.reason;
  const base = [soaked(f, 'a'), soaked(f, 'b'), soaked(f, 'c'), soaked(f, 'd'), soaked(f, 'e')];
  // Among healthy hosts, the one with the least soak.
  const healthy = [...base, healthyFor(f, 'b', 7), healthyFor(f, 'c', 3), healthyFor(f, 'd', 5)];
  assert.match(reason(healthy), 'c healthy for 3 of 10 soak minutes (and 2 more hosts)');
  // A host not yet started is further behind than any healthy one; activating is in between.
  const started = ackFor(f, 'e', 'started', NOW - MIN, { seq: 2 });
  assert.match(
    reason([...healthy, started]),
    'e is activating (started (last ack 60 s ago)) (and 3 more hosts)',
  );
  assert.match(
    reason([...healthy, started, idle(f, 'a')]),
    'a is not started (not started (last ack 60 s ago)) (and 4 more hosts)',
  );
  // One other host: singular.
  assert.match(
    reason([...base, healthyFor(f, 'b', 7), healthyFor(f, 'c', 8)]),
    'b healthy for 7 of 10 soak minutes (and 1 more host)',
  );
  assert.match(reason([...base, healthyFor(f, 'b', 7)]), /b healthy for 7 of 10 soak minutes$/);
  // The earlier-waves gate retries when the least-soaked host would finish.
  const d = decideFor(f, 'z', healthy);
  assert.is(d.kind === 'wait' ? d.retryAfter : null, 7 * 60);
});

test('operator controls apply to evidence up to their instant: resumed halts and retries, the latest entry counting', () => {
  const f = buildFleet({
    channels: [
      {
        name: 'stable',
        waves: [
          { hosts: ['web-01', 'web-02'], soakSeconds: 600 },
          { hosts: ['web-03'], soakSeconds: 600 },
        ],
      },
    ],
  });
  const rolloutId = f.plans['stable']!.rolloutId;
  const acks = [failed(f, 'web-01', NOW - 2 * MIN), soaked(f, 'web-02'), idle(f, 'web-03')];
  assert.is(gateOf(decideFor(f, 'web-03', acks)), 'halted');
  const resumed = (...at: number[]) =>
    controls({
      resumedHalts: at.map((t) => ({
        channel: 'stable',
        rolloutId,
        acceptedAt: iso(t),
        reason: 'flaky',
      })),
    });
  // Accepted exactly at the failure's signed time: accepted (the halt lifts, but the failed host never
  // completes the wave: web-03 waits for it).
  const atFailure = fleetView(fleetInput(f, acks, { controls: resumed(NOW - 2 * MIN) }))
    .channels[0]!;
  assert.is(atFailure.state, 'in-progress');
  assert.is(atFailure.waves[0]!.failures, 0);
  const before = fleetView(fleetInput(f, acks, { controls: resumed(NOW - 2 * MIN - 1000) }));
  assert.is(before.channels[0]!.state, 'halted', 'a failure signed after acceptedAt still counts');
  // Several entries for the same rollout: the latest acceptedAt counts, whatever their order.
  for (const c of [resumed(NOW - 5 * MIN, NOW - MIN), resumed(NOW - MIN, NOW - 5 * MIN)])
    assert.is(fleetView(fleetInput(f, acks, { controls: c })).channels[0]!.state, 'in-progress');
  // A retry of web-01 (the latest entry counting): pending again, so it may start; a retry before the failure does nothing.
  const retry = (...at: number[]) =>
    controls({
      retries: at.map((t) => ({ host: 'web-01', rolloutId, at: iso(t), reason: 'fixed' })),
    });
  for (const c of [
    retry(NOW - 2 * MIN),
    retry(NOW - 9 * MIN, NOW - MIN),
    retry(NOW - MIN, NOW - 9 * MIN),
  ]) {
    const v = fleetView(fleetInput(f, acks, { controls: c }));
    const h = v.hosts.find((x) => x.host === 'web-01')!;
    assert.is(h.phase, 'pending');
    assert.match(h.detail, 'retry allowed by the operator after: rolled-back: probe failed');
    assert.is(v.channels[0]!.state, 'in-progress');
    assert.is(decideFor(f, 'web-01', acks, { controls: c }).kind, 'activate');
  }
  // Retried, web-01 is pending again: it holds its wave (not settled) and its budget rank (not done),
  // and is not in flight.
  const g = buildFleet({
    channels: [{ name: 'stable', waves: [{ hosts: ['web-01', 'web-02'], soakSeconds: 600 }] }],
    budgets: [{ id: 'pair', hosts: ['web-01', 'web-02'], maxInFlight: 1 }],
  });
  const gRetry = controls({
    retries: [
      { host: 'web-01', rolloutId: g.plans['stable']!.rolloutId, at: iso(NOW), reason: 'fixed' },
    ],
  });
  const gAcks = [failed(g, 'web-01'), idle(g, 'web-02')];
  assert.is(
    fleetView(fleetInput(g, gAcks, { controls: gRetry })).channels[0]!.waves[0]!.state,
    'active',
  );
  assert.is(
    decideFor(g, 'web-02', gAcks, { controls: gRetry }).reason,
    'disruption budget pair is full: 0 host(s) in flight + 1 host(s) ranked ahead of web-02 not yet soaked or failed, max 1',
  );
  assert.is(
    decideFor(g, 'web-02', [...gAcks, soaked(g, 'web-01')], { controls: gRetry }).kind,
    'activate',
  );
  const early = fleetView(fleetInput(f, acks, { controls: retry(NOW - 2 * MIN - 1000) }));
  assert.is(early.hosts.find((x) => x.host === 'web-01')!.phase, 'failed');
  // A retry names one host and one rollout: another host's, or web-01's of another rollout, lifts nothing.
  for (const other of [
    { host: 'web-02', rolloutId },
    { host: 'web-01', rolloutId: 'sha256:' + '0'.repeat(64) },
  ]) {
    const c = controls({ retries: [{ ...other, at: iso(NOW), reason: 'fixed' }] });
    const v = fleetView(fleetInput(f, acks, { controls: c }));
    assert.is(v.hosts.find((x) => x.host === 'web-01')!.phase, 'failed', JSON.stringify(other));
    assert.is(v.channels[0]!.state, 'halted');
  }
  // A retry lifts only a signed failure report, never a start presumed failed.
  const presumed = [
    ackFor(f, 'web-01', 'started', NOW - 30 * MIN, { seq: 2 }),
    soaked(f, 'web-02'),
  ];
  const p = fleetView(fleetInput(f, presumed, { controls: retry(NOW) }));
  assert.is(p.hosts.find((x) => x.host === 'web-01')!.phase, 'failed');
});

test('a pause holds every host of its channel, naming since when and why; other channels go on', () => {
  const f = buildFleet({
    channels: [
      { name: 'a', waves: [{ hosts: ['a-1'], soakSeconds: 60 }], signingIntervalSeconds: 123 },
      { name: 'b', waves: [{ hosts: ['b-1'], soakSeconds: 60 }] },
    ],
  });
  const acks = [idle(f, 'a-1'), idle(f, 'b-1')];
  const paused = (reason: string) =>
    controls({ paused: [{ channel: 'a', since: iso(NOW - 5 * MIN), reason }] });
  const d = decideFor(f, 'a-1', acks, { controls: paused('') });
  assert.is(gateOf(d), 'paused');
  assert.is(d.kind === 'wait' ? d.retryAfter : null, 123);
  assert.is(
    d.reason,
    'channel a is paused by the operator since 2026-01-01T11:55:00Z (no reason given): nothing new starts; activations and rollbacks in flight continue',
  );
  assert.match(decideFor(f, 'a-1', acks, { controls: paused('incident') }).reason, '(incident)');
  assert.is(decideFor(f, 'b-1', acks, { controls: paused('') }).kind, 'activate');
});

test('channel edges: every gating channel must complete on the same release; the first one holding is named', () => {
  const spec = (gatingRelease: number): FleetSpec => ({
    channels: [
      { name: 'a', waves: [{ hosts: ['a-1'], soakSeconds: 600 }] },
      { name: 'b', waves: [{ hosts: ['b-1'], soakSeconds: 600 }] },
      { name: 'c', gatedBy: ['a', 'b'], waves: [{ hosts: ['c-1'], soakSeconds: 600 }] },
    ],
    releaseVersion: gatingRelease,
  });
  const f = buildFleet(spec(1));
  // a complete, b still soaking: c waits for b, and says why.
  const acks = [soaked(f, 'a-1'), healthyFor(f, 'b-1', 4), idle(f, 'c-1')];
  const d = decideFor(f, 'c-1', acks);
  assert.is(gateOf(d), 'channel-edge');
  // Stale and still unproven: the reason says so, and the retry is the heartbeat, not the rest of the soak.
  const stale = ackFor(f, 'b-1', 'heartbeat', NOW - 10 * MIN, {
    healthySince: NOW - 14 * MIN,
    seq: 4,
  });
  const staleHold = decideFor(f, 'c-1', [soaked(f, 'a-1'), stale, idle(f, 'c-1')]);
  assert.match(
    staleHold.reason,
    'b-1 healthy for 4 of 10 soak minutes, but its heartbeat is stale',
  );
  assert.is(staleHold.kind === 'wait' ? staleHold.retryAfter : null, 60);
  assert.match(
    d.reason,
    'channel c waits for channel b to complete: waiting for wave 1 of channel b: b-1 healthy for 4 of 10 soak minutes',
  );
  assert.is(d.kind === 'wait' ? d.retryAfter : null, 6 * 60);
  const v = fleetView(fleetInput(f, acks)).channels.find((c) => c.channel === 'c')!;
  assert.is(v.state, 'gated');
  assert.is(v.waves[0]!.state, 'waiting');
  assert.match(v.reason, 'channel c waits for channel b');
  assert.is(decideFor(f, 'c-1', [...acks, soaked(f, 'b-1')]).kind, 'activate');
  // b halted: c is held by the halt, naming it.
  const halted = decideFor(f, 'c-1', [soaked(f, 'a-1'), failed(f, 'b-1'), idle(f, 'c-1')]);
  assert.match(
    halted.reason,
    'channel c is gated by channel b, which is halted: rollout of channel b is halted',
  );
  assert.is(halted.kind === 'wait' ? halted.retryAfter : null, 600, 'the signing interval');
  const own = decideFor(f, 'b-1', [soaked(f, 'a-1'), failed(f, 'b-1'), idle(f, 'c-1')]);
  assert.equal(own.kind === 'wait' ? [own.gate, own.retryAfter] : null, ['halted', 600]);
  // A gating plan from another release never releases the edge, even complete.
  const old = buildFleet(spec(1));
  const plans = { ...f.plans, b: { ...buildFleet(spec(2)).plans['b']! } };
  const mixed = decide({
    ...fleetInput(old, [soaked(old, 'a-1'), soaked(old, 'b-1'), idle(old, 'c-1')], { plans }),
    manifest: old.manifests['c-1']!,
    freshness: { status: 'fresh' },
    local: { current: old.previous['c-1']!, pending: null, previous: null, quarantine: [] },
    inhibitor: null,
  });
  assert.is(gateOf(mixed), 'channel-edge');
  assert.match(mixed.reason, 'gated by channel b, whose plan is from release 2, not 1');
  assert.is(mixed.kind === 'wait' ? mixed.retryAfter : null, 600);
});

test('host edges: the later host waits until the earlier one is settled, naming both and its phase', () => {
  const f = buildFleet({
    channels: [
      {
        name: 'db',
        heartbeatSeconds: 45,
        waves: [{ hosts: ['db-1', 'db-2', 'db-3'], soakSeconds: 600 }],
        hostEdges: [
          { before: 'db-1', after: 'db-3' },
          { before: 'db-2', after: 'db-3' },
        ],
      },
    ],
  });
  const acks = [soaked(f, 'db-1'), healthyFor(f, 'db-2', 2), idle(f, 'db-3')];
  const d = decideFor(f, 'db-3', acks);
  assert.is(gateOf(d), 'host-edge');
  assert.is(d.kind === 'wait' ? d.retryAfter : null, 45);
  assert.match(
    d.reason,
    'waiting for db-2 (host edge db-2 -> db-3): db-2 is healthy (healthy for 2 of 10 soak minutes',
  );
  assert.is(decideFor(f, 'db-3', [...acks, soaked(f, 'db-2')]).kind, 'activate');
});

test('budgets: a host counts the hosts in flight and those ranked ahead; exactly max holds; every budget of the host applies', () => {
  const f = buildFleet({
    channels: [{ name: 'web', waves: [{ hosts: ['w-1', 'w-2', 'w-3', 'w-4'], soakSeconds: 600 }] }],
    budgets: [
      { id: 'big', hosts: ['w-1', 'w-2', 'w-3', 'w-4'], maxInFlight: 2 },
      { id: 'small', hosts: ['w-3', 'w-4'], maxInFlight: 1 },
    ],
  });
  const started = (h: string) => ackFor(f, h, 'started', NOW - MIN, { seq: 2 });
  // w-1 in flight, w-2 soaked: w-3 may start (1 < 2); w-4 has w-3 ahead of it in both budgets.
  const acks = [started('w-1'), soaked(f, 'w-2'), idle(f, 'w-3'), idle(f, 'w-4')];
  assert.is(decideFor(f, 'w-3', acks).kind, 'activate');
  const w4 = decideFor(f, 'w-4', acks);
  assert.is(gateOf(w4), 'disruption-budget');
  assert.match(
    w4.reason,
    'disruption budget big is full: 1 host(s) in flight (w-1) + 1 host(s) ranked ahead of w-4 not yet soaked or failed, max 2',
  );
  // w-3 in flight too: big is exactly full for w-4 (2 of 2); small as well.
  const two = [started('w-1'), soaked(f, 'w-2'), started('w-3'), idle(f, 'w-4')];
  assert.match(
    decideFor(f, 'w-4', two).reason,
    'disruption budget big is full: 2 host(s) in flight (w-1, w-3) + 0 host(s) ranked ahead',
  );
  // w-1 soaked: big has room (1 of 2), small does not (w-3 in flight, max 1).
  const small = [soaked(f, 'w-1'), soaked(f, 'w-2'), started('w-3'), idle(f, 'w-4')];
  assert.match(
    decideFor(f, 'w-4', small).reason,
    'disruption budget small is full: 1 host(s) in flight (w-3) + 0 host(s)',
  );
  const v = fleetView(fleetInput(f, small));
  assert.equal(
    v.budgets.map((b) => [b.id, b.max, b.inFlight, b.inFlightHosts]),
    [
      ['big', 2, 1, ['w-3']],
      ['small', 1, 1, ['w-3']],
    ],
  );
  assert.is(v.hosts.find((h) => h.host === 'w-4')!.gate, 'disruption-budget');
  // Nobody in flight, everyone idle: the rank alone holds w-4 (three hosts ahead of it in big).
  const idleAll = [idle(f, 'w-1'), idle(f, 'w-2'), idle(f, 'w-3'), idle(f, 'w-4')];
  assert.is(
    decideFor(f, 'w-4', idleAll).reason,
    'disruption budget big is full: 0 host(s) in flight + 3 host(s) ranked ahead of w-4 not yet soaked or failed, max 2',
  );
  // A host in flight never counts against itself.
  assert.is(
    decideFor(f, 'w-3', [soaked(f, 'w-1'), soaked(f, 'w-2'), started('w-3'), idle(f, 'w-4')]).kind,
    'activate',
  );
});

test('budget rank: a gated channel ranks after every wave of the channels gating it, whatever the names', () => {
  // "a-main" sorts before "z-canary", but z-canary gates it: z-canary's host is first in the rank.
  const f = buildFleet({
    channels: [
      {
        name: 'z-canary',
        waves: [
          { hosts: ['c-1'], soakSeconds: 60 },
          { hosts: ['c-2'], soakSeconds: 60 },
        ],
      },
      { name: 'a-main', gatedBy: ['z-canary'], waves: [{ hosts: ['m-1'], soakSeconds: 60 }] },
    ],
    budgets: [{ id: 'all', hosts: ['m-1', 'c-2', 'c-1'], maxInFlight: 1 }],
  });
  const acks = [idle(f, 'c-1'), idle(f, 'c-2'), idle(f, 'm-1')];
  assert.is(decideFor(f, 'c-1', acks).kind, 'activate');
  // In the view, the same: c-1 passes every gate, m-1 is held by the channel edge.
  const v = fleetView(fleetInput(f, acks));
  assert.is(v.hosts.find((h) => h.host === 'c-1')!.gate, null);
  assert.is(
    v.hosts.find((h) => h.host === 'c-1')!.reason,
    'every gate passed: starts at its next poll',
  );
  // Same level: channels rank by name.
  const h = buildFleet({
    channels: [
      { name: 'b', waves: [{ hosts: ['b-1'], soakSeconds: 60 }] },
      { name: 'a', waves: [{ hosts: ['a-1'], soakSeconds: 60 }] },
    ],
    budgets: [{ id: 'ab', hosts: ['b-1', 'a-1'], maxInFlight: 1 }],
  });
  const hAcks = [idle(h, 'a-1'), idle(h, 'b-1')];
  assert.is(decideFor(h, 'a-1', hAcks).kind, 'activate');
  assert.match(decideFor(h, 'b-1', hAcks).reason, '1 host(s) ranked ahead of b-1');
  // Within a wave, a host after a host edge ranks after the host before it.
  const g = buildFleet({
    channels: [
      {
        name: 'db',
        waves: [{ hosts: ['d-1', 'd-2'], soakSeconds: 60 }],
        hostEdges: [{ before: 'd-2', after: 'd-1' }],
      },
    ],
    budgets: [{ id: 'db', hosts: ['d-1', 'd-2'], maxInFlight: 1 }],
  });
  const gAcks = [
    ackFor(g, 'd-1', 'heartbeat', NOW - MIN),
    ackFor(g, 'd-2', 'heartbeat', NOW - MIN),
  ];
  assert.is(decideFor(g, 'd-2', gAcks).kind, 'activate');
  assert.is(gateOf(decideFor(g, 'd-1', gAcks)), 'host-edge');
});

test('a maintenance window with no parsable start holds at the signing interval; an open one lets hosts start', () => {
  const f = buildFleet({
    channels: [
      {
        name: 'stable',
        signingIntervalSeconds: 321,
        waves: [{ hosts: ['web-01'], soakSeconds: 60 }],
        maintenanceWindows: [{ cron: 'never at all', durationMinutes: 60 }],
      },
    ],
  });
  const d = decideFor(f, 'web-01', [idle(f, 'web-01')]);
  assert.is(gateOf(d), 'maintenance-window');
  assert.is(d.kind === 'wait' ? d.retryAfter : null, 321);
  assert.match(d.reason, 'channel stable: no maintenance window can open');
  // A window opening in half a second: retried after 1 s, never 0.
  const g = buildFleet({
    channels: [
      {
        name: 'stable',
        waves: [{ hosts: ['web-01'], soakSeconds: 60 }],
        maintenanceWindows: [{ cron: '0 2 * * *', durationMinutes: 60 }],
      },
    ],
  });
  const soon = decideFor(g, 'web-01', [idle(g, 'web-01')], {
    now: Date.UTC(2026, 0, 2, 1, 59, 59, 500),
  });
  assert.is(soon.kind === 'wait' ? soon.retryAfter : null, 1);
});

test('diamond channel edges: a channel gated through two paths ranks after the longest one (no false cycle)', () => {
  // base gates left (1 wave) and right (2 waves); top is gated by both.
  const f = buildFleet({
    channels: [
      { name: 'base', waves: [{ hosts: ['b-1'], soakSeconds: 60 }] },
      { name: 'left', gatedBy: ['base'], waves: [{ hosts: ['l-1'], soakSeconds: 60 }] },
      {
        name: 'right',
        gatedBy: ['base'],
        waves: [
          { hosts: ['r-1'], soakSeconds: 60 },
          { hosts: ['r-2'], soakSeconds: 60 },
        ],
      },
      { name: 'a-top', gatedBy: ['left', 'right'], waves: [{ hosts: ['t-1'], soakSeconds: 60 }] },
    ],
    // r-2 (level 2) ranks before t-1 (level 3): with r-2 not yet soaked, t-1 has one host ahead.
    budgets: [{ id: 'b', hosts: ['t-1', 'r-2'], maxInFlight: 1 }],
  });
  const acks = [
    soaked(f, 'b-1'),
    soaked(f, 'l-1'),
    soaked(f, 'r-1'),
    idle(f, 'r-2'),
    idle(f, 't-1'),
  ];
  assert.is(decideFor(f, 'r-2', acks).kind, 'activate');
  const all = [...acks, soaked(f, 'r-2')];
  assert.is(decideFor(f, 't-1', all).kind, 'activate');
  assert.is(
    fleetView(fleetInput(f, all)).channels.find((c) => c.channel === 'a-top')!.state,
    'in-progress',
  );
});

test('a revocation applies at once to the same documents evaluated before (and lifts when gone)', () => {
  const f = buildFleet({
    channels: [
      {
        name: 'stable',
        waves: [
          { hosts: ['web-01'], soakSeconds: 600 },
          { hosts: ['web-02'], soakSeconds: 600 },
        ],
      },
    ],
  });
  const acks = [soaked(f, 'web-01'), idle(f, 'web-02')];
  const revoked = {
    ...f.revocations,
    hosts: [
      {
        host: 'web-01',
        keyid: null,
        certSerial: null,
        reason: 'stolen',
        revokedAt: iso(NOW - MIN),
      },
    ],
  };
  const phase = (extra: Partial<FleetInput>) =>
    fleetView(fleetInput(f, acks, extra)).hosts.find((h) => h.host === 'web-01')!;
  for (const order of [
    [{}, { revocations: revoked }, {}],
    [{ revocations: revoked }, {}, { revocations: revoked }],
  ]) {
    for (const extra of order) {
      const h = phase(extra);
      if (extra.revocations) {
        assert.is(h.phase, 'offline');
        assert.is(h.detail, 'host revoked: its acks no longer count');
      } else assert.is(h.phase, 'soaked');
    }
  }
  assert.is(gateOf(decideFor(f, 'web-02', acks, { revocations: revoked })), 'earlier-waves');
  assert.is(decideFor(f, 'web-02', acks).kind, 'activate');
});

test('plans the reconciler refuses to evaluate: each error names what is wrong', () => {
  const spec = (extra: object): FleetSpec => ({
    channels: [{ name: 'stable', waves: [{ hosts: ['a', 'b'], soakSeconds: 60 }], ...extra }],
  });
  const view = (f: BuiltFleet, extra: Partial<FleetInput> = {}) =>
    fleetView(fleetInput(f, [], extra));
  const cyc = buildFleet(
    spec({
      hostEdges: [
        { before: 'a', after: 'b' },
        { before: 'b', after: 'a' },
      ],
    }),
  );
  assert.throws(() => view(cyc), /channel plan "stable" has a cycle in its host edges/);
  const f = buildFleet(spec({}));
  const plan = f.plans['stable']!;
  const missing = { ...plan, hosts: { a: plan.hosts['a']! } };
  assert.throws(
    () => view(f, { plans: { stable: missing } }),
    /channel plan "stable" lists host "b" in wave 0 but not in its hosts/,
  );
  const g = buildFleet({
    channels: [
      { name: 'x', gatedBy: ['y'], waves: [{ hosts: ['x-1'], soakSeconds: 60 }] },
      { name: 'y', gatedBy: ['x'], waves: [{ hosts: ['y-1'], soakSeconds: 60 }] },
    ],
    budgets: [{ id: 'b', hosts: ['x-1', 'y-1'], maxInFlight: 1 }],
  });
  assert.throws(() => view(g), /channel edges form a cycle through channel "[xy]"/);
  const stranger = buildFleet({
    ...spec({}),
    budgets: [{ id: 'b', hosts: ['a', 'nobody'], maxInFlight: 1 }],
  }).budgets;
  assert.throws(
    () => view(f, { budgets: stranger }),
    /host "nobody" is in a disruption budget but in none of the channel plans provided/,
  );
  const stray = buildFleet(spec({ hostEdges: [{ before: 'elsewhere', after: 'b' }] }));
  assert.throws(
    () => decideFor(stray, 'b', []),
    /host "elsewhere" is in no wave of channel "stable"/,
  );
  const h = buildFleet({
    channels: [{ name: 'c', gatedBy: ['gone'], waves: [{ hosts: ['c-1'], soakSeconds: 60 }] }],
  });
  assert.throws(() => view(h), /the channel plan of "gone" is needed but was not provided/);
});

test.run();
