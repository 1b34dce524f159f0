// A compromised control plane can delay a rollout, never widen it (issue 9 section 3), end to end in
// network namespaces through nginx (tests/support/e2e-scenario.ts). The control plane holds no key, but
// it chooses which genuine host-signed acks it serves (Scenario.serveForged rewrites the served bundle):
//   stale ack:    a failed wave-0 host's older `started` ack is served instead of its `rolled-back`, with
//                 offlineExcuseLimit 1: the start without an outcome past its confirm deadline counts
//                 as a failure, so the next wave is halted, never started; and once the next wave's
//                 host has seen the `rolled-back`, replaying the `started` or withholding every ack of
//                 the failed host keeps it halted (it is not an excusable offline host)
//   hidden host:  an in-flight host's acks are withheld (budget maxInFlight 1): the other host of the
//                 wave still does not start; the budget is never exceeded
// Outcomes are read from the ack endpoint's own log (everything the hosts signed, whatever was served).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  NEW,
  OLD,
  requireScenarioTools,
  scenarioFleet,
  simulated,
  startScenario,
} from '../support/e2e-scenario.ts';
import { until } from '../support/e2e-processes.ts';

const WHY = 'e2e control-plane withholding in network namespaces';

test('stale ack served: a failed host shown as `started` halts the next wave past its deadline, never lets it start', async () => {
  if (!requireScenarioTools(WHY)) return;
  const s = await startScenario(
    { hosts: ['f', 'w'], activator: (h) => simulated(h === 'f' ? { unhealthy: [NEW] } : {}) },
    (st) =>
      scenarioFleet(st, {
        main: {
          targets: { f: NEW, w: NEW },
          waves: [{ hosts: ['f'], soakSeconds: 1, offlineExcuseLimit: 1 }, { hosts: ['w'] }],
          channel: { confirmDeadlineSeconds: 3 },
        },
      }),
  );
  try {
    await s.roundsUntil(['f'], 'f rolled back', () => s.signed('f', 'rolled-back', NEW));
    assert.ok(s.isOn('f', OLD));
    const started = s
      .logEnvelopes()
      .find((e) => e.signed.host === 'f' && e.signed.kind === 'started')!;
    // w's tolerance for clocks is 1 s, so "past the confirm deadline" comes within this test's rounds.
    s.hostRuns.set('w', { clockSkewSeconds: 1 });
    // Once the genuine `rolled-back` is published, the control plane swaps in the older `started`.
    await until("the endpoint to publish f's rolled-back ack", 20_000, () =>
      s.servedBundle('main', 0).some((a) => a.host === 'f' && a.kind === 'rolled-back'),
    );
    const forge = () => s.serveForged('main', 0, [started.envelope]);
    const presumedAt = Date.parse(started.signed.time) + (3 + 1) * 1000;
    for (let i = 0; i < 25 && !(s.gatesSeen('w').has('halted') && Date.now() > presumedAt); i++) {
      forge();
      await s.round(['w']);
    }
    forge();
    await s.round(['w']);
    assert.is(s.acksOf('w', (a) => a.kind === 'started').length, 0, 'w started past a failed host');
    assert.ok(s.gatesSeen('w').has('halted'), `w's gates: ${[...s.gatesSeen('w')].join(', ')}`);

    // w has now seen the genuine `rolled-back` (its peer memory keeps seq and ack). The control plane
    // then replays the older `started`, or withholds f's acks altogether: what w already saw stands.
    const rolledBack = s
      .logEnvelopes()
      .findLast((e) => e.signed.host === 'f' && e.signed.kind === 'rolled-back')!;
    s.serveForged('main', 0, [rolledBack.envelope]);
    await s.round(['w']);
    for (const served of [[started.envelope], []]) {
      s.serveForged('main', 0, served);
      const r = await s.round(['w']);
      assert.equal(s.gates(r['w']!), ['halted'], JSON.stringify(r['w']!.outcome));
    }
    assert.is(s.acksOf('w', (a) => a.kind === 'started').length, 0, 'w started past a failed host');
  } finally {
    await s.close();
  }
});

test('hidden in-flight host: withholding its acks never lets a second host start past maxInFlight 1', async () => {
  if (!requireScenarioTools(WHY)) return;
  const hosts = ['x', 'y'];
  const s = await startScenario({ hosts }, (st) =>
    scenarioFleet(
      st,
      // One wave with a long soak: the first host to start stays in flight for the whole test.
      { main: { targets: { x: NEW, y: NEW }, waves: [{ soakSeconds: 600 }] } },
      { disruptionBudgets: [{ id: 'one', selector: { all: true }, maxInFlight: 1 }] },
    ),
  );
  try {
    await s.roundsUntil(hosts, 'one host started', () => hosts.some((h) => s.signed(h, 'started')));
    const first = hosts.find((h) => s.signed(h, 'started'))!;
    const second = hosts.find((h) => h !== first)!;
    assert.is(s.acksOf(second, (a) => a.kind === 'started').length, 0, 'both started at once');
    // The bundle lists only the second host's own latest ack: the first one's acks are withheld.
    const hide = () => {
      const own = s.logEnvelopes().filter((e) => e.signed.host === second);
      s.serveForged('main', 0, own.length > 0 ? [own.at(-1)!.envelope] : []);
    };
    for (let i = 0; i < 4; i++) {
      hide();
      await s.round([second]);
    }
    assert.is(
      s.acksOf(second, (a) => a.kind === 'started').length,
      0,
      `${second} started while ${first}'s acks were withheld: 2 in flight, budget 1`,
    );
    assert.ok(s.gatesSeen(second).has('disruption-budget'), [...s.gatesSeen(second)].join(', '));
  } finally {
    await s.close();
  }
});

test.run();
