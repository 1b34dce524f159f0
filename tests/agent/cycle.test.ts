import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { runAgentOnce } from '../../agent/agent.ts';
import { memoryLogger } from '../../agent/log.ts';
import { StateDir } from '../../agent/state-dir.ts';
import { Quarantine } from '../../agent/quarantine.ts';
import { requireTool } from '../support/skip.ts';
import { makeLab, badIsUnhealthy, labFleet, OLD, NEW, BAD } from './lab-fleet.ts';
import type { Lab } from '../support/lab.ts';
import { until } from '../support/e2e-processes.ts';
import { byWave, current, journal } from './lab-fleet.ts';

test('a staged rollout converges wave by wave; the CP holds every host ack', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const lab = makeLab(['a1', 'a2', 'a3']);
  try {
    lab.publish(
      labFleet(lab, {
        prod: {
          hosts: { a1: NEW, a2: NEW, a3: NEW },
          waves: [{ count: 1, soakSeconds: 1 }, { soakSeconds: 0 }],
        },
      }),
    );
    await lab.startControlPlane();
    const logs = new Map(['a1', 'a2', 'a3'].map((h) => [h, memoryLogger(h)]));
    await until(
      'all hosts converged',
      30_000,
      async () => {
        const outcomes = await Promise.all(
          ['a1', 'a2', 'a3'].map((h) => runAgentOnce(lab.agentConfig(h), { log: logs.get(h)! })),
        );
        return outcomes.every((o) => o.kind === 'decided' && o.decision === 'converged');
      },
      100,
    );
    for (const h of ['a1', 'a2', 'a3']) assert.is(await current(lab, h), NEW);
    // Wave order: the wave-0 host confirmed before any wave-1 host started.
    const all = ['a1', 'a2', 'a3'].map((h) => ({ h, acks: journal(lab, h) }));
    const wave0 = all.find((x) => x.h === byWave(lab, ['a1', 'a2', 'a3'])[0])!;
    const healthy0 = wave0.acks.find((a) => a.kind === 'healthy')!.time;
    for (const x of all.filter((x) => x !== wave0)) {
      const started = x.acks.find((a) => a.kind === 'started')!.time;
      assert.ok(
        started >= healthy0,
        `${x.h} started ${started} before wave 0 was healthy ${healthy0}`,
      );
    }
    // Waiting hosts logged why.
    const waits = all
      .filter((x) => x !== wave0)
      .flatMap((x) =>
        logs.get(x.h)!.records.filter((r) => r['event'] === 'decision' && r['decision'] === 'wait'),
      );
    assert.ok(
      waits.length > 0 &&
        waits.every((r) => typeof r['reason'] === 'string' && (r['reason'] as string).length > 10),
    );
    // The control plane publishes each host's latest ack (heartbeats keep flowing).
    for (const h of ['a1', 'a2', 'a3']) {
      const head = JSON.parse(readFileSync(`${lab.treeDir}/acks/hosts/${h}.json`, 'utf8')) as {
        signed: { seq: number };
      };
      assert.ok(head.signed.seq >= 3);
    }
  } finally {
    await lab.close();
  }
});

