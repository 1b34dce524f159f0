// Runtime compliance controls in the agent (agent/compliance.ts, activation.ts): the command runner's
// bounds (argv without a shell, timeout killing the process group, 1 MiB capture, digest, sanitised
// excerpt), and through the agent cycle: enforce fails the activation like a failing probe (magic
// rollback, quarantine, rolled-back ack carrying the evidence), permissive records and proceeds.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { runRuntimeControl, OUTPUT_CAP } from '../../agent/compliance.ts';
import { runAgentOnce } from '../../agent/agent.ts';
import { memoryLogger } from '../../agent/log.ts';
import { StateDir } from '../../agent/state-dir.ts';
import { Quarantine } from '../../agent/quarantine.ts';
import { EXCERPT_MAX, type RuntimeControl } from '../../protocol/index.ts';
import type { FleetInput } from '../../publisher/fleet-schema.ts';
import { requireTool } from '../support/skip.ts';
import { makeLab, labFleet, OLD, NEW, current, journal } from './lab-fleet.ts';

const control = (argv: string[], extra: Partial<RuntimeControl> = {}): RuntimeControl => ({
  framework: 'fw',
  control: 'c1',
  argv,
  expectExit: 0,
  timeoutMs: 10_000,
  ...extra,
});
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

test('runner: exit codes, argv never through a shell, digest of the whole output', async () => {
  const ok = await runRuntimeControl(control(['echo', '$(id) `id`; exit 3']));
  assert.is(ok.ok, true);
  assert.is(ok.exitCode, 0);
  assert.is(ok.excerpt, '$(id) `id`; exit 3', 'the argument reached echo unexpanded');
  assert.is(ok.outputDigest, sha256(Buffer.from('$(id) `id`; exit 3\n')));
  const wrongExit = await runRuntimeControl(
    control(['sh', '-c', 'echo out; echo err >&2; exit 3']),
  );
  assert.is(wrongExit.ok, false);
  assert.is(wrongExit.exitCode, 3);
  assert.match(wrongExit.excerpt, 'out');
  assert.match(wrongExit.excerpt, 'err');
  const expected3 = await runRuntimeControl(control(['sh', '-c', 'exit 3'], { expectExit: 3 }));
  assert.is(expected3.ok, true);
  const missing = await runRuntimeControl(control(['/nonexistent/nixfleet-control']));
  assert.is(missing.ok, false);
  assert.is(missing.exitCode, null);
  assert.match(missing.excerpt, 'cannot run /nonexistent/nixfleet-control');
});

test('runner: a control past its timeout is killed with its whole process group', async () => {
  const t0 = Date.now();
  const e = await runRuntimeControl(
    control(['sh', '-c', 'sleep 30 & echo started; wait'], { timeoutMs: 300 }),
  );
  assert.ok(Date.now() - t0 < 5000, 'returned at the timeout');
  assert.is(e.ok, false);
  assert.is(e.exitCode, null);
  assert.match(e.excerpt, 'timed out after 300 ms');
  // The capped time also bounds it (the confirm window's remainder).
  const capped = await runRuntimeControl(control(['sleep', '30']), 200);
  assert.match(capped.excerpt, 'timed out after 200 ms');
});

test('runner: output captured up to 1 MiB, digest over what was captured, excerpt bounded and sanitised', async () => {
  const big = await runRuntimeControl(control(['head', '-c', String(3 * OUTPUT_CAP), '/dev/zero']));
  assert.is(big.ok, true);
  assert.is(big.outputDigest, sha256(Buffer.alloc(OUTPUT_CAP)));
  assert.match(big.excerpt, `output cut at ${OUTPUT_CAP} bytes`);
  assert.ok(big.excerpt.length <= EXCERPT_MAX);
  const nasty = await runRuntimeControl(
    control([
      'printf',
      'a\\033[31mred\\033]0;title\\007\\342\\200\\256b\\nline2\\t%s',
      'x'.repeat(400),
    ]),
  );
  assert.ok(nasty.excerpt.length <= EXCERPT_MAX, `${nasty.excerpt.length}`);
  assert.not.match(nasty.excerpt, /[\u0000-\u001f\u007f-\u009f\u202e]/);
  assert.ok(nasty.excerpt.startsWith('a [31mred ]0;title b line2 xxx'), nasty.excerpt);
  assert.ok(nasty.excerpt.endsWith('...'));
});

