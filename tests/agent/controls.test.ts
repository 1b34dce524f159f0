// Operator controls and per-channel freshness through real agent cycles (issue 9 sections 2 and 4):
// the lab's publisher, the embedded control plane over mTLS, simulated activators.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runAgentOnce } from '../../agent/agent.ts';
import { memoryLogger } from '../../agent/log.ts';
import { readFileSync } from 'node:fs';
import { StateDir } from '../../agent/state-dir.ts';
import { Quarantine } from '../../agent/quarantine.ts';
import { requireTool } from '../support/skip.ts';
import { makeLab, badIsUnhealthy, labFleet, OLD, NEW, BAD } from './lab-fleet.ts';
import type { Lab } from '../support/lab.ts';
import { until } from '../support/e2e-processes.ts';
import { byWave, current, journal } from './lab-fleet.ts';

function decisions(log: ReturnType<typeof memoryLogger>) {
  return log.records.filter((r) => r['event'] === 'decision');
}

/** The control plane published this host's latest ack with this kind (peers read it from there). */
function published(lab: Lab, host: string, kind: string): () => boolean {
  return () => {
    try {
      return (
        (
          JSON.parse(readFileSync(`${lab.treeDir}/acks/hosts/${host}.json`, 'utf8')) as {
            signed: { kind: string };
          }
        ).signed.kind === kind
      );
    } catch {
      return false;
    }
  };
}

/** Lets the control plane pick up a refreshed tree (it re-reads it every 100 ms in the lab). */
const settle = () => new Promise((r) => setTimeout(r, 400));

test('paused channel: a confirmation in flight completes, nothing new starts; resume lets the next wave start', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const lab = makeLab(['p1', 'p2'], {
    activator: () => ({
      kind: 'simulated',
      initialPath: OLD,
      unhealthy: [],
      failSwitch: [],
      inhibit: [],
      switchDelayMs: 1200,
    }),
  });
  try {
    lab.publish(
      labFleet(lab, {
        prod: {
          hosts: { p1: NEW, p2: NEW },
          waves: [{ count: 1, soakSeconds: 0 }, { soakSeconds: 0 }],
          confirmDeadlineSeconds: 20,
        },
      }),
    );
    await lab.startControlPlane();
    const [wave0, wave1] = byWave(lab, ['p1', 'p2']) as [string, string];
    const log0 = memoryLogger(wave0);
    const run = runAgentOnce(lab.agentConfig(wave0), { log: log0 });
    // The operator pauses the channel while the wave-0 host is switching.
    await until(
      'switching',
      10_000,
      () => log0.records.some((r) => r['event'] === 'switching'),
      10,
    );
    const paused = lab.control((c, at) => ({
      ...c,
      paused: [{ channel: 'prod', since: at, reason: 'incident 42' }],
    }));
    assert.is(paused.version, 1);
    const o0 = await run;
    assert.equal(
      o0.kind === 'decided' && [o0.decision, o0.acted],
      ['activate', 'confirmed'],
      JSON.stringify(o0),
    );
    assert.is(await current(lab, wave0), NEW);
    await settle();

    // Paused: the wave-1 host (whose wave is open) starts nothing and says why; it stays present.
    const log1 = memoryLogger(wave1);
    const o1 = await runAgentOnce(lab.agentConfig(wave1), { log: log1 });
    assert.ok(o1.kind === 'decided' && o1.decision === 'wait', JSON.stringify(o1));
    const d = decisions(log1).at(-1)!;
    assert.is(d['gate'], 'paused');
    assert.ok(String(d['reason']).includes('incident 42'));
    assert.is(await current(lab, wave1), OLD);
    assert.ok(
      !journal(lab, wave1).some((a) => a.kind === 'started'),
      'a paused host posted started',
    );
    assert.is(journal(lab, wave1).at(-1)!.kind, 'heartbeat');
    // The confirmed host keeps heartbeating while paused.
    const o0b = await runAgentOnce(lab.agentConfig(wave0), { log: log0 });
    assert.ok(o0b.kind === 'decided' && o0b.decision === 'converged');

    // Resume: the same release, the same rollout id; the wave-1 host starts.
    lab.control((c) => ({ ...c, paused: [] }));
    await settle();
    const o2 = await runAgentOnce(lab.agentConfig(wave1), { log: log1 });
    assert.equal(
      o2.kind === 'decided' && [o2.decision, o2.acted],
      ['activate', 'confirmed'],
      JSON.stringify(o2),
    );
    assert.is(await current(lab, wave1), NEW);
  } finally {
    await lab.close();
  }
});

