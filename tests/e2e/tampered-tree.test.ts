// A compromised control plane serves a tampered tree, then replays an old one: the agents refuse,
// keep their current generation and say why (embedded control plane; through nginx: nginx-tampered-tree.test.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runAgentOnce } from '../../agent/agent.ts';
import { memoryLogger } from '../../agent/log.ts';
import { StateDir } from '../../agent/state-dir.ts';
import { createActivator } from '../../agent/activators/index.ts';
import { writeFileAtomic } from '../../protocol/atomic-write.ts';
import { hostManifestPath, TIMESTAMP_PATH } from '../../protocol/layout.ts';
import { requireTool } from '../support/skip.ts';
import { makeLab, labFleet, OLD, NEW, BAD } from '../agent/lab-fleet.ts';

test('tampered manifest -> BadSignature refusal; replayed old timestamp -> RollbackAttempt; generation kept', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const lab = makeLab(['t1']);
  try {
    const cfg = () => lab.agentConfig('t1');
    const gen = async () =>
      (await createActivator(cfg().activator, new StateDir(cfg().stateDir)).currentGeneration())
        .path;
    lab.publish(labFleet(lab, { prod: { hosts: { t1: OLD }, waves: [{ soakSeconds: 0 }] } }));
    await lab.startControlPlane();
    const oldTimestamp = readFileSync(join(lab.treeDir, TIMESTAMP_PATH));
    assert.is((await runAgentOnce(cfg(), { log: memoryLogger('t1') })).kind, 'decided');

    // Release 2 asks for NEW, but the control plane rewrites the manifest to point at BAD.
    await new Promise((r) => setTimeout(r, 1100)); // a new issuedAt second for the new timestamp
    const v2 = lab.publish(
      labFleet(lab, { prod: { hosts: { t1: NEW }, waves: [{ soakSeconds: 0 }] } }),
    );
    const manifest = join(lab.treeDir, hostManifestPath(v2.version, 't1'));
    writeFileAtomic(manifest, readFileSync(manifest, 'utf8').replace(NEW, BAD), {
      advanceMtime: true,
    });
    const log = memoryLogger('t1');
    const o = await runAgentOnce(cfg(), { log });
    assert.ok(
      o.kind === 'refused' &&
        o.code === 'BadSignature' &&
        o.file === hostManifestPath(v2.version, 't1'),
      JSON.stringify(o),
    );
    assert.is(await gen(), OLD);
    const refusal = log.records.find(
      (r) => r['event'] === 'decision' && r['decision'] === 'refuse',
    );
    assert.match(String(refusal?.['reason']), /keeping generation 1/);

    // Replay: the control plane serves release 1's timestamp again after the agent has seen release 2.
    writeFileAtomic(join(lab.treeDir, TIMESTAMP_PATH), oldTimestamp, { advanceMtime: true });
    const o2 = await runAgentOnce(cfg(), { log });
    assert.ok(o2.kind === 'refused' && o2.code === 'RollbackAttempt', JSON.stringify(o2));
    assert.is(await gen(), OLD);
  } finally {
    await lab.close();
  }
});

test.run();
