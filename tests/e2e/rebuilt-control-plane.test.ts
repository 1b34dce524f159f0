// The control plane is wiped (ack log and published acks gone) and rebuilt from the CI tree: the agents
// notice their acks are missing (at their next loss check) and re-post their whole journals, so the
// rollout's view is restored.
// And the ack log alone is lost (published acks/ kept): the endpoint takes the published heads back in,
// asks for the rest (missingBelow) and the agents back-fill it. Either way the log ends up holding every
// ack every host signed.
import { until } from '../support/e2e-processes.ts';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { runAgentOnce } from '../../agent/agent.ts';
import { memoryLogger } from '../../agent/log.ts';
import { AckJournal } from '../../agent/ack-journal.ts';
import { LOSS_CHECK_INTERVAL_MS, PUBLISH_GRACE_MS } from '../../agent/ack-sync.ts';
import { StateDir } from '../../agent/state-dir.ts';
import { readPrivateKey } from '../../protocol/keys.ts';
import { ackDigest, readAck } from '../../protocol/acks.ts';
import { parseAckLog } from '../../protocol/ack-log.ts';
import { ackLogPath } from '../../protocol/control-plane-dir.ts';
import type { Lab } from '../support/lab.ts';
import { requireTool } from '../support/skip.ts';
import { makeLab, labFleet, NEW } from '../agent/lab-fleet.ts';

/** Journal acks (host#seq) the control plane's log does not hold: none once the history is complete. */
function missingFromLog(lab: Lab, hosts: string[]): string[] {
  const file = ackLogPath(lab.treeDir);
  const logged = new Set(
    existsSync(file) ? parseAckLog(readFileSync(file), file).records.map((r) => r.digest) : [],
  );
  return hosts.flatMap((h) => {
    const host = lab.host(h);
    const journal = new AckJournal(
      new StateDir(host.stateDir),
      'lab',
      h,
      readPrivateKey(host.keyFile),
    ).all();
    return journal.filter((a) => !logged.has(ackDigest(a))).map((a) => `${h}#${a.signed.seq}`);
  });
}

test('wiped ack state: agents re-post their journals; published heads match the journals again', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const hosts = ['r1', 'r2'];
  const lab = makeLab(hosts);
  try {
    lab.publish(
      labFleet(lab, { prod: { hosts: { r1: NEW, r2: NEW }, waves: [{ soakSeconds: 0 }] } }),
    );
    await lab.startControlPlane();
    await until('converged', 30_000, async () => {
      const outs = await Promise.all(
        hosts.map((h) => runAgentOnce(lab.agentConfig(h), { log: memoryLogger(h) })),
      );
      return outs.every((o) => o.kind === 'decided' && o.decision === 'converged');
    });
    await lab.stopControlPlane();
    rmSync(join(lab.treeDir, '.ack-log'), { recursive: true, force: true });
    rmSync(join(lab.treeDir, 'acks'), { recursive: true, force: true });
    await lab.startControlPlane();
    // A head lagging an ack signed moments ago is the endpoint's normal publish delay, not a loss.
    await new Promise((r) => setTimeout(r, PUBLISH_GRACE_MS));
    // A converged host under `halt` reads no bundles; it looks for a loss at least every
    // LOSS_CHECK_INTERVAL_MS (agent/cycle.ts): these runs are the first at that bound.
    const atBound = () => Date.now() + LOSS_CHECK_INTERVAL_MS;
    const logs = hosts.map((h) => memoryLogger(h));
    await Promise.all(
      hosts.map((h, i) => runAgentOnce(lab.agentConfig(h), { log: logs[i]!, now: atBound })),
    );
    for (const [i, h] of hosts.entries()) {
      assert.ok(
        logs[i]!.records.some((r) => r['event'] === 'ack-loss-detected'),
        `${h} noticed the loss`,
      );
      const reposted = logs[i]!.records.find((r) => r['event'] === 'acks-reposted');
      assert.ok(reposted && (reposted['count'] as number) >= 2, `${h} re-posted its history`);
    }
    for (const h of hosts) {
      const host = lab.host(h);
      const last = new AckJournal(
        new StateDir(host.stateDir),
        'lab',
        h,
        readPrivateKey(host.keyFile),
      ).last()!;
      await until(`${h} head published`, 5000, () => {
        try {
          const head = readAck(readFileSync(join(lab.treeDir, 'acks', 'hosts', `${h}.json`)));
          return (
            head.signed.seq >= last.signed.seq &&
            (head.signed.seq > last.signed.seq || ackDigest(head) === ackDigest(last))
          );
        } catch {
          return false;
        }
      });
    }
    // The rollout view carries on: both hosts are still converged for everyone reading the acks.
    const again = await Promise.all(
      hosts.map((h) => runAgentOnce(lab.agentConfig(h), { log: memoryLogger(h) })),
    );
    assert.ok(again.every((o) => o.kind === 'decided' && o.decision === 'converged'));
    // And the rebuilt log holds the full history: every ack each host ever signed.
    assert.equal(missingFromLog(lab, hosts), []);
  } finally {
    await lab.close();
  }
});

