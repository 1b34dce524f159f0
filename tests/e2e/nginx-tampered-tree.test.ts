// A compromised control plane behind the real nginx: `cp sync` itself refuses a replayed older CI tree,
// and when the attacker bypasses it (writing straight into the served tree) the agent, run as
// `nixfleet agent --once --json`, refuses a tampered manifest (BadSignature) and a replayed old timestamp
// (RollbackAttempt): exit 1, the current generation kept, and the log says why.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireTool } from '../support/skip.ts';
import { requireNetns } from '../support/netns.ts';
import { E2eStack, NEW } from '../support/e2e-stack.ts';
import { labFleet } from '../agent/lab-fleet.ts';
import { createActivator } from '../../agent/activators/index.ts';
import { StateDir } from '../../agent/state-dir.ts';
import { syncTree } from '../../control-plane/sync.ts';
import { RollbackAttempt } from '../../protocol/errors.ts';
import { writeFileAtomic } from '../../protocol/atomic-write.ts';
import { hostManifestPath, TIMESTAMP_PATH } from '../../protocol/layout.ts';

const NEWER = '/nix/store/33333333333333333333333333333333-nixos-system-newer';
const BAD = '/nix/store/22222222222222222222222222222222-nixos-system-bad';

test('through nginx: replayed tree refused by cp sync; tampered manifest and replayed timestamp refused by the agent', async () => {
  if (
    !requireTool('nginx', 'e2e through nginx') ||
    !requireTool('openssl', 'fleet PKI') ||
    !requireTool('curl', 'requests from inside a namespace') ||
    !requireNetns('hosts and control plane in network namespaces')
  )
    return;
  const stack = await E2eStack.create({ hosts: ['t1'], netns: true });
  try {
    const gen = async () =>
      (
        await createActivator(
          stack.lab.agentConfig('t1').activator,
          new StateDir(stack.lab.host('t1').stateDir),
        ).currentGeneration()
      ).path;
    stack.publish(
      labFleet(stack.lab, { prod: { hosts: { t1: NEW }, waves: [{ soakSeconds: 0 }] } }),
    );
    const release1 = join(stack.dir, 'ci-release-1');
    cpSync(stack.lab.treeDir, release1, { recursive: true });
    await stack.startControlPlane();
    await stack.waitAckEndpointPrimed('t1');
    const first = await stack.runAgentOnce('t1');
    assert.is(first.code, 0, `${JSON.stringify(first.outcome)}`);
    assert.is(await gen(), NEW);

    await new Promise((r) => setTimeout(r, 1100)); // a new issuedAt second for release 2's timestamp
    const v2 = stack.publish(
      labFleet(stack.lab, { prod: { hosts: { t1: NEWER }, waves: [{ soakSeconds: 0 }] } }),
    );
    assert.ok((await stack.sync()).installed);
    const servedTimestamp = () =>
      JSON.parse(readFileSync(join(stack.cpDir, 'current', TIMESTAMP_PATH), 'utf8')).signed.release
        .version as number;
    assert.is(servedTimestamp(), v2.version);

    // The control plane's own defence: the older CI tree is refused, release 2 keeps serving.
    await syncTree({ from: release1, treeDir: stack.cpDir, pinnedRoot: stack.lab.root }).then(
      () => assert.unreachable('the older tree was installed'),
      (e: unknown) => assert.ok(e instanceof RollbackAttempt, String(e)),
    );
    assert.is(servedTimestamp(), v2.version);

    // The attacker writes into the served tree: release 2's manifest now names another closure.
    const manifest = join(stack.cpDir, 'current', hostManifestPath(v2.version, 't1'));
    writeFileAtomic(manifest, readFileSync(manifest, 'utf8').replace(NEWER, BAD), {
      advanceMtime: true,
    });
    const tampered = await stack.runAgentOnce('t1');
    assert.is(tampered.code, 1, JSON.stringify(tampered.outcome));
    assert.equal(
      [tampered.outcome?.['kind'], tampered.outcome?.['code'], tampered.outcome?.['file']],
      ['refused', 'BadSignature', hostManifestPath(v2.version, 't1')],
    );
    const refusal = tampered.events.find(
      (e) => e['event'] === 'decision' && e['decision'] === 'refuse',
    );
    assert.match(String(refusal?.['reason']), new RegExp(`keeping generation 2 \\(${NEW}\\)`));
    assert.is(await gen(), NEW);

    // Then it replays release 1's (validly signed, older) timestamp.
    writeFileAtomic(
      join(stack.cpDir, 'current', TIMESTAMP_PATH),
      readFileSync(join(release1, TIMESTAMP_PATH)),
      { advanceMtime: true },
    );
    const replayed = await stack.runAgentOnce('t1');
    assert.is(replayed.code, 1, JSON.stringify(replayed.outcome));
    assert.equal(
      [replayed.outcome?.['kind'], replayed.outcome?.['code']],
      ['refused', 'RollbackAttempt'],
    );
    assert.is(await gen(), NEW);
    // No activation was even started: the only started ack is release 1's.
    assert.is(stack.acksOf('t1').filter((a) => a.kind === 'started').length, 1);
  } catch (e) {
    throw stack.explain(e);
  } finally {
    await stack.close();
  }
});

test.run();
