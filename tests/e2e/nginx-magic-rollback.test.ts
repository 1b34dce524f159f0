// Control plane unreachable right after the switch (real nginx stopped as soon as the agent daemon logs
// `switched`): the agent cannot get its healthy ack read back, so at the confirm deadline it restores
// the recorded generation by itself, quarantines the closure, and keeps the `rolled-back` ack in its
// journal. Once nginx is back, the ack is delivered exactly once and served to the fleet; the
// quarantined closure is not tried again.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { requireTool } from '../support/skip.ts';
import { requireNetns } from '../support/netns.ts';
import { E2eStack, NEW, OLD } from '../support/e2e-stack.ts';
import { until } from '../support/e2e-processes.ts';
import { labFleet } from '../agent/lab-fleet.ts';
import { createActivator } from '../../agent/activators/index.ts';
import { AckJournal } from '../../agent/ack-journal.ts';
import { Quarantine } from '../../agent/quarantine.ts';
import { StateDir } from '../../agent/state-dir.ts';
import { readPrivateKey } from '../../protocol/keys.ts';
import { readAck } from '../../protocol/acks.ts';

const CONFIRM_SECONDS = 6;

test('nginx down right after the switch -> magic rollback by the deadline, quarantined, rolled-back reported once back', async () => {
  if (
    !requireTool('nginx', 'e2e through nginx') ||
    !requireTool('openssl', 'fleet PKI') ||
    !requireTool('curl', 'requests from inside a namespace') ||
    !requireNetns('hosts and control plane in network namespaces')
  )
    return;
  // Six consecutive passes 400 ms apart: ~2 s between the switch and the healthy ack, time enough
  // for the test to take nginx down in between, even on a loaded machine.
  const stack = await E2eStack.create({
    hosts: ['u1'],
    netns: true,
    agent: { probeIntervalMs: 400 },
  });
  try {
    stack.publish(
      labFleet(stack.lab, {
        prod: {
          hosts: { u1: NEW },
          waves: [{ soakSeconds: 0 }],
          confirmDeadlineSeconds: CONFIRM_SECONDS,
          healthyPassesRequired: 6,
        },
      }),
    );
    await stack.startControlPlane();
    await stack.waitAckEndpointPrimed('u1');
    stack.startAgent('u1');
    const state = new StateDir(stack.lab.host('u1').stateDir);
    const gen = async () =>
      (await createActivator(stack.lab.agentConfig('u1').activator, state).currentGeneration())
        .path;

    const switched = await until(
      'u1 to switch',
      30_000,
      () => stack.agentEvents('u1').find((e) => e['event'] === 'switched'),
      20,
    );
    await stack.stopNginx();
    const downAt = Date.now();
    const switching = stack.agentEvents('u1').find((e) => e['event'] === 'switching')!;
    const deadline = Date.parse(String(switching['deadline']));
    assert.ok(Date.parse(String(switched['time'])) < deadline);

    const rollback = await until(
      'the magic rollback',
      (CONFIRM_SECONDS + 10) * 1000,
      () => stack.agentEvents('u1').find((e) => e['event'] === 'magic-rollback'),
      50,
    );
    // Deadlines have second precision; the agent gives up at the deadline and rolls back right away
    // (the slack is for a loaded machine, not for waiting on the control plane).
    const rolledBackAt = Date.parse(String(rollback['time']));
    assert.ok(
      rolledBackAt <= deadline + 2500,
      `rolled back at ${rollback['time']}, deadline ${switching['deadline']}`,
    );
    assert.match(
      String(rollback['reason']),
      /could not be confirmed through the control plane before the deadline/,
    );
    assert.is(stack.nginx, null, 'nginx stayed down throughout');
    assert.ok(
      !stack.acksOf('u1').some((a) => a.kind === 'healthy'),
      'the healthy ack must not have reached the control plane (nginx was stopped too late: test race)',
    );

    // Offline, on its own: old generation back, closure quarantined, rolled-back ack kept for later.
    await until(
      'the rollback to finish',
      5000,
      () => stack.agentEvents('u1').some((e) => e['event'] === 'rolled-back'),
      50,
    );
    assert.is(await gen(), OLD);
    assert.equal(
      new Quarantine(state).active(Date.now()).map((q) => q.target),
      [NEW],
    );
    const journal = new AckJournal(
      state,
      'e2e',
      'u1',
      readPrivateKey(stack.lab.host('u1').keyFile),
    );
    assert.is(journal.last()?.signed.kind, 'rolled-back');
    assert.ok(
      !stack.acksOf('u1').some((a) => a.kind === 'rolled-back'),
      'not delivered while the control plane is down',
    );
    // Its next cycles say why nothing more happens.
    const unreachable = await until('a cycle to report the control plane unreachable', 10_000, () =>
      stack
        .agentEvents('u1')
        .find(
          (e) =>
            e['event'] === 'control-plane-unreachable' && Date.parse(String(e['time'])) >= downAt,
        ),
    );
    assert.match(String(unreachable['reason']), /ECONNREFUSED|unreachable/);

    // The control plane comes back: the rolled-back ack is delivered and served, once.
    await stack.startNginx();
    const delivered = await until('the rolled-back ack to be acknowledged', 20_000, () =>
      stack.acksOf('u1').find((a) => a.kind === 'rolled-back'),
    );
    assert.is(delivered.target, NEW);
    assert.is(delivered.current, OLD);
    const served = await until('the rolled-back ack to be served', 10_000, async () => {
      const r = await stack.request('u1', 'acks/hosts/u1.json');
      return r.status === 200 && readAck(r.body).signed.kind === 'rolled-back'
        ? readAck(r.body).signed
        : undefined;
    });
    assert.is(served.seq, delivered.seq);
    // A few more cycles: still quarantined, no second attempt, no second report.
    const back = Date.now();
    await until(
      'three more cycles',
      15_000,
      () =>
        stack
          .agentEvents('u1')
          .filter((e) => e['event'] === 'cycle-done' && Date.parse(String(e['time'])) > back)
          .length >= 3,
    );
    const acks = stack.acksOf('u1');
    assert.is(acks.filter((a) => a.kind === 'rolled-back').length, 1);
    assert.is(acks.filter((a) => a.kind === 'started').length, 1);
    assert.is(await gen(), OLD);
    assert.ok(
      stack
        .agentEvents('u1')
        .some(
          (e) =>
            e['event'] === 'decision' &&
            e['gate'] === 'quarantined' &&
            Date.parse(String(e['time'])) > back,
        ),
    );
  } catch (e) {
    throw stack.explain(e);
  } finally {
    await stack.close();
  }
});

test.run();
