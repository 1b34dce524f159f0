// The reconciler's time helpers (reconciler/time.ts) and maintenance windows (reconciler/maintenance.ts)
// at their edges: ack times parse exactly as Date.parse does for any date, durations for people never
// overstate and change unit exactly at their bounds, and a window is open for [start, start + duration).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { humanDuration, parseAckTime, soakProgress } from '../../reconciler/time.ts';
import { maintenanceWindowAt } from '../../reconciler/maintenance.ts';

const MIN = 60_000;

test('parseAckTime agrees with Date.parse for every second-precision UTC time (years 0001-9999)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: Date.UTC(1, 0, 1), max: Date.UTC(9999, 11, 31, 23, 59, 59) }),
      (ms) => {
        const iso = new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
        assert.is(parseAckTime(iso), Date.parse(iso), iso);
      },
    ),
    { numRuns: 2000 },
  );
  // Month and leap-year edges, where the civil-date arithmetic turns.
  for (const iso of [
    '0001-01-01T00:00:00Z',
    '1600-02-29T12:34:56Z',
    '1900-03-01T00:00:00Z',
    '1999-12-31T23:59:59Z',
    '2000-01-01T00:00:00Z',
    '2000-03-01T00:00:00Z',
    '2023-02-28T23:59:59Z',
    '2024-02-29T00:00:00Z',
    '2024-03-01T00:00:00Z',
    '2400-02-29T23:59:59Z',
  ])
    assert.is(parseAckTime(iso), Date.parse(iso), iso);
});

/** "3 h 5 min" back to seconds. */
function secondsOf(text: string): number {
  const unit: Record<string, number> = { s: 1, min: 60, h: 3600, d: 86400 };
  let total = 0;
  for (const [, n, u] of text.matchAll(/(\d+) (s|min|h|d)\b/g)) total += Number(n) * unit[u!]!;
  return total;
}

test('humanDuration: exact below two minutes, then never overstates and loses less than its smallest unit', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 30 * 86400 }), (s) => {
      const text = humanDuration(s);
      const back = secondsOf(text);
      const unit = s < 120 ? 1 : s < 7200 ? 60 : s < 72 * 3600 ? 60 : 3600;
      assert.ok(back <= s && s - back < unit, `${s} s shown as "${text}"`);
    }),
    { numRuns: 2000 },
  );
  // Each unit starts exactly at its bound.
  assert.is(humanDuration(0), '0 s');
  assert.is(humanDuration(-5), '0 s', 'a negative age (clock skew) shows as 0');
  assert.is(humanDuration(45.4), '45 s');
  assert.is(humanDuration(45.5), '46 s', 'rounded to the nearest second');
  assert.is(humanDuration(119), '119 s');
  assert.is(humanDuration(119.6), '2 min');
  assert.is(humanDuration(120), '2 min');
  assert.is(humanDuration(179), '2 min');
  assert.is(humanDuration(7199), '119 min');
  assert.is(humanDuration(7200), '2 h 0 min');
  assert.is(humanDuration(3 * 3600 + 5 * 60 + 59), '3 h 5 min');
  assert.is(humanDuration(72 * 3600 - 1), '71 h 59 min');
  assert.is(humanDuration(72 * 3600), '3 d 0 h');
  assert.is(humanDuration(4 * 86400 + 2 * 3600 + 3599), '4 d 2 h');
});

test('soakProgress: clamped to [0, soak]; minutes only for a whole number of minutes from two minutes on', () => {
  assert.is(soakProgress(240, 600), '4 of 10 soak minutes');
  assert.is(soakProgress(299, 600), '4 of 10 soak minutes', 'whole minutes done, rounded down');
  assert.is(soakProgress(900, 600), '10 of 10 soak minutes', 'never more than the soak');
  assert.is(soakProgress(-30, 600), '0 of 10 soak minutes', 'never less than nothing');
  assert.is(soakProgress(61, 120), '1 of 2 soak minutes');
  assert.is(soakProgress(30, 60), '30 of 60 soak seconds', 'one minute stays in seconds');
  assert.is(soakProgress(30, 90), '30 of 90 soak seconds', 'not a whole number of minutes');
  assert.is(soakProgress(100, 90), '90 of 90 soak seconds');
  assert.is(soakProgress(12.7, 150), '12 of 150 soak seconds');
});

// 02:00-03:00 UTC daily, and Sundays 22:00 for 30 minutes.
const NIGHTLY = { cron: '0 2 * * *', durationMinutes: 60 };
const SUNDAY = { cron: '0 22 * * 0', durationMinutes: 30 };
const day = (h: number, m = 0, s = 0) => Date.UTC(2026, 0, 1, h, m, s); // a Thursday

