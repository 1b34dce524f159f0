// trace() replays acks in time order, equal times in history order (reconciler/trace.ts timeOrder:
// whole-second times packed with their positions and sorted natively). Property: it is exactly the
// stable comparator sort it replaces, for whole-second times with many ties, and for times it cannot
// pack (fractions of a second, a span too long to pack exactly), which it sorts by that comparator.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { timeOrder } from '../../reconciler/trace.ts';

const stableSort = (timeOf: Float64Array) =>
  Array.from(timeOf, (_, i) => i).sort((x, y) => timeOf[x]! - timeOf[y]!);

const T0 = Date.parse('2030-01-01T00:00:00Z');

test('whole-second times: the stable sort by time, ties in history order', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: -5, max: 40 }), { maxLength: 300 }), (seconds) => {
      const timeOf = Float64Array.from(seconds, (s) => T0 + s * 1000);
      assert.equal(timeOrder(timeOf), stableSort(timeOf));
    }),
    { numRuns: 300 },
  );
  const ties = Float64Array.from([3, 1, 3, 1, 2, 3], (s) => T0 + s * 1000);
  assert.equal(timeOrder(ties), [1, 3, 4, 0, 2, 5]);
  assert.equal(timeOrder(new Float64Array(0)), []);
});

test('times it cannot pack exactly are sorted by the comparator', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 90_000 }), { maxLength: 200 }), (ms) => {
      const timeOf = Float64Array.from(ms, (m) => T0 + m);
      assert.equal(timeOrder(timeOf), stableSort(timeOf));
    }),
    { numRuns: 200 },
  );
  // Whole seconds over a span too long to pack (span * n beyond 2^53), with ties: still in order.
  const far = Float64Array.from({ length: 200 }, (_, i) =>
    i % 3 === 0 ? 0 : (7e13 - (i % 2)) * 1000,
  );
  assert.equal(timeOrder(far), stableSort(far));
});

test.run();