/** One host `h` in channel prod, moving OLD -> NEW, with one framework of one runtime control. */
function complianceFleet(
  lab: ReturnType<typeof makeLab>,
  h: string,
  mode: 'enforce' | 'permissive',
  argv: string[],
): FleetInput {
  const fleet = labFleet(lab, {
    prod: { hosts: { [h]: NEW }, waves: [{ soakSeconds: 0 }], confirmDeadlineSeconds: 10 },
  });
  fleet.complianceFrameworks = {
    audit: {
      description: 'audit trail',
      controls: {
        'auditd-running': {
          kind: 'runtime',
          description: 'auditd runs',
          argv,
          expectExit: 0,
          timeoutMs: 5000,
        },
      },
    },
  };
  fleet.channels['prod']!.compliance = { frameworks: ['audit'], mode };
  return fleet;
}

test('enforce: a failing runtime control fails the activation (rollback, quarantine, rolled-back ack with evidence)', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const lab = makeLab(['c1']);
  try {
    lab.publish(complianceFleet(lab, 'c1', 'enforce', ['sh', '-c', 'echo inactive; exit 3']));
    await lab.startControlPlane();
    const cfg = lab.agentConfig('c1');
    const o = await runAgentOnce(cfg, { log: memoryLogger('c1') });
    assert.equal(o.kind === 'decided' && [o.decision, o.acted], ['activate', 'rolled-back']);
    assert.is(await current(lab, 'c1'), OLD, 'back on the exact previous generation');
    assert.ok(new Quarantine(new StateDir(cfg.stateDir)).isQuarantined(NEW, Date.now()));
    const acks = journal(lab, 'c1');
    assert.equal(
      acks.map((a) => a.kind),
      ['started', 'activated', 'rolled-back'],
    );
    const last = acks.at(-1)!;
    assert.match(last.reason ?? '', 'audit/auditd-running (exit 3: inactive)');
    assert.equal(
      last.evidence?.map((e) => [e.framework, e.control, e.ok, e.exitCode, e.excerpt]),
      [['audit', 'auditd-running', false, 3, 'inactive']],
    );
  } finally {
    await lab.close();
  }
});

test('enforce, passing: the healthy ack and later heartbeats carry the evidence', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const lab = makeLab(['c2']);
  try {
    lab.publish(complianceFleet(lab, 'c2', 'enforce', ['echo', 'active']));
    await lab.startControlPlane();
    const cfg = lab.agentConfig('c2');
    const log = memoryLogger('c2');
    const o = await runAgentOnce(cfg, { log });
    assert.equal(o.kind === 'decided' && [o.decision, o.acted], ['activate', 'confirmed']);
    assert.is(await current(lab, 'c2'), NEW);
    // A later cycle, past the heartbeat interval: the heartbeat repeats the activation's evidence.
    await runAgentOnce(cfg, { log, now: () => Date.now() + 120_000 });
    const acks = journal(lab, 'c2');
    const healthy = acks.find((a) => a.kind === 'healthy')!;
    const heartbeat = acks.at(-1)!;
    assert.is(heartbeat.kind, 'heartbeat');
    for (const a of [healthy, heartbeat])
      assert.equal(
        a.evidence?.map((e) => [e.control, e.ok, e.exitCode, e.excerpt]),
        [['auditd-running', true, 0, 'active']],
      );
    assert.is(heartbeat.evidence![0]!.outputDigest, healthy.evidence![0]!.outputDigest);
  } finally {
    await lab.close();
  }
});

test('permissive: a failing runtime control is recorded and the host proceeds', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const lab = makeLab(['c3']);
  try {
    lab.publish(complianceFleet(lab, 'c3', 'permissive', ['sh', '-c', 'exit 1']));
    await lab.startControlPlane();
    const o = await runAgentOnce(lab.agentConfig('c3'), { log: memoryLogger('c3') });
    assert.equal(o.kind === 'decided' && [o.decision, o.acted], ['activate', 'confirmed']);
    assert.is(await current(lab, 'c3'), NEW);
    const healthy = journal(lab, 'c3').find((a) => a.kind === 'healthy')!;
    assert.equal(
      healthy.evidence?.map((e) => [e.control, e.ok, e.exitCode]),
      [['auditd-running', false, 1]],
    );
  } finally {
    await lab.close();
  }
});

test.run();
