// The agent's release-walk memo (state dir `verified-docs`, protocol/memo-file.ts): a warm run
// takes its release documents (index, budgets, plan, own manifest) from the memo instead of verifying
// them again and decides the same; a new release is a miss; an unusable memo file is ignored.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runAgentOnce, VERIFIED_DOCS_FILE } from '../../agent/agent.ts';
import { memoryLogger } from '../../agent/log.ts';
import { requireTool } from '../support/skip.ts';
import { makeLab, labFleet, NEW } from './lab-fleet.ts';

/** Index, budgets, the host's plan and its own manifest (one channel, no gating, no other budget channel). */
const DOCS_OF_A_WALK = 4;

test('a warm run verifies its release documents from the memo and decides the same; misses and unusable memo files', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const lab = makeLab(['m1']);
  try {
    const fleet = () =>
      labFleet(lab, {
        prod: { hosts: { m1: NEW }, waves: [{ soakSeconds: 0 }], heartbeatSeconds: 3600 },
      });
    lab.publish(fleet());
    await lab.startControlPlane();
    const cfg = lab.agentConfig('m1');
    const memoFile = join(cfg.stateDir, VERIFIED_DOCS_FILE);
    const run = async () => {
      const log = memoryLogger('m1');
      const out = await runAgentOnce(cfg, { log });
      const done = log.records.find((r) => r['event'] === 'cycle-done');
      return {
        decision: out.kind === 'decided' ? out.decision : out.kind,
        hits: done?.['verifiedFromMemo'],
      };
    };
    for (let i = 0; i < 20 && (await run()).decision !== 'converged'; i++);
    assert.equal((await run()).decision, 'converged');
    assert.ok(existsSync(memoFile), 'the memo is kept in the state directory');
    assert.is(statSync(memoFile).mode & 0o777, 0o600);

    const warm = await run();
    assert.equal(
      warm,
      { decision: 'converged', hits: DOCS_OF_A_WALK },
      'every document from the memo',
    );

    // Without the memo: everything verified again, the same decision, the memo written again.
    rmSync(memoFile);
    assert.equal(await run(), { decision: 'converged', hits: 0 });
    assert.equal(await run(), warm);

    // A torn or damaged file is ignored whole, then replaced by a good one.
    const good = readFileSync(memoFile);
    writeFileSync(memoFile, good.subarray(0, good.byteLength - 20));
    assert.equal(await run(), { decision: 'converged', hits: 0 }, 'torn');
    writeFileSync(memoFile, 'nixfleet verified-docs v1\nnot an entry\n');
    assert.equal(await run(), { decision: 'converged', hits: 0 }, 'malformed');
    assert.equal(await run(), warm);

    // A file others may write is not believed (nor is one another user owns: same check, by uid).
    chmodSync(memoFile, 0o666);
    assert.equal(await run(), { decision: 'converged', hits: 0 }, 'group/other-writable');
    assert.is(statSync(memoFile).mode & 0o777, 0o600, 'rewritten privately');

    // A new release: new bytes for every document, all misses, verified in full.
    lab.publish(fleet());
    assert.equal(await run(), { decision: 'converged', hits: 0 }, 'a new release');
    assert.equal(await run(), warm);
  } finally {
    await lab.close();
  }
});

test.run();
