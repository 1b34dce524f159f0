// Small fleets for the agent's integration tests, built on tests/support/lab.ts (the demo's lab).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab } from '../support/lab.ts';
import type { FleetInput } from '../../publisher/fleet-schema.ts';
import { createActivator, type ActivatorConfig } from '../../agent/activators/index.ts';
import { AckJournal } from '../../agent/ack-journal.ts';
import { StateDir } from '../../agent/state-dir.ts';
import { readPrivateKey } from '../../protocol/keys.ts';

export const OLD = '/nix/store/00000000000000000000000000000000-nixos-system-old';
export const NEW = '/nix/store/11111111111111111111111111111111-nixos-system-new';
export const BAD = '/nix/store/22222222222222222222222222222222-nixos-system-bad';

/** The agents' activator when BAD is the closure that comes up unhealthy (switches instantly). */
export const badIsUnhealthy = (): ActivatorConfig => ({
  kind: 'simulated',
  initialPath: OLD,
  unhealthy: [BAD],
  failSwitch: [],
  inhibit: [],
  switchDelayMs: 0,
});

export function makeLab(
  hosts: string[],
  opts: { activator?: (h: string) => ActivatorConfig; fleetName?: string } = {},
): Lab {
  return new Lab({
    dir: mkdtempSync(join(tmpdir(), 'nf-lab-')),
    fleetName: opts.fleetName ?? 'lab',
    hosts,
    initialPath: OLD,
    ...(opts.activator ? { activator: opts.activator } : {}),
  });
}

export interface ChannelSpec {
  hosts: Record<string, string>;
  waves: { count?: number; soakSeconds: number; failureThreshold?: { count: number } }[];
  confirmDeadlineSeconds?: number;
  heartbeatSeconds?: number;
  onFailure?: 'halt' | 'rollback-and-halt';
  healthyPassesRequired?: number;
  freshnessSeconds?: number;
}

/** hosts: host -> target. Channels are chained in the given order when `chain` is set. */
export function labFleet(
  lab: Lab,
  channels: Record<string, ChannelSpec>,
  opts: { chain?: boolean; budget?: number } = {},
): FleetInput {
  const fleet: FleetInput = {
    fleet: lab.opts.fleetName,
    hosts: {},
    channels: {},
    policies: {},
    channelEdges: [],
    disruptionBudgets: opts.budget
      ? [{ id: 'all', selector: { all: true }, maxInFlight: opts.budget }]
      : [],
  };
  const names = Object.keys(channels);
  for (const [ch, spec] of Object.entries(channels)) {
    for (const [h, target] of Object.entries(spec.hosts))
      fleet.hosts[h] = {
        system: 'x86_64-linux',
        channel: ch,
        target,
        hostKey: lab.hostKeyB64(h),
        tags: [],
      };
    fleet.policies[`p-${ch}`] = {
      strategy: spec.waves.length > 1 ? 'staged' : 'all-at-once',
      waves: spec.waves.map((w, i) => ({
        ...(i < spec.waves.length - 1 && w.count ? { count: w.count } : {}),
        soakSeconds: w.soakSeconds,
        failureThreshold: w.failureThreshold ?? { count: 0 },
      })),
      onFailure: spec.onFailure ?? 'halt',
      probes: [],
      healthyPassesRequired: spec.healthyPassesRequired ?? 1,
    };
    fleet.channels[ch] = {
      policy: `p-${ch}`,
      freshnessSeconds: spec.freshnessSeconds ?? 3600,
      signingIntervalSeconds: 600,
      confirmDeadlineSeconds: spec.confirmDeadlineSeconds ?? 6,
      heartbeatSeconds: spec.heartbeatSeconds ?? 1,
      offlineWindowSeconds: 600,
    };
  }
  if (opts.chain)
    fleet.channelEdges = names.slice(1).map((after, i) => ({ before: names[i]!, after }));
  return fleet;
}

/** The generation a lab host's activator says it runs now. */
export async function current(lab: Lab, host: string): Promise<string> {
  const cfg = lab.agentConfig(host);
  return (await createActivator(cfg.activator, new StateDir(cfg.stateDir)).currentGeneration())
    .path;
}

/**
 * The lab's hosts in the order of the waves the published plans place them in (the rollout spreads a
 * channel's hosts over its waves by its own order, not by name): the wave-0 host first.
 */
export function byWave(lab: Lab, hosts: readonly string[]): string[] {
  const waveOf = (h: string) => lab.cp!.view()!.hosts.get(h)!.wave;
  return [...hosts].sort((a, b) => waveOf(a) - waveOf(b));
}

/** Every ack a lab host signed, from its own journal. */
export function journal(lab: Lab, host: string) {
  const h = lab.host(host);
  return new AckJournal(new StateDir(h.stateDir), 'lab', host, readPrivateKey(h.keyFile))
    .all()
    .map((a) => a.signed);
}
