// The ack endpoint's chain rule (control-plane/ack-chain.ts) on its own: every outcome of `decide` with
// the reason a refused host is told, the floor's back-fill walk over held runs, and how a replay sorts a
// host's held acks into the run ending at the head and the runs below gaps or on fork branches. The
// endpoint's tests (ack-endpoint, ack-backfill, ack-snapshot) drive these through HTTP and the log;
// here each rule is pinned where it is decided, reason text included.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  chainRuns,
  decide,
  lowerFloor,
  missingBelow,
  type ChainHead,
  type ChainLink,
} from '../../control-plane/ack-chain.ts';

const test = suite('control-plane ack chain rule');

/** A stand-in digest per seq and branch: the rule compares digests, it never computes them. */
const d = (seq: number, branch = 'a') => `sha256:${branch}${seq}`;

function headAt(seq: number, floor: ChainHead['floor']): ChainHead {
  return { seq, digest: d(seq), canonical: '{}', durable: Promise.resolve(), floor };
}

/** A host whose whole history is held (floor at seq 1). */
const complete = headAt(5, { seq: 1, prev: null });
/** A host adopted mid-chain: seqs 4..5 held, seq 3 (digest d(3)) missing below. */
const adopted = headAt(5, { seq: 4, prev: d(3) });

function conflict(decision: ReturnType<typeof decide>): string {
  if (decision.kind !== 'conflict') throw new Error(`expected a conflict, got ${decision.kind}`);
  return decision.reason;
}

test('a host without a head adopts its first ack at any seq', () => {
  assert.equal(decide(undefined, 1, null, d(1)), { kind: 'append' });
  assert.equal(decide(undefined, 42, d(41), d(42)), { kind: 'append' });
});

test('the next seq chaining to the head appends; the head again is a duplicate', () => {
  assert.equal(decide(complete, 6, d(5), d(6)), { kind: 'append' });
  assert.equal(decide(complete, 5, d(4), d(5)), { kind: 'duplicate', head: complete });
});

test('the same seq with other content is a fork, naming the accepted digest', () => {
  const reason = conflict(decide(complete, 5, d(4), d(5, 'b')));
  assert.is(reason, `fork: a different ack with seq 5 was already accepted (${d(5)})`);
});

test('a next seq whose prev is not the head is a fork', () => {
  const reason = conflict(decide(complete, 6, d(5, 'b'), d(6)));
  assert.is(reason, `fork: prev ${d(5, 'b')} is not the digest of the accepted seq 5 (${d(5)})`);
});

test('a gap above the head names the seq to post first', () => {
  const reason = conflict(decide(complete, 7, d(6), d(7)));
  assert.is(reason, 'gap: seq 7 does not follow the last accepted seq 5; post seq 6 first');
});

test('an older seq of a complete history is a replay, even right below the floor', () => {
  for (const seq of [4, 1, 0]) {
    // seq 0 sits right below the floor (seq 1) whose prev is null: there is nothing to back-fill.
    const reason = conflict(decide(complete, seq, null, d(seq)));
    assert.is(reason, `replay: seq ${seq} is older than the last accepted seq 5`);
  }
});

test('an adopted chain takes back exactly the ack its floor chains to', () => {
  assert.equal(decide(adopted, 3, d(2), d(3)), { kind: 'backfill' });
  const reason = conflict(decide(adopted, 3, d(2), d(3, 'b')));
  assert.is(
    reason,
    `fork: back-filled seq 3 has digest ${d(3, 'b')}, but the held seq 4 chains to ${d(3)}`,
  );
});

test('below the ack to back-fill next: a gap below; inside the held run: a replay', () => {
  assert.is(
    conflict(decide(adopted, 2, d(1), d(2))),
    'gap below: history is held from seq 4; back-fill seq 3 first',
  );
  assert.is(
    conflict(decide(adopted, 4, d(3), d(4))),
    'replay: seq 4 is older than the last accepted seq 5',
  );
});

test('missingBelow: the floor while its prev is known, nothing once the history is complete', () => {
  assert.is(missingBelow(adopted), 4);
  assert.is(missingBelow(complete), undefined);
});

test('lowerFloor follows held runs down to the first floor none continues', () => {
  // The head's run starts at 7 and chains to d(6). Held below it (left by adoptions over gaps): a
  // run 4..6 whose top is d(6), and a run 1..3 whose top is d(3).
  const runs = new Map([
    [d(6), { seq: 4, prev: d(3) }],
    [d(3), { seq: 1, prev: null }],
  ]);
  assert.equal(lowerFloor({ seq: 7, prev: d(6) }, runs), { seq: 1, prev: null });
  assert.equal(lowerFloor({ seq: 7, prev: d(6) }, new Map([[d(6), { seq: 4, prev: d(3) }]])), {
    seq: 4,
    prev: d(3),
  });
  assert.equal(lowerFloor({ seq: 7, prev: d(6) }, undefined), { seq: 7, prev: d(6) });
  // Runs that chain into each other in a loop (only a corrupt store could hold them) end the walk.
  const loop = new Map([
    [d(6), { seq: 4, prev: d(3) }],
    [d(3), { seq: 7, prev: d(6) }],
  ]);
  assert.equal(lowerFloor({ seq: 7, prev: d(6) }, loop), { seq: 4, prev: d(3) });
});

test('chainRuns: the run ending at the head, and each other run by its top digest', () => {
  const link = (seq: number, branch = 'a', prevBranch = branch): ChainLink => ({
    seq,
    digest: d(seq, branch),
    prev: seq === 1 ? null : d(seq - 1, prevBranch),
  });
  // Held: 1..2, then a gap (3 missing), 4..6 up to the head; a fork branch b5 off a4; a duplicate of a6.
  const links = [link(6), link(1), link(2), link(4), link(5), link(6), link(5, 'b', 'a')];
  const { floor, runs } = chainRuns(links, d(6));
  assert.equal(floor, { seq: 4, prev: d(3) });
  assert.equal(
    new Map([...runs].sort(([a], [b]) => a.localeCompare(b))),
    new Map([
      [d(2), { seq: 1, prev: null }],
      [d(5, 'b'), { seq: 4, prev: d(3) }],
    ]),
  );
  // A head no held ack has (a store that lost it): nothing is held below it.
  assert.equal(chainRuns(links, d(9)).floor, { seq: 0, prev: null });
  // A complete history: the floor is seq 1 with no prev, and no other run.
  const whole = chainRuns([link(3), link(2), link(1)], d(3));
  assert.equal(whole, { floor: { seq: 1, prev: null }, runs: new Map() });
});

test.run();
