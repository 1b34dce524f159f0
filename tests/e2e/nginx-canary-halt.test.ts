// A failing canary halts the rollout (real nginx, ack endpoint process, four agent daemons). The canary
// host's simulated activator switches fine but its health check fails: the agent rolls it back by itself
// at the confirm deadline, quarantines the closure and reports `rolled-back`. The canary wave's failure
// threshold is 0, so the rollout halts: the rest of the canary channel and the gated main channel never
// start, and each waiting agent says which gate holds it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { requireTool } from '../support/skip.ts';
import { requireNetns } from '../support/netns.ts';
import { E2eStack, NEW, OLD } from '../support/e2e-stack.ts';
import { until } from '../support/e2e-processes.ts';
import { currentFleetView, installedRelease } from '../support/e2e-timeline.ts';
import { labFleet } from '../agent/lab-fleet.ts';
import { createActivator } from '../../agent/activators/index.ts';
import { Quarantine } from '../../agent/quarantine.ts';
import { StateDir } from '../../agent/state-dir.ts';

const CANARY = ['c1', 'c2'];
const MAIN = ['m1', 'm2'];
const ALL = [...CANARY, ...MAIN];

test('failing canary: rolled back + quarantined, rollout halted, nothing downstream starts', async () => {
  if (
    !requireTool('nginx', 'e2e through nginx') ||
    !requireTool('openssl', 'fleet PKI') ||
    !requireTool('curl', 'requests from inside a namespace') ||
    !requireNetns('hosts and control plane in network namespaces')
  )
    return;
  const stack = await E2eStack.create({ hosts: ALL, netns: true });
  try {
    stack.publish(
      labFleet(
        stack.lab,
        {
          canary: {
            hosts: { c1: NEW, c2: NEW },
            waves: [{ count: 1, soakSeconds: 1 }, { soakSeconds: 0 }],
            confirmDeadlineSeconds: 3,
          },
          main: { hosts: { m1: NEW, m2: NEW }, waves: [{ soakSeconds: 0 }] },
        },
        { chain: true },
      ),
    );
    await stack.startControlPlane();
    await stack.waitAckEndpointPrimed('c1');
    const rel = installedRelease(stack.cpDir);
    const canary = rel.plans['canary']!.waves[0]!.hosts[0]!;
    const others = ALL.filter((h) => h !== canary);
    for (const h of ALL) {
      stack.startAgent(h, {
        activator: {
          kind: 'simulated',
          initialPath: OLD,
          unhealthy: h === canary ? [NEW] : [],
          failSwitch: [],
          inhibit: [],
          switchDelayMs: 0,
        },
      });
    }

    const rolledBack = await until(`${canary}'s rolled-back ack to be acknowledged`, 30_000, () =>
      stack.acksOf(canary).find((a) => a.kind === 'rolled-back'),
    );
    assert.is(rolledBack.target, NEW);
    assert.is(rolledBack.current, OLD);
    assert.match(String(rolledBack.reason), /not healthy before the confirm deadline/);
    // Several poll cycles of every other agent after the failure became visible.
    const failureSeen = Date.now();
    await until('the waiting hosts to poll a few times after the failure', 15_000, () =>
      others.every(
        (h) =>
          stack
            .agentEvents(h)
            .filter(
              (e) =>
                e['event'] === 'cycle-done' && Date.parse(String(e['time'])) > failureSeen + 1000,
            ).length >= 3,
      ),
    );

    // The canary: back on the old generation by itself, the closure quarantined.
    const gen = async (h: string) => {
      const cfg = stack.lab.agentConfig(h);
      return (await createActivator(cfg.activator, new StateDir(cfg.stateDir)).currentGeneration())
        .path;
    };
    assert.is(await gen(canary), OLD);
    const q = new Quarantine(new StateDir(stack.lab.host(canary).stateDir)).active(Date.now());
    assert.equal(
      q.map((e) => e.target),
      [NEW],
    );
    assert.ok(
      stack.agentEvents(canary).some((e) => e['event'] === 'magic-rollback'),
      'the canary agent logged its magic rollback',
    );

    // Nothing downstream started: no started ack from any other host, all still on the old closure.
    for (const h of others) {
      const started = stack.acksOf(h).filter((a) => a.kind === 'started' || a.kind === 'activated');
      assert.is(
        started.length,
        0,
        `${h} started after the canary failed: ${JSON.stringify(started)}`,
      );
      assert.is(await gen(h), OLD, `${h} still runs the old closure`);
    }
    // Each says why it waits: the rest of the canary channel is halted, main is held by the channel edge.
    const gatesOf = (h: string) =>
      new Set(
        stack
          .agentEvents(h)
          .filter((e) => e['event'] === 'decision' && Date.parse(String(e['time'])) > failureSeen)
          .map((e) => e['gate']),
      );
    for (const h of others.filter((x) => CANARY.includes(x)))
      assert.ok(gatesOf(h).has('halted'), `${h}: ${[...gatesOf(h)].join(', ')}`);
    for (const h of MAIN)
      assert.ok(gatesOf(h).has('channel-edge'), `${h}: ${[...gatesOf(h)].join(', ')}`);

    const view = currentFleetView(stack.cpDir, stack.publishedAcks());
    const state = Object.fromEntries(view.channels.map((c) => [c.channel, c.state]));
    assert.equal(state, { canary: 'halted', main: 'gated' });
    assert.is(view.hosts.find((h) => h.host === canary)!.phase, 'failed');
  } catch (e) {
    throw stack.explain(e);
  } finally {
    await stack.close();
  }
});

test.run();
