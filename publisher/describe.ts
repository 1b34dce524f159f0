// The resolved view of a valid fleet, as `nixfleet validate --json` prints it and as the golden fixtures
// (tests/fixtures/fleets/golden/*/expected.json) record it.
import type { ValidFleet } from './validate.ts';
import type { Threshold, Selector, StaticControlResult } from '../protocol/index.ts';
import { channelCompliance, hostCompliance } from './compliance.ts';

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
      /** Only for a channel that names compliance frameworks. */
      compliance?: {
        mode: string;
        frameworks: string[];
        /** `framework/control` of each runtime control the agents run. */
        runtime: string[];
        /** Each host's static controls as CI evaluated them (signed into its manifest). */
        static: Record<string, StaticControlResult[]>;
      };
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
      ...complianceView(v, name, c.waves),
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

function complianceView(
  v: ValidFleet,
  channel: string,
  waves: readonly { hosts: readonly string[] }[],
): Pick<ResolutionView['channels'][string], 'compliance'> {
  const c = channelCompliance(v.fleet, channel);
  if (!c) return {};
  const hosts = waves.flatMap((w) => w.hosts).sort();
  return {
    compliance: {
      mode: c.mode,
      frameworks: c.frameworks,
      runtime: c.runtime.map((r) => `${r.framework}/${r.control}`),
      static: Object.fromEntries(hosts.map((h) => [h, hostCompliance(v.fleet, h)?.static ?? []])),
    },
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
    if (c.compliance) {
      const { mode, frameworks, runtime, static: byHost } = c.compliance;
      lines.push(
        `  compliance ${mode}: ${frameworks.join(', ')}; runtime controls: ${runtime.join(', ') || '(none)'}`,
      );
      for (const [host, results] of Object.entries(byHost))
        for (const r of results)
          lines.push(
            `  ${r.ok ? 'pass' : 'FAIL'} ${host} ${r.framework}/${r.control}: ${r.evidence}`,
          );
    }
  }
  for (const b of view.budgets)
    lines.push(`budget ${b.id}: at most ${b.maxInFlight} of ${b.hosts.length} hosts in flight`);
  for (const w of view.warnings) lines.push(`warning: ${w}`);
  return lines.join('\n');
}