test('unhealthy target: magic rollback to the exact previous generation, quarantine, rolled-back ack posted', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const lab = makeLab(['b1'], {
    activator: badIsUnhealthy,
  });
  try {
    lab.publish(
      labFleet(lab, {
        prod: { hosts: { b1: BAD }, waves: [{ soakSeconds: 0 }], confirmDeadlineSeconds: 2 },
      }),
    );
    await lab.startControlPlane();
    const log = memoryLogger('b1');
    const t0 = Date.now();
    const o = await runAgentOnce(lab.agentConfig('b1'), { log });
    assert.equal(o.kind === 'decided' && [o.decision, o.acted], ['activate', 'rolled-back']);
    assert.ok(Date.now() - t0 < 6000);
    assert.is(await current(lab, 'b1'), OLD);
    const cfg = lab.agentConfig('b1');
    assert.ok(new Quarantine(new StateDir(cfg.stateDir)).isQuarantined(BAD, Date.now()));
    const kinds = journal(lab, 'b1').map((a) => a.kind);
    assert.equal(kinds, ['started', 'activated', 'rolled-back']);
    await until('rolled-back ack published', 5000, () => {
      try {
        return (
          (
            JSON.parse(readFileSync(`${lab.treeDir}/acks/hosts/b1.json`, 'utf8')) as {
              signed: { kind: string };
            }
          ).signed.kind === 'rolled-back'
        );
      } catch {
        return false;
      }
    });
    // Next cycle: the quarantined closure is not retried; its own rolled-back ack stays its latest report.
    const o2 = await runAgentOnce(cfg, { log });
    assert.ok(o2.kind === 'decided' && o2.decision === 'wait', JSON.stringify(o2));
    assert.is(await current(lab, 'b1'), OLD);
    assert.is(
      journal(lab, 'b1').at(-1)!.kind,
      'rolled-back',
      'its own failure stays its latest report',
    );
    // Even once the quarantine is cleared, the halted rollout keeps it waiting, and no presence
    // heartbeat may replace the failure report (that would lift the halt for every peer).
    new Quarantine(new StateDir(cfg.stateDir)).clear(undefined, Date.now());
    // ...even when a presence heartbeat would be due (past a third of the offline window).
    const o3 = await runAgentOnce(cfg, { log, now: () => Date.now() + 250_000 });
    assert.ok(o3.kind === 'decided' && o3.decision === 'wait', JSON.stringify(o3));
    assert.is(await current(lab, 'b1'), OLD);
    assert.is(
      journal(lab, 'b1').at(-1)!.kind,
      'rolled-back',
      'a presence heartbeat must not erase the failure',
    );
  } finally {
    await lab.close();
  }
});

test('a slow closure download does not eat the confirm window: the deadline counts from the activation', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const lab = makeLab(['f1']);
  try {
    lab.publish(
      labFleet(lab, {
        prod: { hosts: { f1: NEW }, waves: [{ soakSeconds: 0 }], confirmDeadlineSeconds: 30 },
      }),
    );
    await lab.startControlPlane();
    const log = memoryLogger('f1');
    // The download (prepare, after the `fetching` line) "takes" 40 s: longer than the whole window.
    const fetchedFor = 40_000;
    const now = () =>
      Date.now() + (log.records.some((r) => r['event'] === 'fetching') ? fetchedFor : 0);
    const o = await runAgentOnce(lab.agentConfig('f1'), { log, now });
    assert.equal(
      o.kind === 'decided' && [o.decision, o.acted],
      ['activate', 'confirmed'],
      JSON.stringify(log.records.slice(-4)),
    );
    assert.is(await current(lab, 'f1'), NEW);
    const switching = log.records.find((r) => r['event'] === 'switching')!;
    const fetching = log.records.find((r) => r['event'] === 'fetching')!;
    assert.ok(
      Date.parse(String(switching['deadline'])) >=
        Date.parse(String(fetching['time'])) + fetchedFor,
      `deadline ${String(switching['deadline'])} counts from after the download`,
    );
  } finally {
    await lab.close();
  }
});

