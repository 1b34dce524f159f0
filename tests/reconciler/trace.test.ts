// trace() explains a rollout after the fact: each gate that held a host, with the right host, wave and
// span; when it became eligible, activated, confirmed, soaked or failed, and why. Checked on a
// hand-written ack history (exact spans) and as properties over simulated histories (the per-host
// summary agrees with the entries, and 'on-change' replays give the same trace as 'every-ack').
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  fleetView,
  latestAcks,
  trace,
  type AckRecord,
  type Trace,
} from '../../reconciler/index.ts';
import { ReconcilerInputError } from '../../reconciler/context.ts';
import { ackFor, buildFleet } from '../../reconciler/simulator/builders.ts';
import { simulate } from '../../reconciler/simulator/sim.ts';

const T = Date.UTC(2026, 0, 1, 12);
const S = 1000;
const at = (seconds: number) => T + seconds * S;

// canary (c1) gates main; main's wave 0 (a1) goes before wave 1 (b1). Every wave soaks 300 s.
const f = buildFleet({
  channels: [
    { name: 'canary', waves: [{ hosts: ['c1'], soakSeconds: 300 }] },
    {
      name: 'main',
      gatedBy: ['canary'],
      waves: [
        { hosts: ['a1'], soakSeconds: 300 },
        { hosts: ['b1'], soakSeconds: 300 },
      ],
    },
  ],
});
const docs = { plans: f.plans, budgets: f.budgets, revocations: f.revocations };

/** Hello at T, start at t0, switched 30 s later, then healthy and a soak proof 300 s on, or a rollback. */
function life(h: string, t0: number, fail = false): AckRecord[] {
  const healthySince = at(t0 + 40);
  return [
    ackFor(f, h, 'heartbeat', T, { seq: 1 }),
    ackFor(f, h, 'started', at(t0), { seq: 2 }),
    ackFor(f, h, 'activated', at(t0 + 30), { seq: 3 }),
    ...(fail
      ? [
          ackFor(f, h, 'rolled-back', at(t0 + 40), {
            seq: 4,
            reason: 'health probes failed',
            current: f.previous[h],
          }),
        ]
      : [
          ackFor(f, h, 'healthy', at(t0 + 40), { seq: 4, healthySince }),
          ackFor(f, h, 'heartbeat', at(t0 + 340), { seq: 5, healthySince }),
        ]),
  ];
}
// c1 soaks at 400 s, a1 at 760 s; b1 starts at 800 s and rolls back at 840 s.
const history = [...life('c1', 60), ...life('a1', 420), ...life('b1', 800, true)];

test('a host held by a channel edge, then by the earlier wave, then failing: each span with its gate, host and wave', () => {
  // Shuffled, with duplicates: the trace depends on the acks, not on the order they are listed in.
  const t = trace({
    ...docs,
    history: [...history].reverse().concat(history.slice(0, 4)),
    subject: { host: 'b1' },
    stepSeconds: 10,
  });
  assert.is(t.from, T, 'from the first ack');
  assert.is(t.until, at(840 + 300), 'until the last ack plus the longest soak');
  assert.is(t.hosts.length, 1);
  const b1 = t.hosts[0]!;
  assert.equal(
    { host: b1.host, channel: b1.channel, wave: b1.wave },
    { host: 'b1', channel: 'main', wave: 1 },
  );
  assert.equal(
    b1.holds.map((h) => ({ ...h, reason: h.reason.split(':')[0] })),
    [
      {
        gate: 'channel-edge',
        from: T,
        to: at(400),
        seconds: 400,
        reason: 'channel main waits for channel canary to complete',
      },
      {
        gate: 'earlier-waves',
        from: at(400),
        to: at(760),
        seconds: 360,
        reason: 'waiting for wave 1 of channel main',
      },
    ],
  );
  // The reason is the one when the hold began: the earlier wave had not started then.
  assert.match(b1.holds[1]!.reason, /a1 is not started/);
  assert.equal(
    [b1.eligibleAt, b1.activatedAt, b1.confirmedAt, b1.soakedAt, b1.failedAt],
    [at(760), at(800), null, null, at(840)],
  );
  assert.match(b1.failedReason!, /health probes failed/);
  assert.equal(
    t.entries.map((e) => [(e.at - T) / S, e.host, e.phase, e.gate]),
    [
      [0, 'b1', 'pending', 'channel-edge'],
      [400, 'b1', 'pending', 'earlier-waves'],
      [760, 'b1', 'pending', null],
      [800, 'b1', 'activating', null],
      [830, 'b1', 'confirming', null],
      [840, 'b1', 'failed', null],
    ],
  );
  assert.is(t.entries[2]!.reason, null, 'an eligible host has no reason to wait');
  assert.match(t.entries[3]!.reason!, /started/);
});