test('resume-halted: a halted rollout resumes without a new release; the failed host stays quarantined', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const lab = makeLab(['h1', 'h2'], {
    activator: badIsUnhealthy,
  });
  try {
    // Two waves of one host each; whichever host lands in wave 0 gets the bad target.
    lab.publish(
      labFleet(lab, {
        prod: {
          hosts: { h1: NEW, h2: NEW },
          waves: [{ count: 1, soakSeconds: 0 }, { soakSeconds: 0 }],
        },
      }),
    );
    await lab.startControlPlane();
    const [wave0, wave1] = byWave(lab, ['h1', 'h2']) as [string, string];
    const fleet = labFleet(lab, {
      prod: {
        hosts: { [wave0]: BAD, [wave1]: NEW },
        waves: [{ count: 1, soakSeconds: 0 }, { soakSeconds: 0 }],
        confirmDeadlineSeconds: 5,
      },
    });
    const release = lab.publish(fleet);
    await settle();
    assert.is(
      lab.cp!.view()!.hosts.get(wave0)!.wave,
      0,
      'the same wave placement (hash order of channel and host)',
    );
    const o0 = await runAgentOnce(lab.agentConfig(wave0), { log: memoryLogger(wave0) });
    assert.equal(o0.kind === 'decided' && o0.acted, 'rolled-back');
    await until('rolled-back ack published', 5000, published(lab, wave0, 'rolled-back'));
    await settle();
    const log1 = memoryLogger(wave1);
    const halted = await runAgentOnce(lab.agentConfig(wave1), { log: log1 });
    assert.ok(halted.kind === 'decided' && halted.decision === 'wait');
    assert.is(decisions(log1).at(-1)!['gate'], 'halted');

    lab.control((c, at) => ({
      ...c,
      resumedHalts: [
        {
          channel: 'prod',
          rolloutId: release.rolloutIds['prod']!,
          acceptedAt: at,
          reason: 'bad canary image, fixed',
        },
      ],
    }));
    await settle();
    const resumed = await runAgentOnce(lab.agentConfig(wave1), { log: log1 });
    assert.equal(
      resumed.kind === 'decided' && [resumed.decision, resumed.acted],
      ['activate', 'confirmed'],
      JSON.stringify(resumed),
    );
    assert.is(await current(lab, wave1), NEW);
    // The failed host is not retried by a resume: its quarantine and its failure report stand.
    const again = await runAgentOnce(lab.agentConfig(wave0), { log: memoryLogger(wave0) });
    assert.ok(again.kind === 'decided' && again.decision === 'wait', JSON.stringify(again));
    assert.is(await current(lab, wave0), OLD);
    assert.is(journal(lab, wave0).at(-1)!.kind, 'rolled-back');
  } finally {
    await lab.close();
  }
});