test('maintenance window: open on [start, start + duration), closed one millisecond either side', () => {
  assert.equal(maintenanceWindowAt([], day(12)), { open: true }, 'no windows: always open');
  assert.equal(maintenanceWindowAt([NIGHTLY], day(2)), { open: true }, 'opens at its start');
  assert.equal(maintenanceWindowAt([NIGHTLY], day(2, 59, 59)), { open: true });
  assert.equal(maintenanceWindowAt([NIGHTLY], day(3) - 1), { open: true });
  for (const [now, next] of [
    [day(2) - 1, day(2)],
    [day(3), day(2) + 86_400_000],
    [day(12), day(2) + 86_400_000],
  ] as const) {
    const v = maintenanceWindowAt([NIGHTLY], now);
    assert.is(v.open, false, new Date(now).toISOString());
    if (v.open) continue;
    assert.is(v.nextStart, next, `next start after ${new Date(now).toISOString()}`);
    assert.match(v.reason, `outside the maintenance windows ("0 2 * * *" for 60 min)`);
    assert.match(v.reason, `next opens at ${new Date(next).toISOString()}`);
  }
});

test('maintenance windows: open when any window is; the next start is the earliest of all', () => {
  // Sunday 2026-01-04 22:10: only the Sunday window is open.
  const sunday = Date.UTC(2026, 0, 4, 22, 10);
  assert.equal(maintenanceWindowAt([NIGHTLY, SUNDAY], sunday), { open: true });
  assert.equal(maintenanceWindowAt([SUNDAY, NIGHTLY], day(2, 30)), { open: true });
  // Saturday 23:00: the Sunday window (22:00 tomorrow) is later than the nightly one (02:00).
  // The reason lists every window in the plan's order, so an operator can read it against the plan.
  for (const [windows, list] of [
    [[NIGHTLY, SUNDAY], '"0 2 * * *" for 60 min, "0 22 * * 0" for 30 min'],
    [[SUNDAY, NIGHTLY], '"0 22 * * 0" for 30 min, "0 2 * * *" for 60 min'],
  ] as const) {
    const v = maintenanceWindowAt(windows, Date.UTC(2026, 0, 3, 23));
    assert.is(v.open, false);
    if (!v.open) {
      assert.is(v.nextStart, Date.UTC(2026, 0, 4, 2));
      assert.match(v.reason, `outside the maintenance windows (${list}); next opens at`);
    }
  }
  // Sunday 21:00: the Sunday window comes first.
  const v = maintenanceWindowAt([NIGHTLY, SUNDAY], Date.UTC(2026, 0, 4, 21));
  assert.is(v.open ? null : v.nextStart, Date.UTC(2026, 0, 4, 22));
});

test('maintenance windows: an unparsable window never opens (fails closed) and does not hide the others', () => {
  const bad = { cron: 'not a cron', durationMinutes: 600 };
  const only = maintenanceWindowAt([bad], day(12));
  assert.is(only.open, false);
  if (!only.open) {
    assert.is(only.nextStart, null);
    assert.match(only.reason, 'no maintenance window can open ("not a cron" for 600 min)');
  }
  assert.equal(maintenanceWindowAt([bad, NIGHTLY], day(2, 10)), { open: true });
  const closed = maintenanceWindowAt([bad, NIGHTLY], day(12));
  assert.is(closed.open ? null : closed.nextStart, day(2) + 86_400_000);
  assert.is(maintenanceWindowAt([NIGHTLY], day(2) + 30 * MIN).open, true);
});

test("maintenance windows are UTC whatever the machine's time zone", () => {
  const saved = process.env['TZ'];
  try {
    for (const tz of ['Asia/Kolkata', 'America/New_York']) {
      process.env['TZ'] = tz;
      // A cron expression not yet parsed in this process (parsed ones are cached).
      const w = { cron: '30 4 * * *', durationMinutes: 15 };
      assert.equal(maintenanceWindowAt([w], Date.UTC(2026, 0, 1, 4, 30)), { open: true }, tz);
      const v = maintenanceWindowAt([w], Date.UTC(2026, 0, 1, 4, 45));
      assert.is(v.open ? null : v.nextStart, Date.UTC(2026, 0, 2, 4, 30), tz);
      maintenanceWindowAt([{ ...w, cron: '31 4 * * *' }], 0);
    }
  } finally {
    if (saved === undefined) delete process.env['TZ'];
    else process.env['TZ'] = saved;
  }
});

test.run();
