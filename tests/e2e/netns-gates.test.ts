// The reconciler's gates end to end, in network namespaces through nginx (tests/support/e2e-scenario.ts):
// each host's agent (`--once` rounds) runs in its own namespace and reaches the control plane over a veth
// pair; every outcome is read from the ack endpoint's signed log.
//   host edge:           b (after a, same wave) starts only once a's signed acks prove its soak
//   maintenance window:  closed -> nothing starts; a release opening it (same rollout) -> the host starts
//   offline excuse:      a partitioned wave-0 host blocks wave 1 with offlineExcuseLimit 0, is excused with 1
//   deferral:            a switch inhibitor under `reboot: never` -> `deferred`, the next wave holds;
//                        `reboot: allowed` (same rollout) -> it reboots into the target, soaks, wave 1 goes
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

const WHY = 'e2e gates in network namespaces';

test('host edge: the after-host starts only after the before-host is proven soaked', async () => {
  if (!requireScenarioTools(WHY)) return;
  const fleet = (st: Parameters<typeof scenarioFleet>[0]) =>
    scenarioFleet(
      st,
      { main: { targets: { a: NEW, b: NEW }, waves: [{ soakSeconds: 2 }] } },
      { hostEdges: [{ before: 'a', after: 'b' }] },
    );
  const s = await startScenario({ hosts: ['a', 'b'] }, fleet);
  try {
    await s
      .roundsUntil(['b', 'a'], 'b on NEW', () => s.isOn('b', NEW), 30)
      .catch((e) => {
        throw s.stack.explain(e);
      });
    const t = s.timeline();
    const a = t.get('a')!;
    const b = t.get('b')!;
    assert.ok(a.soaked !== null && b.started !== null, 'both went through the rollout');
    assert.ok(
      b.started! >= a.soaked!,
      `b started at ${b.started} before a's soak was proven at ${a.soaked}`,
    );
    // b was really held by the edge (not just slower): its own runs said so while a soaked.
    const gates = s.gatesSeen('b');
    assert.ok(gates.has('host-edge'), `b's gates: ${[...gates].join(', ')}`);
  } finally {
    await s.close();
  }
});

test('maintenance window: closed -> no host starts; a release that opens it continues the same rollout', async () => {
  if (!requireScenarioTools(WHY)) return;
  const fleet = (st: Parameters<typeof scenarioFleet>[0], cron: string) =>
    scenarioFleet(st, {
      main: {
        targets: { m1: NEW, m2: NEW },
        waves: [{}],
        // '0 0 1 1 *' opens for one minute a year; '* * * * *' every minute for five.
        channel: { maintenanceWindows: [{ cron, durationMinutes: cron === '* * * * *' ? 5 : 1 }] },
      },
    });
  const s = await startScenario({ hosts: ['m1', 'm2'] }, (st) => fleet(st, '0 0 1 1 *'));
  try {
    const hosts = ['m1', 'm2'];
    const r = await s.round(hosts);
    await s.rounds(hosts, 2);
    for (const h of hosts) {
      assert.equal(
        s.gates(r[h]!),
        ['maintenance-window'],
        `${h}: ${JSON.stringify(r[h]!.outcome)}`,
      );
      assert.is(
        s.acksOf(h, (a) => a.kind === 'started').length,
        0,
        `${h} started outside its window`,
      );
    }
    const rollout1 = s.acksOf('m1').at(-1)?.rolloutId;
    const v2 = await s.release(fleet(s.stack, '* * * * *'));
    await s.roundsUntil(hosts, 'both hosts on NEW', () => hosts.every((h) => s.isOn(h, NEW)));
    for (const h of hosts) {
      const started = s.acksOf(h, (a) => a.kind === 'started');
      assert.is(started.length, 1);
      assert.is(
        started[0]!.releaseVersion,
        v2,
        'started only under the release that opened the window',
      );
      // Windows decide when a host may act, not what the rollout is: the same rollout continued.
      assert.is(started[0]!.rolloutId, rollout1 ?? started[0]!.rolloutId);
    }
  } finally {
    await s.close();
  }
});