test('retry host: its quarantine for the target is dropped and it tries again; clear-quarantine drops only older entries', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const lab = makeLab(['r1'], {
    activator: badIsUnhealthy,
  });
  try {
    const release = lab.publish(
      labFleet(lab, {
        prod: { hosts: { r1: BAD }, waves: [{ soakSeconds: 0 }], confirmDeadlineSeconds: 5 },
      }),
    );
    await lab.startControlPlane();
    const o = await runAgentOnce(lab.agentConfig('r1'), { log: memoryLogger('r1') });
    assert.equal(o.kind === 'decided' && o.acted, 'rolled-back');
    const q = new Quarantine(new StateDir(lab.host('r1').stateDir));
    assert.ok(q.isQuarantined(BAD, Date.now()));

    // The operator fixed what made the target unhealthy on r1 and allows a retry.
    lab.control((c, at) => ({
      ...c,
      retries: [
        { host: 'r1', rolloutId: release.rolloutIds['prod']!, at, reason: 'disk replaced' },
      ],
    }));
    await settle();
    const healthy = {
      kind: 'simulated' as const,
      initialPath: OLD,
      unhealthy: [],
      failSwitch: [],
      inhibit: [],
      switchDelayMs: 0,
    };
    const log = memoryLogger('r1');
    const retried = await runAgentOnce(lab.agentConfig('r1', { activator: healthy }), { log });
    assert.equal(
      retried.kind === 'decided' && [retried.decision, retried.acted],
      ['activate', 'confirmed'],
      JSON.stringify(log.records.slice(-8)),
    );
    assert.ok(log.records.some((r) => r['event'] === 'quarantine-cleared-by-control'));
    assert.is(await current(lab, 'r1'), BAD);

    // clear-quarantine (fleet-wide): entries that began before the control are dropped, later ones stand.
    const other = '/nix/store/33333333333333333333333333333333-nixos-system-other';
    q.add(other, 'failed earlier', Date.now() - 60_000, 24, 1);
    lab.control((c, at) => ({
      ...c,
      quarantineClears: [{ host: null, target: null, at, reason: 'all clear' }],
    }));
    await settle();
    await runAgentOnce(lab.agentConfig('r1', { activator: healthy }), { log });
    assert.not.ok(
      q.isQuarantined(other, Date.now()),
      'an older quarantine entry survived clear-quarantine',
    );
    await new Promise((r) => setTimeout(r, 1100));
    q.add(other, 'failed after the control', Date.now(), 24, 1);
    await runAgentOnce(lab.agentConfig('r1', { activator: healthy }), { log });
    assert.ok(
      q.isQuarantined(other, Date.now()),
      'a quarantine begun after the control was cleared by it',
    );
  } finally {
    await lab.close();
  }
});

