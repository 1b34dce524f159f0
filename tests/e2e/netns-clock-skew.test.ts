// Hosts whose wall clocks are wrong, end to end in network namespaces through nginx
// (tests/support/e2e-scenario.ts). Each agent process gets its own clock offset
// (tests/support/clock-offset.mjs: Date moves, monotonic timers do not); the agents' tolerance is the
// default clockSkewSeconds (60 s).
//   within the tolerance (the wave-0 host 30 s behind, so the release was signed in its future; the
//     wave-1 host 30 s ahead): the rollout runs as with true clocks; the skewed acks count
//   beyond it (10 min): a host behind sees the release as future-dated and starts nothing; a host ahead
//     activates, but its future-dated acks are not believed by its peers, so the next wave waits
//     (missing evidence only waits)
// Order is read from the ack log's acceptance order, not from the (skewed) signed times.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  NEW,
  requireScenarioTools,
  scenarioFleet,
  startScenario,
} from '../support/e2e-scenario.ts';
import type { E2eStack } from '../support/e2e-stack.ts';

const WHY = 'e2e clock skew in network namespaces';
const SECOND = 1000;

function fleet(st: E2eStack, wave0: string[], wave1: string[]) {
  return scenarioFleet(st, {
    main: {
      targets: Object.fromEntries([...wave0, ...wave1].map((h) => [h, NEW])),
      waves: [{ hosts: wave0, soakSeconds: 1 }, { hosts: wave1 }],
    },
  });
}

test('clock skew within the tolerance (-30 s / +30 s): the rollout completes in wave order', async () => {
  if (!requireScenarioTools(WHY)) return;
  const s = await startScenario({ hosts: ['behind', 'ahead'] }, (st) =>
    fleet(st, ['behind'], ['ahead']),
  );
  try {
    s.hostRuns.set('behind', { clockOffsetMs: -30 * SECOND });
    s.hostRuns.set('ahead', { clockOffsetMs: 30 * SECOND });
    await s.roundsUntil(['behind', 'ahead'], 'ahead on NEW', () => s.isOn('ahead', NEW));
    const log = s.signedLog();
    const soakProof = log.findIndex(
      (a) =>
        a.host === 'behind' &&
        a.current === NEW &&
        a.healthySince !== null &&
        Date.parse(a.time) - Date.parse(a.healthySince) >= 1000,
    );
    const started = log.findIndex((a) => a.host === 'ahead' && a.kind === 'started');
    assert.ok(soakProof >= 0 && started > soakProof, 'wave 1 started after the soak proof');
    // The acks carry each host's own clock.
    const t = Date.parse(log[soakProof]!.time);
    assert.ok(t <= Date.now() - 25 * SECOND, 'the behind host signed with its slow clock');
    assert.ok(
      Date.parse(log[started]!.time) > Date.now(),
      'the ahead host signed with its fast clock',
    );
  } finally {
    await s.close();
  }
});

test('clock skew beyond the tolerance (10 min): behind starts nothing; ahead activates but its acks do not move wave 1', async () => {
  if (!requireScenarioTools(WHY)) return;
  const s = await startScenario({ hosts: ['fast', 'ok', 'slow'] }, (st) =>
    fleet(st, ['fast'], ['ok', 'slow']),
  );
  try {
    s.hostRuns.set('fast', { clockOffsetMs: 600 * SECOND });
    s.hostRuns.set('slow', { clockOffsetMs: -600 * SECOND });
    const hosts = ['fast', 'ok', 'slow'];
    // fast's own clock says its soak is long proven.
    await s.roundsUntil(hosts, 'fast healthy on NEW', () => s.signed('fast', 'healthy', NEW));
    await s.rounds(hosts, 3);
    const fastAcks = s.acksOf('fast');
    assert.ok(
      fastAcks.every((a) => Date.parse(a.time) > Date.now() + 300 * SECOND),
      'fast signed with a clock 10 min ahead',
    );
    for (const h of ['ok', 'slow'])
      assert.is(s.acksOf(h, (a) => a.kind === 'started').length, 0, `${h} started`);
    // ok holds at wave 0: fast's acks are dated beyond the tolerance, so they count for nothing.
    const okLast = s.history.get('ok')!.at(-1)!;
    assert.equal(s.gates(okLast), ['earlier-waves'], JSON.stringify(okLast.outcome));
    assert.match(String(okLast.outcome?.['reason']), /fast/);
    // slow: the release was signed in its future (beyond the tolerance): no new activations.
    const slowLast = s.history.get('slow')!.at(-1)!;
    assert.match(JSON.stringify(slowLast.events), /FutureDated|future/i);
  } finally {
    await s.close();
  }
});

test.run();
