// The reboot path through the agent cycle (issue 8), with the simulated activator: its `reboot()` makes
// the staged generation run under a new boot id at once, so the next `runAgentOnce` is the run after
// the boot. A real-Nix version of the two main cases is in nix-activator.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runAgentOnce } from '../../agent/agent.ts';
import { memoryLogger } from '../../agent/log.ts';
import { StateDir } from '../../agent/state-dir.ts';
import { Quarantine } from '../../agent/quarantine.ts';
import { AckJournal } from '../../agent/ack-journal.ts';
import { PendingRecord } from '../../agent/pending.ts';
import { SIMULATED_GENERATIONS_FILE } from '../../agent/activators/simulated.ts';
import type { ActivatorConfig } from '../../agent/activators/index.ts';
import { readPrivateKey } from '../../protocol/keys.ts';
import type { FleetInput } from '../../publisher/fleet-schema.ts';
import { loadFleetState, readPinnedRoot } from '../../read-side/load.ts';
import { renderStatus, statusReport } from '../../read-side/status.ts';
import { renderSitePages } from '../../site-gen/build.ts';
import { requireTool } from '../support/skip.ts';
import { makeLab, labFleet, OLD, NEW, BAD } from './lab-fleet.ts';
import type { Lab } from '../support/lab.ts';
import { z } from 'zod';

const Generations = z.object({
  current: z.number(),
  generations: z.array(z.object({ number: z.number(), path: z.string() })),
  staged: z.number().nullable(),
  boots: z.number(),
});

function journal(lab: Lab, host: string) {
  const h = lab.host(host);
  return new AckJournal(new StateDir(h.stateDir), 'lab', host, readPrivateKey(h.keyFile))
    .all()
    .map((a) => a.signed);
}

function generations(lab: Lab, host: string) {
  return new StateDir(lab.host(host).stateDir).read(SIMULATED_GENERATIONS_FILE, Generations)!;
}

function pending(lab: Lab, host: string) {
  return new StateDir(lab.host(host).stateDir).read('pending.json', PendingRecord);
}

function simulated(
  extra: Partial<Extract<ActivatorConfig, { kind: 'simulated' }>>,
): () => ActivatorConfig {
  return () => ({
    kind: 'simulated',
    initialPath: OLD,
    unhealthy: [],
    failSwitch: [],
    inhibit: [NEW, BAD],
    switchDelayMs: 0,
    ...extra,
  });
}

function fleetWith(
  lab: Lab,
  host: string,
  target: string,
  reboot: 'never' | 'allowed' | undefined,
  confirmDeadlineSeconds = 30,
): FleetInput {
  const fleet = labFleet(lab, {
    prod: { hosts: { [host]: target }, waves: [{ soakSeconds: 0 }], confirmDeadlineSeconds },
  });
  if (reboot !== undefined) fleet.channels['prod']!.reboot = reboot;
  return fleet;
}

