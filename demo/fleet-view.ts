// The operator's view of the demo fleet: reads the published documents and the acks the control plane
// publishes, verifies each ack against the host key of the signed plan, and runs the reconciler's
// fleetView over them: the same pure function every agent runs.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { acksDirOf, hostKeysOfPlans, readTreeAcks } from '../operator/load.ts';
import { channelPlanPath, budgetsPath, TIMESTAMP_PATH } from '../protocol/layout.ts';
import { readBudgets, readChannelPlan, readRevocations, readTimestamp } from '../protocol/verify/documents.ts';
import type { ChannelPlan } from '../protocol/schemas/release.ts';
import { fleetView, latestAcks, type FleetView } from '../reconciler/index.ts';

export function readFleetView(treeDir: string, now = Date.now()): FleetView {
  const ts = readTimestamp(readFileSync(join(treeDir, TIMESTAMP_PATH)), TIMESTAMP_PATH).signed;
  const v = ts.release.version;
  const revocations = readRevocations(readFileSync(join(treeDir, ts.revocations.file.path)), ts.revocations.file.path).signed;
  const plans: Record<string, ChannelPlan> = {};
  for (const f of readdirSync(join(treeDir, 'releases', String(v), 'channels'))) {
    const ch = f.replace(/\.json$/, '');
    plans[ch] = readChannelPlan(readFileSync(join(treeDir, channelPlanPath(v, ch))), channelPlanPath(v, ch)).signed;
  }
  const budgets = readBudgets(readFileSync(join(treeDir, budgetsPath(v))), budgetsPath(v)).signed;
  // A bad ack is simply not counted (operator/acks.ts verifies each against the signed plan's host key).
  const { acks } = readTreeAcks(acksDirOf(treeDir), { fleet: ts.fleet, hostKeys: hostKeysOfPlans(plans) });
  return fleetView({ now, plans, budgets, revocations, acks: latestAcks(acks) });
}

const MARK: Record<string, string> = {
  pending: '·', activating: '>', confirming: '?', healthy: '+', soaked: '✓', converged: '✓', failed: '✗', deferred: 'z', offline: '-', blocked: '#',
};

/** A compact, stable rendering: one line per wave, hosts with a phase mark. */
export function renderFleetView(view: FleetView): string[] {
  const byHost = new Map(view.hosts.map((h) => [h.host, h]));
  const lines: string[] = [];
  for (const ch of view.channels) {
    for (const w of ch.waves) {
      const members = view.hosts.filter((h) => h.channel === ch.channel && h.wave === w.index).sort((a, b) => a.host.localeCompare(b.host));
      const hosts = members.map((h) => `${MARK[h.phase] ?? '?'}${h.host}`).join(' ');
      lines.push(`  ${ch.channel.padEnd(8)} wave ${w.index} ${`[${w.state}]`.padEnd(11)} ${hosts}`);
    }
  }
  void byHost;
  for (const b of view.budgets) lines.push(`  budget ${b.id}: ${b.inFlight}/${b.max} in flight${b.inFlightHosts.length ? ` (${b.inFlightHosts.join(', ')})` : ''}`);
  return lines;
}

export const LEGEND = 'legend: · pending  > activating  ? confirming  + healthy (soaking)  ✓ soaked/converged  ✗ failed  # blocked  - offline';