test('a channel trace covers every host of its waves; a host trace only that host', () => {
  const t = trace({ ...docs, history, subject: { channel: 'main' }, stepSeconds: 10 });
  assert.equal(
    t.hosts.map((h) => [h.host, h.channel, h.wave]),
    [
      ['a1', 'main', 0],
      ['b1', 'main', 1],
    ],
  );
  const a1 = t.hosts[0]!;
  assert.equal(
    [a1.eligibleAt, a1.activatedAt, a1.confirmedAt, a1.soakedAt, a1.failedAt, a1.failedReason],
    [at(400), at(420), at(460), at(760), null, null],
  );
  assert.equal(
    a1.holds.map((h) => [h.gate, h.from, h.to]),
    [['channel-edge', T, at(400)]],
  );
  const c1 = trace({ ...docs, history, subject: { host: 'c1' } });
  assert.ok(c1.entries.every((e) => e.host === 'c1'));
  assert.equal(c1.hosts[0]!.holds, [], 'the canary was never held');
  assert.is(c1.hosts[0]!.eligibleAt, T);
});

test('from and until cut the traced period: acks before it still count, holds end at until', () => {
  const t = trace({
    ...docs,
    history,
    subject: { channel: 'main' },
    from: at(500),
    until: at(790),
    stepSeconds: 7,
  });
  assert.equal([t.from, t.until], [at(500), at(790)]);
  assert.ok(t.entries.every((e) => e.at >= at(500) && e.at <= at(790)));
  // At 500 s, a1 (started at 420 s, before the period) is already healthy; b1 waits for it.
  assert.equal(
    t.entries.map((e) => [(e.at - T) / S, e.host, e.phase, e.gate]),
    [
      [500, 'a1', 'healthy', null],
      [500, 'b1', 'pending', 'earlier-waves'],
      [760, 'a1', 'soaked', null],
      [760, 'b1', 'pending', null],
    ],
  );
  assert.equal(
    t.hosts.map((h) => h.holds.map((x) => [x.gate, x.from, x.to, x.seconds])),
    [[], [['earlier-waves', at(500), at(760), 260]]],
  );
  assert.is(t.hosts[0]!.activatedAt, null, 'a1 activated before the period');
  // A hold still on at the end of the period ends at `until`.
  const cut = trace({ ...docs, history, subject: { host: 'b1' }, until: at(600) });
  assert.equal(
    cut.hosts[0]!.holds.map((x) => [x.gate, x.from, x.to, x.seconds]),
    [
      ['channel-edge', T, at(400), 400],
      ['earlier-waves', at(400), at(600), 200],
    ],
  );
  assert.is(cut.hosts[0]!.eligibleAt, null, 'never eligible within the period');
});

