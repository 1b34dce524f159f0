// `nixfleet demo`: a 12-host fleet rolled out end to end on this machine in well under a minute.
// Real components throughout (publisher, embedded mTLS control plane + ack endpoint, the agent's cycle
// with the simulated activator); only the "system switch" is simulated.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  closeAgentConnections,
  runAgentOnce,
  type RunOutcome,
  createLogger,
  type Logger,
  Quarantine,
  StateDir,
  createActivator,
} from '../agent/index.ts';
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
  for (const h of CANARY)
    hosts[h] = {
      system: 'x86_64-linux',
      channel: 'canary',
      target: NEW,
      hostKey: lab.hostKeyB64(h),
      tags: ['edge'],
    };
  for (const h of MAIN)
    hosts[h] = {
      system: 'x86_64-linux',
      channel: 'main',
      target: NEW,
      hostKey: lab.hostKeyB64(h),
      tags: [h.startsWith('web') ? 'web' : 'app'],
    };
  // The confirm window must hold a healthy host's probe round, ack post and read-back on a busy 2-core
  // machine running 12 agents, the control plane and the publisher at once (4 s was seen to roll back a
  // healthy canary there). A healthy host confirms as soon as its ack is read back, so a long window
  // only costs time for the injected unhealthy host.
  const channel = {
    freshnessSeconds: 3600,
    signingIntervalSeconds: 600,
    confirmDeadlineSeconds: 15,
    heartbeatSeconds: 3,
    offlineWindowSeconds: 600,
    maintenanceWindows: [],
  };
  return {
    fleet: 'demo',
    hosts,
    channels: { canary: { policy: 'canary', ...channel }, main: { policy: 'staged', ...channel } },
    policies: {
      canary: {
        strategy: 'canary',
        waves: [{ count: 1, soakSeconds: 2 }, { soakSeconds: 1 }],
        onFailure: 'halt',
        probes: [],
        healthyPassesRequired: 1,
      },
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
  const say = progress(o.print, t0);
  const dir = resolve(o.dir);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  say(
    `creating the org root key, CI release key, trust root, fleet CA and ${CANARY.length + MAIN.length} host certificates`,
  );
  // Chosen once the plan is published; each host's activator config is written after that.
  const injected = { failingHost: '' };
  const lab = demoLab(dir, injected);
  const agentLogs = join(dir, 'agent-logs');
  const agents = new AgentLoops();
  try {
    const published = lab.publish(demoFleet(lab));
    say(
      `published release ${published.version}: ${published.hosts} hosts, channels canary -> main (channel edge), budget: 3 in flight`,
    );
    injected.failingHost = middleWaveHost(lab, published.version);
    const cp = await lab.startControlPlane();
    say(`embedded control plane on ${cp.url} (mTLS, one client certificate per host)`);
    say(
      `starting ${lab.hosts.size} agents (simulated activator); ${injected.failingHost} will come up unhealthy`,
    );
    o.print(`         ${LEGEND}`);
    agents.start(lab, agentLoggers(lab, agentLogs));
    const settled = await showFleetUntilSettled(
      lab,
      injected.failingHost,
      t0 + (o.timeoutMs ?? 150_000),
      o.print,
      say,
    );
    await agents.stop();
    return await summarize(lab, {
      t0,
      dir,
      settled,
      releaseVersion: published.version,
      failingHost: injected.failingHost,
      agentLogs,
    });
  } finally {
    await agents.stop();
    closeAgentConnections();
    await lab.stopControlPlane();
  }
}

/** Prints a line prefixed with the seconds since t0 (an empty message prints the time alone). */
function progress(print: (line: string) => void, t0: number): (message: string) => void {
  return (message) =>
    print(
      `${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s${message === '' ? '' : `  ${message}`}`,
    );
}

function demoLab(dir: string, injected: { failingHost: string }): Lab {
  return new Lab({
    dir,
    fleetName: 'demo',
    hosts: [...CANARY, ...MAIN],
    initialPath: OLD,
    activator: (h) => ({
      kind: 'simulated',
      initialPath: OLD,
      failSwitch: [],
      unhealthy: h === injected.failingHost ? [NEW] : [],
      inhibit: [],
      switchDelayMs: 200,
    }),
    // Request timeouts sized for a loaded machine too; every wait in a confirm window ends at its deadline anyway.
    agent: { probeIntervalMs: 200, requestTimeoutMs: 5000, retries: 1, quarantineHours: 24 },
  });
}

/** The injected failure goes to a host of main's middle wave, so the rollout visibly carries on past it. */
function middleWaveHost(lab: Lab, version: number): string {
  const mainPlan = readChannelPlan(
    readFileSync(join(lab.treeDir, channelPlanPath(version, 'main'))),
    'main',
  ).signed;
  return mainPlan.waves[1]!.hosts[0]!;
}

/** One JSON-lines log file per agent under `agentLogs`, emptied first. */
function agentLoggers(lab: Lab, agentLogs: string): Map<string, Logger> {
  mkdirSync(agentLogs, { recursive: true });
  const loggers = new Map<string, Logger>();
  for (const name of lab.hosts.keys()) {
    const file = join(agentLogs, `${name}.jsonl`);
    writeFileSync(file, '');
    loggers.set(
      name,
      createLogger(name, (line) => writeFileSync(file, line, { flag: 'a' })),
    );
  }
  return loggers;
}

/** Every host's agent cycling in this process (the real cycle, 100 ms apart) until stop(). */
class AgentLoops {
  private stopping = false;
  private readonly loops: Promise<void>[] = [];

  start(lab: Lab, loggers: Map<string, Logger>): void {
    for (const name of lab.hosts.keys()) {
      const config = lab.agentConfig(name);
      const log = loggers.get(name)!;
      this.loops.push(this.cycle(config, log));
    }
  }

  private async cycle(config: ReturnType<Lab['agentConfig']>, log: Logger): Promise<void> {
    while (!this.stopping) {
      try {
        await runAgentOnce(config, { log, reuseConnections: true });
      } catch (e) {
        log.error('cycle-failed', { reason: (e as Error).message });
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Resolves once every loop has finished its current cycle. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
  }
}

/**
 * Prints the fleet view whenever it changes, until every channel is complete or halted and the
 * failing host has quarantined its target (true), or the deadline passes (false).
 */
async function showFleetUntilSettled(
  lab: Lab,
  failingHost: string,
  deadline: number,
  print: (line: string) => void,
  say: (message: string) => void,
): Promise<boolean> {
  let last = '';
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
      say('');
      for (const l of lines) print(l);
      last = text;
    }
    const settled = view.channels.every((c) => c.state === 'complete' || c.state === 'halted');
    const quarantined =
      new Quarantine(new StateDir(lab.host(failingHost).stateDir)).active(Date.now()).length > 0;
    if (settled && quarantined) return true;
  }
  return false;
}

/** What every host ended up running, who rolled back, and whether that is the demo's expected outcome. */
async function summarize(
  lab: Lab,
  run: {
    t0: number;
    dir: string;
    settled: boolean;
    releaseVersion: number;
    failingHost: string;
    agentLogs: string;
  },
): Promise<DemoSummary> {
  const converged: string[] = [];
  const rolledBack: DemoSummary['rolledBack'] = [];
  for (const [name, h] of lab.hosts) {
    const cfg = lab.agentConfig(name);
    const gen = await createActivator(cfg.activator, new StateDir(h.stateDir)).currentGeneration();
    if (gen.path === NEW) converged.push(name);
    for (const q of new Quarantine(new StateDir(h.stateDir)).active(Date.now()))
      rolledBack.push({
        host: name,
        target: q.target,
        quarantinedUntil: q.until,
        reason: q.reason,
      });
  }
  const view = await readFleetView(lab.treeDir, lab.root);
  return {
    ok:
      run.settled &&
      converged.length === lab.hosts.size - 1 &&
      rolledBack.length === 1 &&
      rolledBack[0]!.host === run.failingHost,
    seconds: Math.round((Date.now() - run.t0) / 100) / 10,
    dir: run.dir,
    releaseVersion: run.releaseVersion,
    converged: converged.sort(),
    rolledBack,
    failingHost: run.failingHost,
    channels: view.channels.map((c) => ({ channel: c.channel, state: c.state })),
    files: {
      tree: lab.treeDir,
      trustRoot: lab.rootFile,
      pki: lab.pkiDir,
      hosts: lab.hostsDir,
      agentLogs: run.agentLogs,
      ackLog: join(lab.treeDir, '.ack-log'),
    },
  };
}
