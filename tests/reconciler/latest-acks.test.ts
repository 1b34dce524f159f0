// latestAcks(): the reconciler's view of "the latest ack per host" must not depend on the order acks
// arrived in (the control plane serves them in any order, agents merge peers' acks as they come).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { latestAcks, type AckRecord } from '../../reconciler/index.ts';
import { ackHistoryByHost } from '../../read-side/acks.ts';
import { canonicalString } from '../../protocol/index.ts';
import { ackFor, buildFleet } from '../../reconciler/simulator/builders.ts';

const HOSTS = ['web-01', 'web-02', 'web-03'];
const fleet = buildFleet({
  channels: [{ name: 'stable', waves: [{ hosts: HOSTS, soakSeconds: 60 }] }],
});
const T0 = Date.UTC(2026, 0, 1, 12);
const KINDS = ['heartbeat', 'started', 'activated', 'healthy', 'failed'] as const;

// Several acks per host with few distinct seqs, so equal seqs (forks the endpoint would refuse) occur.
const ackArb = fc
  .record({
    host: fc.constantFrom(...HOSTS),
    seq: fc.integer({ min: 1, max: 4 }),
    kind: fc.constantFrom(...KINDS),
    minute: fc.integer({ min: 0, max: 30 }),
  })
  .map(({ host, seq, kind, minute }) => ackFor(fleet, host, kind, T0 + minute * 60_000, { seq }));

test('latest ack per host: the highest seq, and the same ack whatever the arrival order (forks included)', () => {
  fc.assert(
    fc.property(fc.array(ackArb, { maxLength: 12 }), fc.nat(), (acks, shift) => {
      const latest = latestAcks(acks);
      assert.equal(Object.keys(latest).sort(), [...new Set(acks.map((a) => a.host))].sort());
      for (const [host, chosen] of Object.entries(latest)) {
        const mine = acks.filter((a) => a.host === host);
        assert.is(chosen.seq, Math.max(...mine.map((a) => a.seq)), host);
        assert.ok(mine.includes(chosen), 'one of the host’s own acks');
        // Among forks (same seq), the canonical-JSON-smallest: a rule every reader applies alike.
        const forks = mine.filter((a) => a.seq === chosen.seq).map((a) => canonicalString(a));
        assert.is(canonicalString(chosen), forks.sort()[0], `${host}: the smallest fork`);
      }
      const reordered: AckRecord[] = [...acks].reverse();
      const rotated = acks.map((_, i) => acks[(i + shift) % acks.length]!);
      assert.equal(latestAcks(reordered), latest);
      assert.equal(latestAcks(rotated), latest);
    }),
  );
});

/** The same ack with its keys in reverse order (as a reader that builds objects differently would hold it). */
function keysReversed<T extends object>(a: T): T {
  return Object.fromEntries(Object.entries(a).reverse()) as T;
}

test('a fork resolves the same whatever key order the reader built the acks in (canonical JSON, not JSON.stringify)', () => {
  // Two forks whose insertion-order JSON compares differently with the key order: x's `time` is
  // earlier, y's `current` (the previous system) sorts first, so whichever key comes first decides.
  const x = ackFor(fleet, 'web-01', 'healthy', T0, { seq: 3 });
  const y = ackFor(fleet, 'web-01', 'failed', T0 + 60_000, { seq: 3 });
  const expected = canonicalString(x) < canonicalString(y) ? x : y;
  for (const [a, b] of [
    [x, y],
    [keysReversed(x), keysReversed(y)],
    [y, x],
    [keysReversed(y), keysReversed(x)],
  ] as const) {
    assert.equal(latestAcks([a, b])['web-01'], expected);
    assert.equal(ackHistoryByHost([a, b]).get('web-01'), [expected]);
  }
  // The rule is not vacuous here: insertion-order JSON disagrees between the two key orders.
  assert.is.not(
    JSON.stringify(x) < JSON.stringify(y),
    JSON.stringify(keysReversed(x)) < JSON.stringify(keysReversed(y)),
  );
});

test.run();