test('without acks the subject is offline from `from` and never eligible; unknown subjects are refused by name', () => {
  const t = trace({ ...docs, history: [], subject: { host: 'b1' }, from: T, until: at(120) });
  assert.equal(
    t.entries.map((e) => [e.at, e.host, e.phase, e.gate]),
    [[T, 'b1', 'offline', null]],
  );
  assert.match(t.entries[0]!.reason!, /no ack/);
  assert.equal(t.hosts[0]!.holds, []);
  assert.is(t.hosts[0]!.eligibleAt, null);
  assert.equal(
    trace({ ...docs, history: [], subject: { host: 'b1' } }).from,
    0,
    'no acks and no from: the epoch',
  );
  assert.throws(
    () => trace({ ...docs, history, subject: { host: 'nope' } }),
    (e: unknown) =>
      e instanceof ReconcilerInputError &&
      e.message === 'host "nope" is in none of the channel plans',
  );
  assert.throws(
    () => trace({ ...docs, history, subject: { channel: 'nope' } }),
    (e: unknown) => e instanceof ReconcilerInputError && e.message === 'channel "nope" has no plan',
  );
});

test('a host is in the state of its highest seq, even when an older ack carries the same or a later time', () => {
  // b1 rolled back (seq 4) at 840 s; a replayed `activated` (seq 3) is listed after it with the same time.
  const replayed = ackFor(f, 'b1', 'activated', at(840), { seq: 3 });
  const stale = ackFor(f, 'b1', 'started', at(845), { seq: 2 });
  for (const extra of [[replayed], [stale], [replayed, stale]]) {
    const t = trace({ ...docs, history: [...history, ...extra], subject: { host: 'b1' } });
    const last = t.entries[t.entries.length - 1]!;
    assert.equal(
      [last.at, last.phase],
      [at(840), 'failed'],
      JSON.stringify(extra.map((a) => a.seq)),
    );
  }
});

test('of two forked acks with one seq, the trace keeps the one the reconciler keeps, in any order', () => {
  const healthy = ackFor(f, 'b1', 'healthy', at(850), { seq: 5, healthySince: at(850) });
  const failed = ackFor(f, 'b1', 'rolled-back', at(850), { seq: 5, current: f.previous['b1'] });
  const kept = latestAcks([healthy, failed])['b1']!;
  for (const forks of [
    [healthy, failed],
    [failed, healthy],
  ]) {
    const t = trace({ ...docs, history: [...history, ...forks], subject: { host: 'b1' } });
    const view = fleetView({ now: t.until, ...docs, acks: latestAcks([...history, ...forks]) });
    const phase = view.hosts.find((h) => h.host === 'b1')!.phase;
    assert.is(t.entries[t.entries.length - 1]!.phase, phase, kept.kind);
  }
});

test('a host seen only once it started (its gate cleared at that instant, or its started ack lost) was eligible and activated then', () => {
  // b1 starts at 760 s, the instant a1's soak proof is signed; then only `activated` arrives for c1
  // (its `started` was lost): both are activated when first seen switching.
  const early = [
    ...life('c1', 60).filter((a) => a.kind !== 'started'),
    ...life('a1', 420),
    ...life('b1', 760, true),
  ];
  const t = trace({ ...docs, history: early, subject: { host: 'b1' }, stepSeconds: 10 });
  assert.equal([t.hosts[0]!.eligibleAt, t.hosts[0]!.activatedAt], [at(760), at(760)]);
  const c1 = trace({ ...docs, history: early, subject: { host: 'c1' }, stepSeconds: 10 }).hosts[0]!;
  assert.equal([c1.eligibleAt, c1.activatedAt], [T, at(90)]);
});

test('time alone changes a phase: a silent host goes offline when its window ends, seen at `until` between steps', () => {
  const quiet = [ackFor(f, 'b1', 'heartbeat', T, { seq: 1 })];
  // The offline window is 900 s; steps fall at 0, 60, ..., 900, and the next (960) is past `until`.
  const t = trace({ ...docs, history: quiet, subject: { host: 'b1' }, until: at(930) });
  assert.equal(
    t.entries.map((e) => [(e.at - T) / S, e.phase]),
    [
      [0, 'pending'],
      [930, 'offline'],
    ],
  );
  const before = trace({ ...docs, history: quiet, subject: { host: 'b1' }, until: at(900) });
  assert.equal(
    before.entries.map((e) => e.phase),
    ['pending'],
  );
});

