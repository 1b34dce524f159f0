// The simulator's building blocks on their own: the seeded RNG (a seed must replay exactly, across
// versions too), the event queue's order, synthetic fleets' shape, and the words people read.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { EventQueue, Rng } from '../../reconciler/simulator/random.ts';
import { syntheticFleet } from '../../reconciler/simulator/generate.ts';
import { listWithMore, waveLabel } from '../../reconciler/index.ts';

const TWO_32 = 4294967296;

test('Rng is mulberry32: a seed recorded in a report replays the same draws in any version', () => {
  // Reference values of the published mulberry32 (first three draws, times 2^32).
  for (const [seed, draws] of [
    [1, [2693262067, 11749833, 2265367787]],
    [42, [2581720956, 1925393290, 3661312704]],
    [0, [1144304738, 1416247, 958946056]],
  ] as const) {
    const r = new Rng(seed);
    assert.equal(
      draws.map(() => r.next() * TWO_32),
      [...draws],
      `seed ${seed}`,
    );
  }
  // Seeds are taken as unsigned 32-bit integers.
  const a = new Rng(-1);
  const b = new Rng(TWO_32 - 1);
  assert.equal([a.next(), a.next()], [b.next(), b.next()]);
});

test('Rng draws stay in range: next in [0, 1), int in [min, max] reaching both ends, chance(0) never, chance(1) always', () => {
  fc.assert(
    fc.property(
      fc.integer(),
      fc.integer({ min: -50, max: 50 }),
      fc.integer({ min: 0, max: 6 }),
      (seed, min, span) => {
        const r = new Rng(seed);
        const max = min + span;
        const seen = new Set<number>();
        for (let i = 0; i < 400; i++) {
          const x = r.next();
          assert.ok(x >= 0 && x < 1, `next() = ${x}`);
          const n = r.int(min, max);
          assert.ok(Number.isInteger(n) && n >= min && n <= max, `int(${min}, ${max}) = ${n}`);
          seen.add(n);
          assert.not.ok(r.chance(0));
          assert.ok(r.chance(1));
        }
        assert.is(seen.size, span + 1, `int(${min}, ${max}) reached ${[...seen].sort()}`);
      },
    ),
    { numRuns: 30 },
  );
});

test('Rng.chance(p) with p <= 0 draws nothing: a zero-rate event leaves the rest of the run as it was', () => {
  const plain = new Rng(11);
  const withZero = new Rng(11);
  assert.not.ok(withZero.chance(0));
  assert.not.ok(withZero.chance(-1));
  assert.is(withZero.next(), plain.next());
});

test('Rng.chance(p) comes true about p of the time', () => {
  const r = new Rng(7);
  for (const p of [0.1, 0.5, 0.9]) {
    let yes = 0;
    for (let i = 0; i < 4000; i++) if (r.chance(p)) yes++;
    assert.ok(Math.abs(yes / 4000 - p) < 0.05, `chance(${p}): ${yes} of 4000`);
  }
});

test('Rng.chance(p) is true exactly when the draw is below p (a draw equal to p is not: P = p)', () => {
  for (const seed of [1, 42, 2026]) {
    const draw = new Rng(seed).next();
    assert.not.ok(new Rng(seed).chance(draw), `seed ${seed}: draw ${draw} is not below itself`);
    // Draws are multiples of 2^-32: the next one up is the smallest p the draw is below.
    assert.ok(new Rng(seed).chance(draw + 2 ** -32), `seed ${seed}: draw ${draw}`);
  }
});

test('EventQueue pops in time order, ties in insertion order, and counts what it holds', () => {
  fc.assert(
    fc.property(
      fc.array(fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constant('pop' as const)), {
        maxLength: 80,
      }),
      (ops) => {
        const q = new EventQueue<number>();
        const model: { t: number; n: number }[] = [];
        let n = 0;
        for (const op of ops) {
          if (op === 'pop') {
            model.sort((x, y) => x.t - y.t || x.n - y.n);
            const want = model.shift();
            const got = q.pop();
            assert.equal(got, want === undefined ? undefined : { t: want.t, e: want.n });
          } else {
            q.push(op, n);
            model.push({ t: op, n: n++ });
          }
          assert.is(q.size, model.length);
        }
        // Draining gives the rest in order.
        model.sort((x, y) => x.t - y.t || x.n - y.n);
        for (const want of model) assert.equal(q.pop(), { t: want.t, e: want.n });
        assert.is(q.pop(), undefined);
        assert.is(q.size, 0);
      },
    ),
    { numRuns: 200 },
  );
});

