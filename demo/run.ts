// `nixfleet demo`: a 12-host fleet rolled out end to end on this machine in well under a minute.
// Real components throughout (publisher, embedded mTLS control plane + ack endpoint, the agent's cycle
// with the simulated activator); only the "system switch" is simulated.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { closeAgentConnections, runAgentOnce, type RunOutcome, createLogger, type Logger, Quarantine, StateDir, createActivator } from '../agent/index.ts';
import { channelPlanPath, readChannelPlan } from '../protocol/index.ts';
import type { FleetInput } from '../publisher/index.ts';
import { Lab } from './lab.ts';
import { LEGEND, readFleetView, renderFleetView } from './fleet-view.ts';

const OLD = '/nix/store/0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a-nixos-system-24.05';
const NEW = '/nix/store/1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b-nixos-system-24.11';

const CANARY = ['edge-01', 'edge-02', 'edge-03', 'edge-04'];
const MAIN = ['web-01', 'web-02', 'web-03', 'web-04', 'web-05', 'web-06', 'app-01', 'app-02'];

export interface DemoOptions {
  dir: string;
  /** Where progress goes (one string per line). */
  print: (line: string) => void;
  timeoutMs?: number;
}

export interface DemoSummary {
  ok: boolean;
  seconds: number;
  dir: string;
  releaseVersion: number;
  converged: string[];
  rolledBack: { host: string; target: string; quarantinedUntil: string; reason: string }[];
  failingHost: string;
  channels: { channel: string; state: string }[];
  files: Record<string, string>;
}

function demoFleet(lab: Lab): FleetInput {
  const hosts: FleetInput['hosts'] = {};
  for (const h of CANARY) hosts[h] = { system: 'x86_64-linux', channel: 'canary', target: NEW, hostKey: lab.hostKeyB64(h), tags: ['edge'] };
  for (const h of MAIN) hosts[h] = { system: 'x86_64-linux', channel: 'main', target: NEW, hostKey: lab.hostKeyB64(h), tags: [h.startsWith('web') ? 'web' : 'app'] };
  // The confirm window must hold a healthy host's probe round, ack post and read-back on a busy 2-core
  // machine running 12 agents, the control plane and the publisher at once (4 s was seen to roll back a
  // healthy canary there). A healthy host confirms as soon as its ack is read back, so a long window
  // only costs time for the injected unhealthy host.
  const channel = { freshnessSeconds: 3600, signingIntervalSeconds: 600, confirmDeadlineSeconds: 15, heartbeatSeconds: 3, offlineWindowSeconds: 600, maintenanceWindows: [] };
  return {
    fleet: 'demo',
    hosts,
    channels: { canary: { policy: 'canary', ...channel }, main: { policy: 'staged', ...channel } },
    policies: {
      canary: { strategy: 'canary', waves: [{ count: 1, soakSeconds: 2 }, { soakSeconds: 1 }], onFailure: 'halt', probes: [], healthyPassesRequired: 1 },
      staged: {
        strategy: 'staged',
        // One failure per wave is tolerated, so the demo's injected bad host is rolled back and
        // quarantined while the rest of the rollout carries on.
        waves: [
          { count: 2, soakSeconds: 2, failureThreshold: { count: 1 } },
          { count: 3, soakSeconds: 1, failureThreshold: { count: 1 } },
          { soakSeconds: 0, failureThreshold: { count: 1 } },
        ],
        onFailure: 'halt',
        probes: [],
        healthyPassesRequired: 1,
      },
    },
    channelEdges: [{ before: 'canary', after: 'main' }],
    disruptionBudgets: [{ id: 'fleet', selector: { all: true }, maxInFlight: 3 }],
  };
}

