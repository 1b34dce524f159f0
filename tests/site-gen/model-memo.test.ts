// Watch mode's per-host results (site-gen/model.ts ModelMemo): kept while their inputs are the same
// (the same signed documents, the same ack records, the same verdict), recomputed when any differs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ModelMemo, type HostDerived, type Placement } from '../../site-gen/model.ts';
import { ackHistoryByHost, type VerifiedRelease } from '../../read-side/index.ts';
import type { AckRecord } from '../../reconciler/index.ts';

const release = (indexDigest: string, rootVersion = 1) =>
  ({
    root: { fleet: 'f', version: rootVersion },
    timestamp: {
      release: { version: 1, digest: indexDigest },
      revocations: { version: 1, digest: 'r' },
    },
  }) as unknown as VerifiedRelease;

function counting(): { place: () => Map<string, Placement>; calls: () => number } {
  let n = 0;
  return { place: () => (n++, new Map()), calls: () => n };
}

test('kept for the same signed documents verified again; forgotten for other documents', () => {
  const memo = new ModelMemo();
  const c = counting();
  const r1 = release('a');
  memo.placed(r1, c.place);
  memo.placed(r1, c.place);
  memo.placed(release('a'), c.place);
  assert.is(c.calls(), 1, 'the same documents, verified again: kept');
  memo.placed(release('b'), c.place);
  assert.is(c.calls(), 2, 'another release index: recomputed');
  memo.placed(release('b', 2), c.place);
  assert.is(c.calls(), 3, 'another root: recomputed');
});

test('derived facts kept while the history holds the same ack records; stable facts while the verdict is the same', () => {
  const memo = new ModelMemo();
  const r = release('a');
  const a1 = { seq: 1 } as AckRecord;
  const a2 = { seq: 2 } as AckRecord;
  const derive = (history: readonly AckRecord[]) => () => ({ history }) as unknown as HostDerived;
  const d1 = memo.derived(r, 'h', [a1], derive([a1]));
  assert.is(memo.derived(r, 'h', [a1], derive([a1])), d1);
  const d2 = memo.derived(r, 'h', [a1, a2], derive([a1, a2]));
  assert.is.not(d2, d1);
  // an ack read again is another record: derived again
  assert.is.not(memo.derived(r, 'h', [a1, { ...a2 }], derive([a1, a2])), d2);
  const s1 = memo.stable('h', ['ch', 0, 'pending', null], a2, d2);
  assert.is(memo.stable('h', ['ch', 0, 'pending', null], a2, d2), s1);
  assert.is.not(memo.stable('h', ['ch', 0, 'activating', null], a2, d2), s1);
  const s2 = memo.stable('h', ['ch', 0, 'activating', null], a2, d2);
  assert.is.not(memo.stable('h', ['ch', 0, 'activating', null], a1, d2), s2, 'another latest ack');
  assert.is(s2.verdict, JSON.stringify(['ch', 0, 'activating', null]));
  // a page's inputs: kept while its other inputs and its hosts' entries are the same
  let digests = 0;
  const digest = () => `d${++digests}`;
  assert.is(memo.pageInputs('p', 'x', [s1, s2], digest), 'd1');
  assert.is(memo.pageInputs('p', 'x', [s1, s2], digest), 'd1');
  assert.is(memo.pageInputs('p', 'y', [s1, s2], digest), 'd2');
  assert.is(memo.pageInputs('p', 'y', [s2, s1], digest), 'd3');
  assert.is(memo.pageInputs('p', 'y', [s2], digest), 'd4');
});

test("each host's history as read-side groups it, regrouping only hosts with new acks: any input, any order", () => {
  // Inputs as watch mode's ack feed gives them (the log's records, appended to, then the latest-ack
  // files' few), and some that are not (a log read again: new records; a shorter input).
  let n = 0;
  const ack = (host: string, seq: number, note = '') =>
    ({ host, seq, kind: 'heartbeat', reason: note || null, n: n++ }) as unknown as AckRecord;
  const hosts = ['a', 'b', 'c', 'd', 'e'];
  let log: AckRecord[] = [];
  const seqs = new Map(hosts.map((h) => [h, 0]));
  const next = (h: string) => ack(h, seqs.set(h, seqs.get(h)! + 1).get(h)!);
  for (let i = 0; i < 40; i++) log.push(next(hosts[i % 5]!));
  const memo = new ModelMemo();
  const r = release('a');
  const check = (input: AckRecord[], tag: string) => {
    const got = memo.historiesOf(r, input);
    const want = ackHistoryByHost(input);
    assert.equal([...got.keys()].sort(), [...want.keys()], tag);
    for (const [host, history] of want)
      assert.ok(
        history.length === got.get(host)!.length &&
          history.every((a, i) => a === got.get(host)![i]),
        `${tag}: ${host}`,
      );
  };
  check(log, 'first');
  let files = [log[39]!, log[38]!];
  check([...log, ...files], 'with files');
  for (let step = 0; step < 30; step++) {
    const host = hosts[step % 5]!;
    log = [...log, next(host)];
    // a fork now and then (same seq, other content), a duplicate, a file from an unknown host
    files =
      step % 3 === 0
        ? [ack(host, seqs.get(host)!, 'fork'), log[step]!]
        : step % 3 === 1
          ? [ack('z', 1)]
          : [];
    check([...log, ...files], `step ${step}`);
  }
  check(
    log.map((a) => ({ ...a })),
    'every record read again',
  );
  check(log.slice(0, 10), 'a shorter input');
  check([], 'no acks');
});

test.run();