test('syntheticFleet: hosts dealt round-robin over channels, equal waves (the last may be smaller), the asked policy', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 40 }),
      fc.integer({ min: 1, max: 4 }),
      fc.integer({ min: 1, max: 5 }),
      fc.boolean(),
      (hosts, channels, waves, chain) => {
        const f = syntheticFleet({ hosts, channels, waves, chain });
        const names = Object.keys(f.manifests);
        assert.is(names.length, hosts);
        // Names sort in creation order (zero-padded) and are dealt to ch-(i mod channels).
        const sorted = [...names].sort();
        const width = String(hosts - 1).length;
        for (const h of names) assert.match(h, new RegExp(`^h-\\d{${width}}$`));
        sorted.forEach((h, i) => assert.is(f.manifests[h]!.channel, `ch-${i % channels}`));
        const planNames = Object.keys(f.plans);
        assert.is(planNames.length, channels);
        for (let ci = 0; ci < channels; ci++) {
          const p = f.plans[`ch-${ci}`]!;
          const mine = sorted.filter((_, i) => i % channels === ci);
          assert.equal(
            p.waves.flatMap((w) => w.hosts),
            mine,
          );
          const size = Math.ceil(mine.length / waves);
          p.waves.forEach((w, wi) => {
            assert.ok(w.hosts.length > 0, 'no empty wave');
            if (wi < p.waves.length - 1) assert.is(w.hosts.length, size);
            else assert.ok(w.hosts.length <= size);
            assert.is(w.soakSeconds, 600);
            assert.equal(w.failureThreshold, { count: 0 });
          });
          assert.ok(p.waves.length <= waves);
          assert.equal(p.gatedBy, chain && ci > 0 ? [`ch-${ci - 1}`] : []);
          assert.is(p.heartbeatSeconds, 60);
        }
        assert.equal(f.budgets.budgets, []);
      },
    ),
    { numRuns: 60 },
  );
});

test('syntheticFleet: soak, threshold, heartbeat and a fleet-wide budget rounded up to at least one host', () => {
  const f = syntheticFleet({
    hosts: 10,
    channels: 2,
    waves: 2,
    soakSeconds: 120,
    failureThreshold: { percent: 20 },
    heartbeatSeconds: 30,
    budgetPct: 15,
  });
  for (const p of Object.values(f.plans)) {
    assert.is(p.heartbeatSeconds, 30);
    for (const w of p.waves) {
      assert.is(w.soakSeconds, 120);
      assert.equal(w.failureThreshold, { percent: 20 });
    }
  }
  const [b] = f.budgets.budgets;
  assert.is(b!.id, 'fleet');
  assert.equal([...b!.hosts].sort(), Object.keys(f.manifests).sort());
  assert.is(b!.maxInFlight, 2, '15 % of 10 hosts, rounded up');
  assert.is(
    syntheticFleet({ hosts: 10, channels: 1, waves: 1, budgetPct: 1 }).budgets.budgets[0]!
      .maxInFlight,
    1,
    'at least one host',
  );
  // Names are zero-padded to the widest index, so they sort in creation order.
  assert.equal(Object.keys(syntheticFleet({ hosts: 11, channels: 1, waves: 1 }).manifests).sort(), [
    'h-00',
    'h-01',
    'h-02',
    'h-03',
    'h-04',
    'h-05',
    'h-06',
    'h-07',
    'h-08',
    'h-09',
    'h-10',
  ]);
  assert.equal(Object.keys(syntheticFleet({ hosts: 1, channels: 1, waves: 1 }).manifests), ['h-0']);
  assert.equal(
    Object.keys(syntheticFleet({ hosts: 10, channels: 1, waves: 1 }).manifests).sort(),
    Array.from({ length: 10 }, (_, i) => `h-${i}`),
  );
});

test('syntheticFleet refuses a shape that is not positive whole numbers, naming the field', () => {
  for (const [o, field] of [
    [{ hosts: 0, channels: 1, waves: 1 }, 'hosts'],
    [{ hosts: 1.5, channels: 1, waves: 1 }, 'hosts'],
    [{ hosts: 3, channels: 0, waves: 1 }, 'channels'],
    [{ hosts: 3, channels: 2.5, waves: 1 }, 'channels'],
    [{ hosts: 3, channels: 1, waves: 0 }, 'waves'],
    [{ hosts: 3, channels: 1, waves: 0.5 }, 'waves'],
  ] as const) {
    assert.throws(
      () => syntheticFleet(o),
      (e: unknown) =>
        e instanceof RangeError && e.message === `${field} must be a positive integer`,
      JSON.stringify(o),
    );
  }
  // The smallest valid shape is accepted.
  assert.is(Object.keys(syntheticFleet({ hosts: 1, channels: 1, waves: 1 }).plans).length, 1);
});

test('waveLabel counts from one; listWithMore says how much a cut list left out', () => {
  assert.is(waveLabel(0), 'wave 1');
  assert.is(waveLabel(4), 'wave 5');
  assert.is(listWithMore([], 2), '');
  assert.is(listWithMore(['a', 'b'], 2), 'a, b');
  assert.is(listWithMore(['a', 'b', 'c'], 3), 'a, b, c');
  assert.is(listWithMore(['a', 'b', 'c', 'd', 'e'], 2), 'a, b and 3 more');
});

test.run();