test('reboot policy never (the default): deferred ack with the reason, nothing staged, shown as deferred by the operator view', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const lab = makeLab(['r1'], { activator: simulated({}) });
  try {
    lab.publish(fleetWith(lab, 'r1', NEW, undefined));
    await lab.startControlPlane();
    const o = await runAgentOnce(lab.agentConfig('r1'), { log: memoryLogger('r1') });
    assert.ok(
      o.kind === 'decided' && o.decision === 'defer' && o.acted === null,
      JSON.stringify(o),
    );
    const acks = journal(lab, 'r1');
    assert.equal(
      acks.map((a) => a.kind),
      ['deferred'],
    );
    assert.match(acks[0]!.reason!, 'reboot policy of channel prod is never');
    assert.equal(
      generations(lab, 'r1').generations.map((g) => g.path),
      [OLD],
      'nothing staged',
    );
    assert.is(pending(lab, 'r1'), undefined);
    // A second cycle does not repeat the same report.
    await runAgentOnce(lab.agentConfig('r1'), { log: memoryLogger('r1') });
    assert.is(journal(lab, 'r1').length, 1);
    // The operator's view (status, dashboard): deferred, with the reason and the effect on the wave.
    await new Promise((r) => setTimeout(r, 1500)); // the endpoint publishes acks/hosts/ within ~1 s
    const now = Date.now();
    const state = await loadFleetState(lab.treeDir, readPinnedRoot(lab.rootFile), { now });
    const h = state.view.hosts.find((x) => x.host === 'r1')!;
    assert.is(h.phase, 'deferred');
    assert.match(h.detail, 'reboot policy of channel prod is never');
    assert.match(h.reason ?? '', 'waits for it (deferredHosts: hold)');
    // `nixfleet status`: the channel's signed policy, and the host's reason and effect (not "offline").
    const text = renderStatus(statusReport(state));
    assert.match(text, 'reboots: never; a deferred host holds its wave (deferredHosts: hold)');
    assert.match(
      text,
      /r1 .* deferred .*reboot policy of channel prod is never.*waits for it \(deferredHosts: hold\)/,
    );
    // The dashboard: the channel page names the policy, the host table the reason.
    const site = await renderSitePages({
      treeDir: lab.treeDir,
      pinnedRoot: readPinnedRoot(lab.rootFile),
      now,
    });
    const channelPage = site.pages.get('channels/prod.html') ?? '';
    assert.match(channelPage, 'never; a deferred host holds its wave (deferredHosts: hold)');
    assert.match(site.pages.get('hosts.html') ?? '', 'waits for it (deferredHosts: hold)');
  } finally {
    await lab.close();
  }
});

test('reboot allowed: started ack, boot + reboot; after the boot (new boot id) confirms before the same deadline', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const lab = makeLab(['r2'], { activator: simulated({}) });
  try {
    lab.publish(fleetWith(lab, 'r2', NEW, 'allowed'));
    await lab.startControlPlane();
    const log = memoryLogger('r2');
    const o1 = await runAgentOnce(lab.agentConfig('r2'), { log });
    assert.ok(
      o1.kind === 'decided' && o1.decision === 'defer' && o1.acted === 'rebooting',
      JSON.stringify(o1),
    );
    const p = pending(lab, 'r2')!;
    assert.is(p.phase, 'booting');
    assert.is(p.bootId, 'simulated-boot-1', 'the boot id before the reboot');
    assert.equal(p.previous, { number: 1, path: OLD });
    const started = journal(lab, 'r2');
    assert.equal(
      started.map((a) => a.kind),
      ['started'],
    );
    assert.match(started[0]!.reason!, 'rebooting into its target (kernel (simulated))');
    // The simulated reboot happened: generation 2 runs under boot 2.
    assert.is(generations(lab, 'r2').current, 2);
    assert.is(generations(lab, 'r2').boots, 2);

    const o2 = await runAgentOnce(lab.agentConfig('r2'), { log });
    assert.ok(o2.kind === 'decided' && o2.decision === 'converged', JSON.stringify(o2));
    assert.ok(log.records.some((r) => r['event'] === 'booted-into-target'));
    assert.ok(log.records.some((r) => r['event'] === 'confirmed'));
    assert.is(pending(lab, 'r2'), undefined);
    const kinds = journal(lab, 'r2').map((a) => a.kind);
    assert.equal(kinds.slice(0, 3), ['started', 'activated', 'healthy']);
    assert.is(journal(lab, 'r2')[2]!.current, NEW);
  } finally {
    await lab.close();
  }
});