test('control plane unreachable after the switch: rollback before the deadline, reported once reachable', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const lab = makeLab(['c1'], {
    activator: () => ({
      kind: 'simulated',
      initialPath: OLD,
      unhealthy: [],
      failSwitch: [],
      inhibit: [],
      switchDelayMs: 300,
    }),
  });
  try {
    lab.publish(
      labFleet(lab, {
        prod: { hosts: { c1: NEW }, waves: [{ soakSeconds: 0 }], confirmDeadlineSeconds: 3 },
      }),
    );
    await lab.startControlPlane();
    const cfg = lab.agentConfig('c1', { requestTimeoutMs: 500, retries: 0 });
    const log = memoryLogger('c1');
    const run = runAgentOnce(cfg, { log });
    // Cut the control plane while the switch is in progress.
    await until('switching', 5000, () => log.records.some((r) => r['event'] === 'switching'), 10);
    await lab.stopControlPlane();
    const o = await run;
    assert.ok(o.kind === 'decided' && o.acted === 'rolled-back', JSON.stringify(o));
    assert.is(await current(lab, 'c1'), OLD);
    assert.ok(new Quarantine(new StateDir(cfg.stateDir)).isQuarantined(NEW, Date.now()));
    // Back online: the queued acks (healthy, rolled-back) reach the control plane.
    await lab.startControlPlane();
    await runAgentOnce(cfg, { log });
    await until('rolled-back ack published', 5000, () => {
      try {
        const acks = JSON.parse(readFileSync(`${lab.treeDir}/acks/hosts/c1.json`, 'utf8')) as {
          signed: { kind: string };
        };
        return acks.signed.kind === 'rolled-back' || acks.signed.kind === 'blocked';
      } catch {
        return false;
      }
    });
    assert.ok(journal(lab, 'c1').some((a) => a.kind === 'rolled-back'));
    // No soak proof was signed on the way (soak 0: any ack on NEW later than its healthy one): peers
    // never took the rolled-back host for done.
    const onNew = journal(lab, 'c1').filter(
      (a) => (a.kind === 'healthy' || a.kind === 'heartbeat') && a.current === NEW,
    );
    assert.ok(onNew.length > 0 && onNew.every((a) => a.time === a.healthySince), 'no proof');
  } finally {
    await lab.close();
  }
});

test('a soak of 0: the run that confirms signs the proof a second after its healthy ack, and the next wave starts at its next run', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const lab = makeLab(['s0', 's1']);
  try {
    lab.publish(
      labFleet(lab, {
        prod: {
          hosts: { s0: NEW, s1: NEW },
          waves: [{ count: 1, soakSeconds: 0 }, { soakSeconds: 0 }],
        },
      }),
    );
    await lab.startControlPlane();
    const waveOf = (h: string) => lab.cp!.view()!.hosts.get(h)!.wave;
    const [first, second] = ['s0', 's1'].sort((a, b) => waveOf(a) - waveOf(b)) as [string, string];
    const o = await runAgentOnce(lab.agentConfig(first), { log: memoryLogger(first) });
    assert.ok(o.kind === 'decided' && o.acted === 'confirmed', JSON.stringify(o));
    const acks = journal(lab, first);
    const [healthy, proof] = acks.slice(-2);
    assert.is(healthy!.kind, 'healthy');
    assert.is(healthy!.time, healthy!.healthySince, 'signed when the health started: no proof');
    assert.is(proof!.kind, 'heartbeat');
    assert.is(proof!.healthySince, healthy!.healthySince);
    assert.ok(proof!.time > healthy!.time, `the proof is a later second: ${proof!.time}`);
    assert.is(lab.cp!.ackService.head(first)?.seq, proof!.seq, 'posted in the same run');
    // Published (within a second or so), the proof opens the next wave at its host's next run.
    await until('the proof published', 20_000, () => {
      const head = JSON.parse(readFileSync(`${lab.treeDir}/acks/hosts/${first}.json`, 'utf8')) as {
        signed: { seq: number };
      };
      return head.signed.seq === proof!.seq;
    });
    const next = await runAgentOnce(lab.agentConfig(second), { log: memoryLogger(second) });
    assert.ok(next.kind === 'decided' && next.decision === 'activate', JSON.stringify(next));
  } finally {
    await lab.close();
  }
});

test('a second concurrent run exits cleanly without touching the state', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const lab = makeLab(['d1']);
  try {
    lab.publish(labFleet(lab, { prod: { hosts: { d1: NEW }, waves: [{ soakSeconds: 0 }] } }));
    await lab.startControlPlane();
    const cfg = lab.agentConfig('d1');
    const first = runAgentOnce(cfg, { log: memoryLogger('d1') });
    const log2 = memoryLogger('d1');
    const second = await runAgentOnce(cfg, { log: log2 });
    assert.is(second.kind, 'locked');
    assert.ok(log2.records.some((r) => r['event'] === 'already-running'));
    await first;
  } finally {
    await lab.close();
  }
});

test.run();
