// The operator's levers end to end, in network namespaces through nginx (tests/support/e2e-scenario.ts),
// each asserted from the hosts' signed acks:
//   pause / resume:     `nixfleet control pause|resume` (operator-signed, bound by CI's `refresh`): the
//                       next wave starts nothing while paused, and starts after the resume
//   fleet rollback:     release 2 (two waves, a budget of one) never has two hosts in flight at once;
//                       `nixfleet rollback --to-release 1 --policy all-at-once`: every host switches back
//                       in one round, the waves and budget of release 2 lifted
//   rollback-and-halt:  a wave-0 host fails; its healthy wave-0 peer is rolled back by its own agent,
//                       the next wave never starts
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../support/cli.ts';
import { describeTimeline, maxInFlight } from '../support/e2e-timeline.ts';
import {
  NEW,
  OLD,
  V2,
  requireScenarioTools,
  scenarioFleet,
  simulated,
  startScenario,
  type Scenario,
} from '../support/e2e-scenario.ts';

const WHY = 'e2e operator controls in network namespaces';
/** The simulated switch of the fleet-rollback test (why this long: its budget check). */
const SWITCH_MS = 3000;

/** `nixfleet control <sub> --channel C` as the operator, then CI's refresh binds it, then `cp sync`. */
async function control(s: Scenario, sub: 'pause' | 'resume', channel: string): Promise<number> {
  const lab = s.stack.lab;
  const r = await runCli(
    'control',
    sub,
    '--channel',
    channel,
    '--tree',
    lab.treeDir,
    '--root',
    lab.rootFile,
    '--operator-key',
    join(lab.trustDir, 'operator.key'),
    '--reason',
    `e2e ${sub}`,
    '--json',
  );
  assert.is(r.code, 0, r.err);
  const refresh = await runCli(
    'refresh',
    '--tree',
    lab.treeDir,
    '--release-key',
    join(lab.trustDir, 'release.key'),
  );
  assert.is(refresh.code, 0, refresh.err);
  await s.stack.sync();
  return Date.parse((JSON.parse(r.out) as { controls: { issuedAt: string } }).controls.issuedAt);
}

test('pause / resume (signed controls): nothing new starts while paused, the rollout continues after resume', async () => {
  if (!requireScenarioTools(WHY)) return;
  const s = await startScenario({ hosts: ['a', 'b'] }, (st) =>
    scenarioFleet(st, {
      main: {
        targets: { a: NEW, b: NEW },
        waves: [{ hosts: ['a'], soakSeconds: 1 }, { hosts: ['b'] }],
      },
    }),
  );
  try {
    await s.roundsUntil(['a'], 'a soaked', () => s.timeline().get('a')!.soaked !== null);
    await control(s, 'pause', 'main');
    const paused = await s.round(['a', 'b']);
    await s.rounds(['a', 'b'], 2);
    assert.equal(s.gates(paused['b']!), ['paused'], JSON.stringify(paused['b']!.outcome));
    assert.is(s.acksOf('b', (a) => a.kind === 'started').length, 0, 'b started while paused');
    assert.ok(s.isOn('a', NEW), 'a paused channel keeps what it runs (no rollback)');

    const resumedAt = await control(s, 'resume', 'main');
    await s.roundsUntil(['a', 'b'], 'b on NEW', () => s.isOn('b', NEW));
    const started = s.acksOf('b', (a) => a.kind === 'started');
    assert.is(started.length, 1);
    assert.ok(Date.parse(started[0]!.time) >= resumedAt, 'b started only after the resume');
  } finally {
    await s.close();
  }
});

