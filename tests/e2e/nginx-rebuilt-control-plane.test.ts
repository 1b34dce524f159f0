// The control plane host is lost mid-rollout (nginx and the ack endpoint gone, its whole tree dir
// deleted: installed versions, ack log, published acks) and rebuilt from nothing but the CI tree
// (`cp sync`) and what the agents re-post from their own journals. The agent daemons keep running
// throughout; the rollout continues in wave order, and the rebuilt ack log holds every host's complete
// chain again, from seq 1 (re-posted or back-filled).
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
  rolloutTimeline,
  waveSoakedAt,
} from '../support/e2e-timeline.ts';
import { labFleet } from '../agent/lab-fleet.ts';
import { AckJournal } from '../../agent/ack-journal.ts';
import { StateDir } from '../../agent/state-dir.ts';
import { ackDigest } from '../../protocol/acks.ts';
import { readPrivateKey } from '../../protocol/keys.ts';

const HOSTS = ['w1', 'w2', 'w3'];

test('control plane wiped mid-rollout and rebuilt from the CI tree + re-posted acks: the rollout continues', async () => {
  if (
    !requireTool('nginx', 'e2e through nginx') ||
    !requireTool('openssl', 'fleet PKI') ||
    !requireTool('curl', 'requests from inside a namespace') ||
    !requireNetns('hosts and control plane in network namespaces')
  )
    return;
  const stack = await E2eStack.create({ hosts: HOSTS, netns: true });
  try {
    stack.publish(
      labFleet(stack.lab, {
        prod: {
          hosts: Object.fromEntries(HOSTS.map((h) => [h, NEW])),
          waves: [{ count: 1, soakSeconds: 2 }, { soakSeconds: 1 }],
          confirmDeadlineSeconds: 20,
        },
      }),
    );
    await stack.startControlPlane();
    await stack.waitAckEndpointPrimed('w1');
    const plan = installedRelease(stack.cpDir).plans['prod']!;
    const first = plan.waves[0]!.hosts[0]!;
    for (const h of HOSTS) stack.startAgent(h);

    // Lose the control plane once the first wave's host is healthy, before the rollout is over.
    await until(`${first} to be healthy`, 30_000, () =>
      stack.acksOf(first).some((a) => a.kind === 'healthy'),
    );
    await stack.wipeControlPlane();
    await new Promise((r) => setTimeout(r, 1000)); // a few agent cycles against nothing
    await stack.startControlPlane();

    const view = await until(
      'the rollout to complete on the rebuilt control plane',
      45_000,
      () => {
        const v = currentFleetView(stack.cpDir, stack.publishedAcks());
        return v.channels.every((c) => c.state === 'complete') ? v : undefined;
      },
      200,
    );
    assert.ok(
      view.hosts.every((h) => h.phase === 'soaked'),
      JSON.stringify(view.hosts),
    );

    // The first host confirmed (depending on timing, just before the wipe or against the rebuilt endpoint)
    // and never rolled back.
    assert.ok(
      stack.agentEvents(first).some((e) => e['event'] === 'confirmed'),
      `${first} confirmed`,
    );
    // The rebuilt endpoint adopts each host's chain at the first ack it receives from it (the agent's
    // loss detection re-posts the whole journal when it notices the loss first; a host that posts a new
    // ack before noticing is adopted from that ack and then asked, in the endpoint's answers, for the acks
    // below: it back-fills them). So the rebuilt log ends up with the full history: every ack every host
    // signed (polled: a daemon may have signed a heartbeat a moment ago, and back-fill goes a batch per
    // agent cycle).
    const missing = () => {
      const logged = new Set(stack.ackLog().map((a) => ackDigest(a)));
      return HOSTS.flatMap((h) => {
        const host = stack.lab.host(h);
        const journal = new AckJournal(
          new StateDir(host.stateDir),
          'e2e',
          h,
          readPrivateKey(host.keyFile),
        ).all();
        return journal.filter((a) => !logged.has(ackDigest(a))).map((a) => `${h}#${a.signed.seq}`);
      });
    };
    await until(
      'every journal ack in the rebuilt log (full history)',
      30_000,
      () => missing().length === 0,
      200,
    ).catch(() => {
      throw new Error(`journal acks missing from the rebuilt log: ${missing().join(', ')}`);
    });
    // And the rebuilt record still proves the wave order.
    const timeline = rolloutTimeline(
      { prod: plan },
      stack.ackLog().map((a) => a.signed),
    );
    const soaked0 = waveSoakedAt(timeline, 'prod', 0)!;
    for (const h of plan.waves[1]!.hosts)
      assert.ok(timeline.get(h)!.started! >= soaked0, describeTimeline(timeline));
    assert.ok(
      HOSTS.every((h) => !stack.agentEvents(h).some((e) => e['event'] === 'magic-rollback')),
      'no host rolled back',
    );
  } catch (e) {
    throw stack.explain(e);
  } finally {
    await stack.close();
  }
});

test.run();
