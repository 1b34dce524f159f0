// Fixture cases (issue 3 section 8): each tests/fixtures/reconciler/<case>.json holds a decide() input
// and the hand-written expected decision.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { decide, type DecideInput } from '../../reconciler/index.ts';

const dir = fileURLToPath(new URL('../fixtures/reconciler/', import.meta.url));
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort();

interface Fixture {
  description: string;
  input: DecideInput;
  expected: {
    kind: string;
    gate?: string;
    reasonIncludes?: string[];
    retryAfter?: number;
    toGeneration?: number;
    rebootAllowed?: boolean;
  };
}

test('every case of issue 3 section 8 has a fixture', () => {
  const required = [
    'rollout-opens',
    'first-wave-starts',
    'wave-promotion-after-soak',
    'soak-not-yet-elapsed',
    'all-waves-converged',
    'halt-on-failure',
    'rollback-and-halt',
    'failure-under-threshold',
    'quarantined-closure-skipped',
    'host-edge-blocks',
    'host-edge-releases',
    'channel-edge-blocks',
    'channel-edge-releases',
    'offline-host-excused',
    'offline-host-blocking',
    'budget-holds',
    'budget-releases',
    'maintenance-window-closed',
    'maintenance-window-open',
    'inhibitor-defers',
    'stale-release-refused',
    'revoked-host-refused',
    'already-on-target-converged',
    // issue 8: reboots as a signed per-channel policy
    'inhibitor-reboot-allowed',
    'inhibitor-reboot-in-window',
    'inhibitor-reboot-window-closed',
    'deferred-host-holds-wave',
    'deferred-host-excused',
    'deferred-host-holds-budget',
    'rebooting-host-holds-budget',
  ];
  for (const r of required) assert.ok(files.includes(`${r}.json`), `missing fixture ${r}`);
});

for (const file of files) {
  test(`fixture ${file}`, () => {
    const fx = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Fixture;
    const d = decide(fx.input);
    const ctx = `${fx.description}\n  got: ${JSON.stringify(d)}`;
    assert.is(d.kind, fx.expected.kind, ctx);
    if (fx.expected.gate !== undefined)
      assert.is('gate' in d ? d.gate : undefined, fx.expected.gate, ctx);
    for (const s of fx.expected.reasonIncludes ?? [])
      assert.ok(d.reason.includes(s), `reason lacks "${s}": ${ctx}`);
    if (fx.expected.retryAfter !== undefined)
      assert.is(d.kind === 'wait' ? d.retryAfter : undefined, fx.expected.retryAfter, ctx);
    if (fx.expected.toGeneration !== undefined)
      assert.is(d.kind === 'rollback' ? d.to.generation : undefined, fx.expected.toGeneration, ctx);
    if (fx.expected.rebootAllowed !== undefined) {
      assert.is(d.kind === 'defer' ? d.reboot.allowed : undefined, fx.expected.rebootAllowed, ctx);
      if (d.kind === 'defer' && d.reboot.allowed)
        assert.is(
          d.reboot.deadline,
          fx.input.now + fx.input.manifest.confirmDeadlineSeconds * 1000,
          'reboot deadline = now + confirm deadline',
        );
    }
    if (d.kind === 'activate') {
      assert.is(d.target, fx.input.manifest.target);
      assert.ok(d.deadline > fx.input.now, 'deadline lies in the future');
    }
    // Purity: the same input gives the same decision.
    assert.equal(decide(JSON.parse(JSON.stringify(fx.input)) as DecideInput), d);
  });
}

test.run();
