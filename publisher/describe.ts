// The resolved view of a valid fleet, as `nixfleet validate --json` prints it and as the golden fixtures
// (tests/fixtures/fleets/golden/*/expected.json) record it.
import type { ValidFleet } from './validate.ts';
import type { Threshold, Selector } from '../protocol/index.ts';

export interface ResolutionView {
  fleet: string;
  hosts: number;
  channels: Record<
    string,
    {
      policy: string;
      strategy: string;
      onFailure: string;
      reboot: string;
      deferredHosts: string;
      rolloutId: string;
      gatedBy: string[];
      hostEdges: { before: string; after: string }[];
      waves: {
        index: number;
        membership: string;
        soakSeconds: number;
        failureThreshold: Threshold;
        offlineExcuseLimit: number;
        hosts: string[];
      }[];
    }
  >;
  budgets: {
    id: string;
    selector: Selector;
    maxInFlight: number;
    maxInFlightPct: number | null;
    hosts: string[];
  }[];
  warnings: string[];
}

export function describeResolution(v: ValidFleet): ResolutionView {
  const channels: ResolutionView['channels'] = {};
  for (const name of Object.keys(v.resolved.channels).sort()) {
    const c = v.resolved.channels[name]!;
    channels[name] = {
      policy: c.policy,
      strategy: c.strategy,
      onFailure: c.onFailure,
      reboot: c.reboot,
      deferredHosts: c.deferredHosts,
      rolloutId: c.rolloutId,
      gatedBy: c.gatedBy,
      hostEdges: c.hostEdges,
      waves: c.waves.map((w) => ({
        index: w.index,
        membership: w.membership,
        soakSeconds: w.soakSeconds,
        failureThreshold: w.failureThreshold,
        offlineExcuseLimit: w.offlineExcuseLimit,
        hosts: w.hosts,
      })),
    };
  }
  return {
    fleet: v.fleet.fleet,
    hosts: Object.keys(v.fleet.hosts).length,
    channels,
    budgets: v.resolved.budgets,
    warnings: v.warnings,
  };
}

/** Human summary: one line per wave. */
export function formatResolution(view: ResolutionView): string {
  const lines = [
    `fleet ${view.fleet}: ${view.hosts} hosts, ${Object.keys(view.channels).length} channels`,
  ];
  for (const [name, c] of Object.entries(view.channels)) {
    const gate = c.gatedBy.length ? `, after ${c.gatedBy.join(', ')}` : '';
    lines.push(
      `channel ${name} (policy ${c.policy}, ${c.strategy}, on failure ${c.onFailure}, reboot ${c.reboot}, deferred hosts ${c.deferredHosts}${gate})`,
      `  rollout ${c.rolloutId}`,
    );
    for (const w of c.waves) {
      const shown =
        w.hosts.length > 8
          ? `${w.hosts.slice(0, 8).join(' ')} ... (+${w.hosts.length - 8})`
          : w.hosts.join(' ');
      lines.push(
        `  wave ${w.index} [${w.membership}] ${w.hosts.length} host${w.hosts.length === 1 ? '' : 's'}, soak ${w.soakSeconds}s: ${shown || '(none)'}`,
      );
    }
    for (const e of c.hostEdges) lines.push(`  edge ${e.before} -> ${e.after}`);
  }
  for (const b of view.budgets)
    lines.push(`budget ${b.id}: at most ${b.maxInFlight} of ${b.hosts.length} hosts in flight`);
  for (const w of view.warnings) lines.push(`warning: ${w}`);
  return lines.join('\n');
}