/** What the per-host summary must say, derived from the entries alone. */
function checkSummary(t: Trace): void {
  for (let i = 1; i < t.entries.length; i++)
    assert.ok(t.entries[i - 1]!.at <= t.entries[i]!.at, 'entries in time order');
  for (const h of t.hosts) {
    const mine = t.entries.filter((e) => e.host === h.host);
    assert.ok(mine.length > 0 && mine[0]!.at === t.from, `${h.host} evaluated from the start`);
    for (let i = 1; i < mine.length; i++)
      assert.ok(
        mine[i]!.phase !== mine[i - 1]!.phase || mine[i]!.gate !== mine[i - 1]!.gate,
        `${h.host}: an entry only when the phase or gate changes`,
      );
    const first = (p: (e: (typeof mine)[number]) => boolean) => mine.find(p)?.at ?? null;
    const activated = first((e) => e.phase === 'activating' || e.phase === 'confirming');
    const eligible = first((e) => e.phase === 'pending' && e.gate === null);
    assert.is(
      h.eligibleAt,
      eligible === null ? activated : activated === null ? eligible : Math.min(eligible, activated),
      `${h.host} eligibleAt`,
    );
    assert.is(h.activatedAt, activated, `${h.host} activatedAt`);
    assert.is(
      h.confirmedAt,
      first((e) => e.phase === 'healthy'),
    );
    assert.is(
      h.soakedAt,
      first((e) => e.phase === 'soaked'),
    );
    assert.is(
      h.failedAt,
      first((e) => e.phase === 'failed'),
    );
    assert.is(h.failedReason, mine.find((e) => e.phase === 'failed')?.reason ?? null);
    const holds = mine.flatMap((e, i) => {
      if (e.gate === null) return [];
      const to = mine[i + 1]?.at ?? t.until;
      return [{ gate: e.gate, from: e.at, to, seconds: (to - e.at) / S, reason: e.reason ?? '' }];
    });
    assert.equal(h.holds, holds, `${h.host} holds`);
    for (const x of h.holds) assert.ok(x.reason.length > 0, `${h.host}: a hold says why`);
  }
}

test('over simulated rollouts (with failures and late acks): the summary agrees with the entries, and on-change replays give the same trace', () => {
  const sim = buildFleet({
    channels: [
      { name: 'canary', waves: [{ hosts: ['cn-1'], soakSeconds: 300 }] },
      {
        name: 'stable',
        gatedBy: ['canary'],
        waves: [
          { hosts: ['s-1', 's-2'], soakSeconds: 300 },
          { hosts: ['s-3', 's-4', 's-5'], soakSeconds: 300 },
        ],
      },
    ],
    budgets: [{ id: 'stable', hosts: ['s-3', 's-4', 's-5'], maxInFlight: 1 }],
  });
  let failed = 0;
  for (const seed of [1, 2, 3, 4]) {
    const r = simulate({
      seed,
      fleet: sim,
      failureRate: seed % 2 ? 0.2 : 0,
      ackDelaySeconds: [0, 30],
    });
    const input = {
      plans: sim.plans,
      budgets: sim.budgets,
      revocations: sim.revocations,
      history: r.history.map((e) => e.ack),
      subject: { channel: 'stable' },
      stepSeconds: 30,
    };
    const everyAck = trace(input);
    checkSummary(everyAck);
    assert.equal(trace({ ...input, instants: 'on-change' }), everyAck, `seed ${seed}`);
    failed += everyAck.hosts.filter((h) => h.failedAt !== null).length;
    // The default step is a minute: entries fall on ack times or whole minutes from the start.
    const coarse = trace({ ...input, stepSeconds: undefined });
    checkSummary(coarse);
    const ackTimes = new Set(r.history.map((e) => Date.parse(e.ack.time)));
    for (const e of coarse.entries)
      assert.ok(
        ackTimes.has(e.at) || (e.at - coarse.from) % 60_000 === 0 || e.at === coarse.until,
        `entry at ${e.at}`,
      );
  }
  assert.ok(failed > 0, 'some seed has a failure');
});

test.run();