test('fleet rollback: `nixfleet rollback --to-release 1 --policy all-at-once` switches every host back in one round', async () => {
  if (!requireScenarioTools(WHY)) return;
  const hosts = ['r1', 'r2', 'r3'];
  const staged = (st: Parameters<typeof scenarioFleet>[0], target: string) =>
    scenarioFleet(
      st,
      {
        prod: {
          targets: Object.fromEntries(hosts.map((h) => [h, target])),
          waves: [{ hosts: ['r1'] }, { hosts: ['r2', 'r3'] }],
        },
      },
      { disruptionBudgets: [{ id: 'one', selector: { all: true }, maxInFlight: 1 }] },
    );
  // Release 1: everyone at once (quick); release 2: staged with a budget of one. Every switch takes
  // SWITCH_MS (see the budget check below).
  const s = await startScenario(
    { hosts, activator: () => simulated({ switchDelayMs: SWITCH_MS }) },
    (st) =>
      scenarioFleet(st, {
        prod: { targets: Object.fromEntries(hosts.map((h) => [h, NEW])), waves: [{}] },
      }),
  );
  try {
    await s.roundsUntil(hosts, 'all healthy on NEW', () =>
      hosts.every((h) => s.signed(h, 'healthy', NEW)),
    );
    const v2 = staged(s.stack, V2);
    await s.release(v2);
    const before = s.history.get('r1')!.length;
    await s.roundsUntil(hosts, 'all on V2', () => hosts.every((h) => s.isOn(h, V2)));
    // The budget's promise (docs/architecture.md "Budget bound"): at no instant more than maxInFlight
    // hosts in flight, a host holding its slot from its signed `started` ack until its signed soak proof
    // (soak 0: its ack after its healthy one, a clock second later) or failure. Not "one start per round": a round runs the agents side
    // by side, and one whose run begins late may see a peer that started, switched and signed its soak
    // proof in that same round, and rightly start after it. Checked on the signed record (acks of whole
    // seconds, a start in the very second a proof was signed allowed): every switch takes SWITCH_MS,
    // longer than that second plus the spread of the agents' decisions in one round on a loaded machine
    // (~2 s seen), so two hosts started side by side overlap here.
    const timeline = s.timeline();
    const story = `${describeTimeline(timeline)}\n${s.describeRuns(hosts, before)}`;
    // Each host's span must show at that resolution, or the check below would pass on nothing.
    for (const { host, started, soaked } of hosts.map((h) => timeline.get(h)!))
      assert.ok(
        started !== null && soaked !== null && soaked > started,
        `${host}: no visible in-flight span on V2\n${story}`,
      );
    const flight = maxInFlight(timeline, hosts);
    assert.ok(
      flight.max <= 1,
      `${flight.max} hosts in flight at once (${flight.who.join(', ')}), budget 1\n${story}`,
    );

    const lab = s.stack.lab;
    const fleetFile = join(s.stack.dir, 'fleet.json');
    writeFileSync(fleetFile, JSON.stringify(v2));
    const r = await runCli(
      'rollback',
      '--to-release',
      '1',
      '--policy',
      'all-at-once',
      fleetFile,
      '--tree',
      lab.treeDir,
      '--trust',
      lab.trustDir,
      '--release-key',
      join(lab.trustDir, 'release.key'),
      '--no-cache-check',
      '--json',
    );
    assert.is(r.code, 0, r.err);
    const v3 = (JSON.parse(r.out) as { version: number }).version;
    assert.is(v3, 3);
    await s.stack.sync();
    const round = await s.round(hosts);
    for (const h of hosts) {
      assert.is(round[h]!.outcome?.['decision'], 'activate', `${h}: ${JSON.stringify(round[h])}`);
      const back = s.acksOf(h, (a) => a.releaseVersion === v3 && a.kind === 'healthy');
      assert.is(back.length, 1, `${h} confirmed release 3 in the first round`);
      assert.is(back[0]!.current, NEW, `${h} runs release 1's target again`);
    }
  } finally {
    await s.close();
  }
});

test('rollback-and-halt: a failing wave-0 host halts; its healthy peer is rolled back by its own agent; wave 1 never starts', async () => {
  if (!requireScenarioTools(WHY)) return;
  const s = await startScenario(
    { hosts: ['a', 'f', 'w'], activator: (h) => simulated(h === 'f' ? { unhealthy: [NEW] } : {}) },
    (st) =>
      scenarioFleet(st, {
        main: {
          targets: { a: NEW, f: NEW, w: NEW },
          waves: [{ hosts: ['a', 'f'], soakSeconds: 30 }, { hosts: ['w'] }],
          policy: { onFailure: 'rollback-and-halt' },
          channel: { confirmDeadlineSeconds: 4 },
        },
      }),
  );
  try {
    await s.roundsUntil(['a'], 'a healthy on NEW', () => s.signed('a', 'healthy', NEW));
    await s.roundsUntil(
      ['a', 'f', 'w'],
      'f rolled back and a back on OLD',
      () => s.signed('f', 'rolled-back', NEW) && s.isOn('a', OLD),
    );
    await s.rounds(['a', 'f', 'w'], 2);
    const fFail = s.acksOf('f', (a) => a.kind === 'rolled-back')[0]!;
    assert.is(fFail.current, OLD);
    // a was healthy on NEW, then its own agent took it back to OLD because its wave failed.
    const aBack = s.acksOf('a', (a) => a.current === OLD && a.kind !== 'started').at(-1)!;
    assert.ok(Date.parse(aBack.time) >= Date.parse(fFail.time), 'a went back after f failed');
    assert.ok(s.isOn('a', OLD) && s.isOn('f', OLD), 'wave 0 rolled back');
    assert.is(s.acksOf('w', (a) => a.kind === 'started').length, 0, 'wave 1 started past a halt');
    assert.ok(s.gatesSeen('w').has('halted'), [...s.gatesSeen('w')].join(', '));
    assert.ok(s.gatesSeen('a').has('halted'), 'a rolled back at the halted gate');
  } finally {
    await s.close();
  }
});

test.run();