test('stale per channel: a strict channel stops starting while a lax one goes on; stale hosts heartbeat and never roll back', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const lab = makeLab(['s1', 's2', 'l1']);
  try {
    await lab.startControlPlane();
    lab.publish(
      labFleet(lab, {
        strict: {
          hosts: { s1: NEW, s2: NEW },
          waves: [{ count: 1, soakSeconds: 0 }, { soakSeconds: 0 }],
          freshnessSeconds: 1200,
        },
        lax: { hosts: { l1: NEW }, waves: [{ soakSeconds: 0 }], freshnessSeconds: 7200 },
      }),
    );
    await settle();
    const first = lab.cp!.view()!.hosts.get('s1')!.wave === 0 ? 's1' : 's2';
    const second = first === 's1' ? 's2' : 's1';
    const o = await runAgentOnce(lab.agentConfig(first), { log: memoryLogger(first) });
    assert.equal(o.kind === 'decided' && o.acted, 'confirmed');

    // 25 minutes later, nobody re-signed the timestamp: past strict's 20 minutes, inside lax's 2 hours.
    const later = () => Date.now() + 25 * 60_000;
    const logS = memoryLogger(second);
    const s = await runAgentOnce(lab.agentConfig(second), { log: logS, now: later });
    assert.ok(s.kind === 'decided' && s.decision === 'wait', JSON.stringify(s));
    assert.is(decisions(logS).at(-1)!['gate'], 'not-fresh');
    assert.is(await current(lab, second), OLD);
    assert.is(
      journal(lab, second).at(-1)!.kind,
      'heartbeat',
      'a stale waiting host still says it is present',
    );
    const l = await runAgentOnce(lab.agentConfig('l1'), { log: memoryLogger('l1'), now: later });
    assert.equal(
      l.kind === 'decided' && [l.decision, l.acted],
      ['activate', 'confirmed'],
      'the lax channel is still fresh',
    );
    const beforeF = journal(lab, first).length;
    const f = await runAgentOnce(lab.agentConfig(first), { log: memoryLogger(first), now: later });
    assert.ok(f.kind === 'decided' && f.decision === 'converged', JSON.stringify(f));
    assert.ok(
      journal(lab, first).length > beforeF && journal(lab, first).at(-1)!.kind === 'heartbeat',
    );

    // 3 hours later the timestamp itself has expired: still heartbeating what it runs, nothing new, no rollback.
    const muchLater = () => Date.now() + 3 * 3600_000;
    const logF = memoryLogger(first);
    const before = journal(lab, first).length;
    const e = await runAgentOnce(lab.agentConfig(first), { log: logF, now: muchLater });
    assert.ok(e.kind === 'decided' && e.decision === 'converged', JSON.stringify(e));
    assert.is(await current(lab, first), NEW);
    const acks = journal(lab, first);
    assert.ok(
      acks.length > before && acks.at(-1)!.kind === 'heartbeat' && acks.at(-1)!.current === NEW,
    );
    assert.not.ok(acks.some((a) => a.kind === 'rolled-back'));
    const e2 = await runAgentOnce(lab.agentConfig(second), { log: logS, now: muchLater });
    assert.ok(e2.kind === 'decided' && e2.decision === 'wait', JSON.stringify(e2));
    assert.is(decisions(logS).at(-1)!['gate'], 'not-fresh');
    assert.is(await current(lab, second), OLD);
  } finally {
    await lab.close();
  }
});

test('rollback-and-halt: a host that confirmed is rolled back to its recorded generation when its wave fails', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const lab = makeLab(['k1', 'k2'], {
    activator: badIsUnhealthy,
  });
  try {
    lab.publish(
      labFleet(lab, {
        prod: {
          hosts: { k1: NEW, k2: BAD },
          waves: [{ soakSeconds: 0 }],
          onFailure: 'rollback-and-halt',
          confirmDeadlineSeconds: 5,
        },
      }),
    );
    await lab.startControlPlane();
    const ok = await runAgentOnce(lab.agentConfig('k1'), { log: memoryLogger('k1') });
    assert.equal(ok.kind === 'decided' && ok.acted, 'confirmed');
    assert.is(await current(lab, 'k1'), NEW);
    const bad = await runAgentOnce(lab.agentConfig('k2'), { log: memoryLogger('k2') });
    assert.equal(bad.kind === 'decided' && bad.acted, 'rolled-back');
    await until('k2 failure published', 5000, published(lab, 'k2', 'rolled-back'));
    await settle();
    const log = memoryLogger('k1');
    const rb = await runAgentOnce(lab.agentConfig('k1'), { log });
    assert.equal(
      rb.kind === 'decided' && [rb.decision, rb.acted],
      ['rollback', 'rolled-back'],
      JSON.stringify(rb),
    );
    assert.is(await current(lab, 'k1'), OLD, 'back on the generation recorded before the switch');
    assert.is(journal(lab, 'k1').at(-1)!.kind, 'rolled-back');
    assert.ok(log.records.some((r) => r['event'] === 'rolled-back-by-policy'));
    assert.ok(new Quarantine(new StateDir(lab.host('k1').stateDir)).isQuarantined(NEW, Date.now()));
    // Halted and quarantined: the next cycle does not switch back.
    const next = await runAgentOnce(lab.agentConfig('k1'), { log });
    assert.ok(next.kind === 'decided' && next.decision === 'wait', JSON.stringify(next));
    assert.is(await current(lab, 'k1'), OLD);
  } finally {
    await lab.close();
  }
});

test.run();
