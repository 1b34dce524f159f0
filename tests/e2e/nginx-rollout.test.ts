// A full rollout through the production serving path: real nginx (rendered config, mTLS) in front of the
// tree installed by `cp sync` and of the ack endpoint process, six agent daemons as separate processes.
// Two channels joined by a channel edge (canary -> main), two waves each, a disruption budget of 2 that
// main's last wave (3 hosts) has to respect. Asserted from the signed ack log and the fleetView:
// waves in order (no host starts before the previous wave was proven soaked), the gated channel only
// after the gating channel completed, never more than 2 hosts in flight.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { requireTool } from '../support/skip.ts';
import { requireNetns } from '../support/netns.ts';
import { E2eStack, NEW } from '../support/e2e-stack.ts';
import { until } from '../support/e2e-processes.ts';
import {
  currentFleetView,
  describeTimeline,
  installedRelease,
  maxInFlight,
  rolloutTimeline,
  waveSoakedAt,
} from '../support/e2e-timeline.ts';
import { labFleet } from '../agent/lab-fleet.ts';
import { createActivator } from '../../agent/activators/index.ts';
import { StateDir } from '../../agent/state-dir.ts';

const CANARY = ['c1', 'c2'];
const MAIN = ['m1', 'm2', 'm3', 'm4'];
const BUDGET = 2;

test('rollout through nginx converges wave by wave, channel edge and budget respected', async () => {
  if (
    !requireTool('nginx', 'e2e through nginx') ||
    !requireTool('openssl', 'fleet PKI') ||
    !requireTool('curl', 'requests from inside a namespace') ||
    !requireNetns('hosts and control plane in network namespaces')
  )
    return;
  const stack = await E2eStack.create({ hosts: [...CANARY, ...MAIN], netns: true });
  try {
    const released = stack.publish(
      labFleet(
        stack.lab,
        {
          canary: {
            hosts: Object.fromEntries(CANARY.map((h) => [h, NEW])),
            waves: [{ count: 1, soakSeconds: 1 }, { soakSeconds: 1 }],
          },
          main: {
            hosts: Object.fromEntries(MAIN.map((h) => [h, NEW])),
            waves: [{ count: 1, soakSeconds: 1 }, { soakSeconds: 1 }],
          },
        },
        { chain: true, budget: BUDGET },
      ),
    );
    await stack.startControlPlane();
    await stack.waitAckEndpointPrimed('c1');
    const rel = installedRelease(stack.cpDir);
    assert.is(rel.version, released.version);
    assert.equal(rel.plans['main']!.gatedBy, ['canary']);
    assert.is(
      rel.plans['main']!.waves[1]!.hosts.length,
      3,
      'main wave 1 holds more hosts than the budget',
    );

    for (const h of [...CANARY, ...MAIN]) stack.startAgent(h);

    // Sample the operator's view while it runs: the budget's in-flight count as every agent sees it.
    let maxViewInFlight = 0;
    const view = await until(
      'every channel complete',
      60_000,
      () => {
        const v = currentFleetView(stack.cpDir, stack.publishedAcks());
        for (const b of v.budgets) maxViewInFlight = Math.max(maxViewInFlight, b.inFlight);
        return v.channels.every((c) => c.state === 'complete') ? v : undefined;
      },
      150,
    ).catch((e: Error) => {
      throw new Error(
        `${e.message}\n${describeTimeline(
          rolloutTimeline(
            rel.plans,
            stack.ackLog().map((a) => a.signed),
          ),
        )}`,
      );
    });
    assert.ok(
      view.hosts.every((h) => h.phase === 'soaked' || h.phase === 'converged'),
      JSON.stringify(view.hosts),
    );
    for (const h of [...CANARY, ...MAIN]) {
      const cfg = stack.lab.agentConfig(h);
      assert.is(
        (await createActivator(cfg.activator, new StateDir(cfg.stateDir)).currentGeneration()).path,
        NEW,
        `${h} runs the new closure`,
      );
    }

    const timeline = rolloutTimeline(
      rel.plans,
      stack.ackLog().map((a) => a.signed),
    );
    const story = describeTimeline(timeline);
    if (process.env.E2E_VERBOSE) console.log(story);
    for (const t of timeline.values())
      assert.ok(
        t.started !== null && t.soaked !== null && t.failed === null,
        `${t.host} started, soaked, never failed\n${story}`,
      );

    // Waves in order, within each channel.
    for (const [ch, plan] of Object.entries(rel.plans)) {
      for (let w = 1; w < plan.waves.length; w++) {
        const before = waveSoakedAt(timeline, ch, w - 1)!;
        for (const h of plan.waves[w]!.hosts)
          assert.ok(
            timeline.get(h)!.started! >= before,
            `${ch} wave ${w}: ${h} started before wave ${w - 1} was soaked\n${story}`,
          );
      }
    }
    // The channel edge: main starts only once every canary wave is complete.
    const canaryDone = Math.max(
      ...rel.plans['canary']!.waves.map((_, w) => waveSoakedAt(timeline, 'canary', w)!),
    );
    for (const h of MAIN)
      assert.ok(
        timeline.get(h)!.started! >= canaryDone,
        `${h} started before the canary channel completed\n${story}`,
      );
    // The budget, from the signed timeline and from every sampled fleetView.
    const flight = maxInFlight(timeline, [...CANARY, ...MAIN]);
    assert.ok(
      flight.max <= BUDGET,
      `${flight.max} hosts in flight at once (${flight.who.join(', ')}), budget ${BUDGET}\n${story}`,
    );
    assert.ok(maxViewInFlight <= BUDGET, `fleetView counted ${maxViewInFlight} in flight`);
    // The budget really was the limit somewhere: the third host of main's last wave waited for a slot.
    const budgetWaits = MAIN.filter((h) =>
      stack
        .agentEvents(h)
        .some((e) => e['event'] === 'decision' && e['gate'] === 'disruption-budget'),
    );
    assert.ok(budgetWaits.length >= 1, `no host ever waited on the disruption budget\n${story}`);
    // Nothing was lost, so no agent may claim so (the endpoint's publish delay is not a loss).
    for (const h of [...CANARY, ...MAIN])
      assert.not.ok(
        stack.agentEvents(h).some((e) => e['event'] === 'ack-loss-detected'),
        `${h} reported a false ack loss`,
      );
    // And the waiting hosts said why while they waited (the channel edge for main's first wave).
    const m0 = rel.plans['main']!.waves[0]!.hosts[0]!;
    assert.ok(
      stack.agentEvents(m0).some((e) => e['event'] === 'decision' && e['gate'] === 'channel-edge'),
      `${m0} never reported waiting on the channel edge`,
    );
  } catch (e) {
    throw stack.explain(e);
  } finally {
    await stack.close();
  }
});

test.run();
