// Magic rollback survives kill -9 at each step of the confirm window (agent run as a real process).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { StateDir } from '../../agent/state-dir.ts';
import { Quarantine } from '../../agent/quarantine.ts';
import { readPending } from '../../agent/pending.ts';
import { createActivator } from '../../agent/activators/index.ts';
import { requireTool } from '../support/skip.ts';
import { makeLab, labFleet, OLD, NEW } from './lab-fleet.ts';
import type { AgentConfig } from '../../agent/config.ts';

const BIN = fileURLToPath(new URL('../../bin/nixfleet.js', import.meta.url));

/** Runs `nixfleet agent --once`; kills it with SIGKILL as soon as a log line has event `killAt`. */
function runAgent(
  configFile: string,
  killAt?: string,
): Promise<{ code: number | null; killed: boolean; events: Record<string, unknown>[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'agent', '--config', configFile, '--once'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const events: Record<string, unknown>[] = [];
    let buf = '';
    let killed = false;
    const guard = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          const ev = JSON.parse(line) as Record<string, unknown>;
          events.push(ev);
          if (killAt && ev['event'] === killAt && !killed) {
            killed = true;
            child.kill('SIGKILL');
          }
        } catch {
          /* not a log line */
        }
      }
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(guard);
      resolve({ code, killed, events });
    });
  });
}

async function generation(cfg: AgentConfig) {
  return createActivator(cfg.activator, new StateDir(cfg.stateDir)).currentGeneration();
}

test('kill -9 after the switch, before the ack; restart before the deadline -> confirmed; another host restarted after it -> rolled back', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const lab = makeLab(['k1', 'k2']);
  try {
    lab.publish(
      labFleet(lab, {
        prod: {
          hosts: { k1: NEW, k2: NEW },
          waves: [{ soakSeconds: 0 }],
          confirmDeadlineSeconds: 9,
          healthyPassesRequired: 3,
        },
      }),
    );
    await lab.startControlPlane();
    const cfg1 = lab.agentConfig('k1', { probeIntervalMs: 300 });
    const cfg2 = lab.agentConfig('k2', { probeIntervalMs: 300 });
    const [r1, r2] = await Promise.all([
      runAgent(lab.host('k1').configFile, 'switched'),
      runAgent(lab.host('k2').configFile, 'switched'),
    ]);
    assert.ok(r1.killed && r2.killed);
    for (const cfg of [cfg1, cfg2]) {
      assert.is((await generation(cfg)).path, NEW, 'switched before the kill');
      const p = readPending(new StateDir(cfg.stateDir));
      assert.ok(
        p && p.phase === 'switched' && p.previous.number === 1 && p.previous.path === OLD,
        'pending record on disk',
      );
    }
    // k1 restarts inside the window: the confirm window resumes and completes.
    const again1 = await runAgent(lab.host('k1').configFile);
    assert.is(again1.code, 0);
    assert.ok(
      again1.events.some((e) => e['event'] === 'confirmed'),
      JSON.stringify(again1.events.map((e) => e['event'])),
    );
    assert.is((await generation(cfg1)).path, NEW);
    assert.is(readPending(new StateDir(cfg1.stateDir)), undefined);
    // k2 restarts after the deadline: restored to the recorded generation, by number.
    const deadline = Date.parse(readPending(new StateDir(cfg2.stateDir))!.deadline);
    await new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now() + 200)));
    const again2 = await runAgent(lab.host('k2').configFile);
    assert.ok(again2.events.some((e) => e['event'] === 'magic-rollback'));
    assert.equal(await generation(cfg2), { number: 1, path: OLD });
    assert.ok(new Quarantine(new StateDir(cfg2.stateDir)).isQuarantined(NEW, Date.now()));
  } finally {
    await lab.close();
  }
});

test('kill -9 in the middle of the switch: the next run restores the recorded generation, then activates again', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const lab = makeLab(['k3'], {
    activator: () => ({
      kind: 'simulated',
      initialPath: OLD,
      unhealthy: [],
      failSwitch: [],
      inhibit: [],
      switchDelayMs: 1500,
    }),
  });
  try {
    lab.publish(
      labFleet(lab, {
        prod: { hosts: { k3: NEW }, waves: [{ soakSeconds: 0 }], confirmDeadlineSeconds: 8 },
      }),
    );
    await lab.startControlPlane();
    const cfg = lab.agentConfig('k3', { probeIntervalMs: 100 });
    const r = await runAgent(lab.host('k3').configFile, 'switching');
    assert.ok(r.killed);
    assert.is((await generation(cfg)).path, OLD);
    assert.is(readPending(new StateDir(cfg.stateDir))?.phase, 'switching');
    const again = await runAgent(lab.host('k3').configFile);
    const events = again.events.map((e) => e['event']);
    assert.ok(
      events.includes('interrupted-switch') && events.includes('confirmed'),
      JSON.stringify(events),
    );
    assert.is((await generation(cfg)).path, NEW);
  } finally {
    await lab.close();
  }
});

test.run();