test('wiped ack state, an agent posts a new ack before it notices: adopted mid-chain, it back-fills the rest', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const hosts = ['r1'];
  const lab = makeLab(hosts);
  try {
    lab.publish(labFleet(lab, { prod: { hosts: { r1: NEW }, waves: [{ soakSeconds: 0 }] } }));
    await lab.startControlPlane();
    await until(
      'converged',
      30_000,
      async () =>
        (await runAgentOnce(lab.agentConfig('r1'), { log: memoryLogger('r1') })).kind === 'decided',
    );
    await lab.stopControlPlane();
    rmSync(join(lab.treeDir, '.ack-log'), { recursive: true, force: true });
    rmSync(join(lab.treeDir, 'acks'), { recursive: true, force: true });
    await lab.startControlPlane();
    // Right away (within the publish grace, so no loss is noticed yet): the agent's next ack is the first
    // the empty endpoint sees from it, and it adopts the chain there.
    const log = memoryLogger('r1');
    await until('the log to hold every ack r1 signed', 30_000, async () => {
      await runAgentOnce(lab.agentConfig('r1'), { log });
      return missingFromLog(lab, hosts).length === 0;
    }).catch((e) => {
      throw new Error(`${(e as Error).message}: missing ${missingFromLog(lab, hosts).join(', ')}`);
    });
  } finally {
    await lab.close();
  }
});

test('ack log lost, published acks kept: the endpoint takes the published heads back in and the agents back-fill the rest', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const hosts = ['r1', 'r2'];
  const lab = makeLab(hosts);
  try {
    lab.publish(
      labFleet(lab, { prod: { hosts: { r1: NEW, r2: NEW }, waves: [{ soakSeconds: 0 }] } }),
    );
    await lab.startControlPlane();
    await until('converged', 30_000, async () => {
      const outs = await Promise.all(
        hosts.map((h) => runAgentOnce(lab.agentConfig(h), { log: memoryLogger(h) })),
      );
      return outs.every((o) => o.kind === 'decided' && o.decision === 'converged');
    });
    await lab.stopControlPlane();
    rmSync(join(lab.treeDir, '.ack-log'), { recursive: true, force: true });
    await lab.startControlPlane();
    // The published heads are back in the log before any agent posts.
    const restored = () =>
      parseAckLog(readFileSync(ackLogPath(lab.treeDir)))
        .records.map((r) => JSON.parse(r.canonical).signed.host as string)
        .sort();
    await until(
      'the published heads in the log',
      5000,
      () => JSON.stringify(restored()) === JSON.stringify(hosts),
    );
    // The agents see their latest ack still published (no loss for them to notice); the endpoint's answer
    // to their next ack asks for the older ones.
    const logs = hosts.map((h) => memoryLogger(h));
    await until('the log to hold every ack every host signed', 30_000, async () => {
      await Promise.all(hosts.map((h, i) => runAgentOnce(lab.agentConfig(h), { log: logs[i]! })));
      return missingFromLog(lab, hosts).length === 0;
    }).catch((e) => {
      throw new Error(`${(e as Error).message}: missing ${missingFromLog(lab, hosts).join(', ')}`);
    });
    for (const [i, h] of hosts.entries()) {
      assert.ok(
        logs[i]!.records.some((r) => r['event'] === 'acks-backfilled'),
        `${h} back-filled`,
      );
      assert.not.ok(
        logs[i]!.records.some(
          (r) => r['event'] === 'ack-backfill-refused' || r['event'] === 'ack-chain-conflict',
        ),
        `${h} had no conflict`,
      );
    }
  } finally {
    await lab.close();
  }
});

test.run();