test('reboot allowed, unhealthy after the boot: rolled back across a reboot to the exact previous generation, rolled-back ack after it', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const lab = makeLab(['r3'], { activator: simulated({ unhealthy: [BAD] }) });
  try {
    lab.publish(fleetWith(lab, 'r3', BAD, 'allowed', 3));
    await lab.startControlPlane();
    const log = memoryLogger('r3');
    const cfg = lab.agentConfig('r3', { probeIntervalMs: 200 });
    const o1 = await runAgentOnce(cfg, { log });
    assert.ok(o1.kind === 'decided' && o1.acted === 'rebooting', JSON.stringify(o1));
    const deadline = pending(lab, 'r3')!.deadline;
    // After the boot: runs BAD, never healthy; at the deadline it stages generation 1 and reboots back.
    const o2 = await runAgentOnce(cfg, { log });
    assert.is(o2.kind, 'rebooting', JSON.stringify(o2));
    const back = pending(lab, 'r3')!;
    assert.is(back.phase, 'rebooting-back');
    assert.is(back.deadline, deadline, 'the deadline survived the reboot');
    assert.match(back.rollbackReason!, 'not healthy before the confirm deadline');
    assert.equal(
      journal(lab, 'r3').map((a) => a.kind),
      ['started', 'activated'],
      'no rolled-back ack before the reboot back',
    );
    assert.is(generations(lab, 'r3').current, 1, 'the simulated reboot went back to generation 1');
    // After the second boot: the rolled-back ack, quarantine, pending cleared.
    await runAgentOnce(cfg, { log });
    const acks = journal(lab, 'r3');
    assert.equal(
      acks.map((a) => a.kind),
      ['started', 'activated', 'rolled-back'],
    );
    assert.is(acks[2]!.current, OLD);
    assert.is(pending(lab, 'r3'), undefined);
    assert.ok(new Quarantine(new StateDir(cfg.stateDir)).isQuarantined(BAD, Date.now()));
    assert.equal(
      generations(lab, 'r3').generations.map((g) => g.number),
      [1, 2],
    );
    assert.is(generations(lab, 'r3').current, 1);
  } finally {
    await lab.close();
  }
});

test('bootloader fallback: the host comes back on the old system -> failed ack, previous generation the boot default again, quarantine', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const lab = makeLab(['r4'], { activator: simulated({ bootFallback: [NEW] }) });
  try {
    lab.publish(fleetWith(lab, 'r4', NEW, 'allowed'));
    await lab.startControlPlane();
    const cfg = lab.agentConfig('r4');
    const o1 = await runAgentOnce(cfg, { log: memoryLogger('r4') });
    assert.ok(o1.kind === 'decided' && o1.acted === 'rebooting', JSON.stringify(o1));
    await runAgentOnce(cfg, { log: memoryLogger('r4') });
    const acks = journal(lab, 'r4');
    assert.equal(
      acks.map((a) => a.kind),
      ['started', 'failed'],
    );
    assert.match(acks[1]!.reason!, `rebooted into ${OLD} instead of ${NEW}`);
    assert.is(pending(lab, 'r4'), undefined);
    assert.ok(new Quarantine(new StateDir(cfg.stateDir)).isQuarantined(NEW, Date.now()));
    assert.is(generations(lab, 'r4').staged, null);
  } finally {
    await lab.close();
  }
});

test('an activator that cannot reboot (command) says so in its deferred ack and touches nothing', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const lab = makeLab(['r5'], {
    activator: () => ({
      kind: 'command',
      switch: ['false'],
      rollback: ['false'],
      current: ['echo', `1 ${OLD}`],
      inhibitors: ['echo', 'kernel changes'],
      timeoutMs: 10_000,
    }),
  });
  try {
    lab.publish(fleetWith(lab, 'r5', NEW, 'allowed'));
    await lab.startControlPlane();
    const o = await runAgentOnce(lab.agentConfig('r5'), { log: memoryLogger('r5') });
    assert.ok(
      o.kind === 'decided' && o.decision === 'defer' && o.acted === null,
      JSON.stringify(o),
    );
    const acks = journal(lab, 'r5');
    assert.equal(
      acks.map((a) => a.kind),
      ['deferred'],
    );
    assert.match(acks[0]!.reason!, 'the command activator cannot reboot (reboot not supported)');
    assert.is(pending(lab, 'r5'), undefined);
  } finally {
    await lab.close();
  }
});

test.run();