export async function runDemo(o: DemoOptions): Promise<DemoSummary> {
  const t0 = Date.now();
  const dir = resolve(o.dir);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s`;
  o.print(`${elapsed()}  creating the org root key, CI release key, trust root, fleet CA and ${CANARY.length + MAIN.length} host certificates`);
  let failingHost = '';
  const lab = new Lab({
    dir,
    fleetName: 'demo',
    hosts: [...CANARY, ...MAIN],
    initialPath: OLD,
    activator: (h) => ({ kind: 'simulated', initialPath: OLD, failSwitch: [], unhealthy: h === failingHost ? [NEW] : [], inhibit: [], switchDelayMs: 200 }),
    // Request timeouts sized for a loaded machine too; every wait in a confirm window ends at its deadline anyway.
    agent: { probeIntervalMs: 200, requestTimeoutMs: 5000, retries: 1, quarantineHours: 24 },
  });
  const agentLogs = join(dir, 'agent-logs');
  mkdirSync(agentLogs, { recursive: true });
  let stop = false;
  const loops: Promise<void>[] = [];
  try {
    const published = lab.publish(demoFleet(lab));
    o.print(`${elapsed()}  published release ${published.version}: ${published.hosts} hosts, channels canary -> main (channel edge), budget: 3 in flight`);
    // The injected failure goes to a host of main's middle wave, so the rollout visibly carries on past it.
    const mainPlan = readChannelPlan(readFileSync(join(lab.treeDir, channelPlanPath(published.version, 'main'))), 'main').signed;
    failingHost = mainPlan.waves[1]!.hosts[0]!;
    const cp = await lab.startControlPlane();
    o.print(`${elapsed()}  embedded control plane on ${cp.url} (mTLS, one client certificate per host)`);
    o.print(`${elapsed()}  starting ${lab.hosts.size} agents (simulated activator); ${failingHost} will come up unhealthy`);
    o.print(`         ${LEGEND}`);

    const loggers = new Map<string, Logger>();
    for (const name of lab.hosts.keys()) {
      const file = join(agentLogs, `${name}.jsonl`);
      writeFileSync(file, '');
      const { appendFileSync } = await import('node:fs');
      loggers.set(name, createLogger(name, (line) => appendFileSync(file, line)));
    }
    const outcomes = new Map<string, RunOutcome>();
    for (const name of lab.hosts.keys()) {
      const config = lab.agentConfig(name);
      loops.push(
        (async () => {
          while (!stop) {
            try {
              outcomes.set(name, await runAgentOnce(config, { log: loggers.get(name)!, reuseConnections: true }));
            } catch (e) {
              loggers.get(name)!.error('cycle-failed', { reason: (e as Error).message });
            }
            await new Promise((r) => setTimeout(r, 100));
          }
        })(),
      );
    }

    let last = '';
    const deadline = t0 + (o.timeoutMs ?? 150_000);
    let done = false;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 300));
      let view;
      try {
        view = await readFleetView(lab.treeDir, lab.root);
      } catch {
        continue;
      }
      const lines = renderFleetView(view);
      const text = lines.join('\n');
      if (text !== last) {
        o.print(`${elapsed()}`);
        for (const l of lines) o.print(l);
        last = text;
      }
      const settled = view.channels.every((c) => c.state === 'complete' || c.state === 'halted');
      const quarantined = new Quarantine(new StateDir(lab.host(failingHost).stateDir)).active(Date.now()).length > 0;
      if (settled && quarantined) {
        done = true;
        break;
      }
    }
    stop = true;
    await Promise.all(loops);

    const converged: string[] = [];
    const rolledBack: DemoSummary['rolledBack'] = [];
    for (const [name, h] of lab.hosts) {
      const cfg = lab.agentConfig(name);
      const gen = await createActivator(cfg.activator, new StateDir(h.stateDir)).currentGeneration();
      if (gen.path === NEW) converged.push(name);
      for (const q of new Quarantine(new StateDir(h.stateDir)).active(Date.now())) rolledBack.push({ host: name, target: q.target, quarantinedUntil: q.until, reason: q.reason });
    }
    const view = await readFleetView(lab.treeDir, lab.root);
    const summary: DemoSummary = {
      ok: done && converged.length === lab.hosts.size - 1 && rolledBack.length === 1 && rolledBack[0]!.host === failingHost,
      seconds: Math.round((Date.now() - t0) / 100) / 10,
      dir,
      releaseVersion: published.version,
      converged: converged.sort(),
      rolledBack,
      failingHost,
      channels: view.channels.map((c) => ({ channel: c.channel, state: c.state })),
      files: {
        tree: lab.treeDir,
        trustRoot: lab.rootFile,
        pki: lab.pkiDir,
        hosts: lab.hostsDir,
        agentLogs,
        ackLog: join(lab.treeDir, '.ack-log'),
      },
    };
    return summary;
  } finally {
    stop = true;
    await Promise.all(loops);
    closeAgentConnections();
    await lab.stopControlPlane();
  }
}