test('offline excuse: a partitioned wave-0 host blocks wave 1 at limit 0 and is excused at limit 1', async () => {
  if (!requireScenarioTools(WHY)) return;
  const fleet = (st: Parameters<typeof scenarioFleet>[0], limit: number) =>
    scenarioFleet(st, {
      main: {
        targets: { a: NEW, o: NEW, w: NEW },
        waves: [{ hosts: ['a', 'o'], soakSeconds: 1, offlineExcuseLimit: limit }, { hosts: ['w'] }],
      },
    });
  const s = await startScenario({ hosts: ['a', 'o', 'w'] }, (st) => fleet(st, 0));
  try {
    // o's packets to the control plane vanish: its agent cannot fetch anything and signs nothing.
    s.stack.net!.partition('o');
    s.hostRuns.set('o', { requestTimeoutMs: 500, retries: 0 });
    const cut = await s.stack.runAgentOnce('o', { requestTimeoutMs: 500, retries: 0 });
    assert.is(cut.code, 2, `o is unreachable: ${JSON.stringify(cut.outcome)}`);

    await s.roundsUntil(['a', 'w'], 'a soaked', () => s.timeline().get('a')!.soaked !== null);
    const held = await s.round(['a', 'w']);
    await s.rounds(['a', 'w'], 2);
    assert.equal(s.gates(held['w']!), ['earlier-waves']);
    assert.match(String(held['w']!.outcome?.['reason']), /o is offline/);
    assert.is(
      s.acksOf('w', (a) => a.kind === 'started').length,
      0,
      'w started past an offline host',
    );

    const v2 = await s.release(fleet(s.stack, 1));
    await s.roundsUntil(['a', 'w'], 'w on NEW', () => s.isOn('w', NEW));
    const started = s.acksOf('w', (a) => a.kind === 'started');
    assert.is(started.length, 1);
    assert.is(started[0]!.releaseVersion, v2);
    assert.is(s.acksOf('o').length, 0, 'o never reached the ack endpoint');
  } finally {
    await s.close();
  }
});

test('deferral: an inhibited host defers under reboot "never" and holds wave 1; "allowed" reboots it into the target', async () => {
  if (!requireScenarioTools(WHY)) return;
  const fleet = (st: Parameters<typeof scenarioFleet>[0], reboot: 'never' | 'allowed') =>
    scenarioFleet(st, {
      main: {
        targets: { d: NEW, w: NEW },
        waves: [{ hosts: ['d'], soakSeconds: 1 }, { hosts: ['w'] }],
        channel: { reboot },
      },
    });
  const s = await startScenario(
    { hosts: ['d', 'w'], activator: (h) => simulated(h === 'd' ? { inhibit: [NEW] } : {}) },
    (st) => fleet(st, 'never'),
  );
  try {
    await s.roundsUntil(['d', 'w'], 'd deferred', () => s.signed('d', 'deferred', NEW));
    const held = await s.round(['d', 'w']);
    await s.round(['d', 'w']);
    assert.ok(s.isOn('d', OLD), 'a deferring host keeps running its generation');
    assert.is(s.acksOf('d', (a) => a.kind === 'started').length, 0, 'nothing staged under "never"');
    assert.is(
      s.acksOf('w', (a) => a.kind === 'started').length,
      0,
      'wave 1 went past a deferred host',
    );
    assert.equal(s.gates(held['w']!), ['earlier-waves']);

    const rollout = s.acksOf('d', (a) => a.kind === 'deferred')[0]!.rolloutId;
    await s.release(fleet(s.stack, 'allowed'));
    await s.roundsUntil(['d', 'w'], 'w on NEW', () => s.isOn('w', NEW));
    const d = s.acksOf('d', (a) => a.rolloutId === rollout);
    const started = d.find((a) => a.kind === 'started');
    assert.ok(started, 'd started its reboot into the target');
    assert.ok(
      d.some((a) => a.kind === 'healthy' && a.current === NEW),
      'd confirmed on the target after its reboot',
    );
    const t = s.timeline();
    assert.ok(t.get('w')!.started! >= t.get('d')!.soaked!, 'wave 1 waited for d to soak');
  } finally {
    await s.close();
  }
});

test.run();
