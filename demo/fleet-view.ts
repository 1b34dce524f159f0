// The operator's view of the demo fleet: the same verified read side as `nixfleet status` (the tree
// checked against the pinned root, every ack against the host key of the signed plan), then the
// reconciler's fleetView: the same pure function every agent runs.
import { loadFleetState } from '../read-side/index.ts';
import type { SignedRoot } from '../protocol/index.ts';
import type { FleetView } from '../reconciler/index.ts';

export async function readFleetView(
  treeDir: string,
  pinnedRoot: SignedRoot,
  now = Date.now(),
): Promise<FleetView> {
  return (await loadFleetState(treeDir, pinnedRoot, { now })).view;
}

const MARK: Record<string, string> = {
  pending: '·',
  activating: '>',
  confirming: '?',
  healthy: '+',
  soaked: '✓',
  converged: '✓',
  failed: '✗',
  deferred: 'z',
  offline: '-',
  blocked: '#',
};

/** A compact, stable rendering: one line per wave, hosts with a phase mark. */
export function renderFleetView(view: FleetView): string[] {
  const lines: string[] = [];
  for (const ch of view.channels) {
    for (const w of ch.waves) {
      const members = view.hosts
        .filter((h) => h.channel === ch.channel && h.wave === w.index)
        .sort((a, b) => a.host.localeCompare(b.host));
      const hosts = members.map((h) => `${MARK[h.phase] ?? '?'}${h.host}`).join(' ');
      lines.push(`  ${ch.channel.padEnd(8)} wave ${w.index} ${`[${w.state}]`.padEnd(11)} ${hosts}`);
    }
  }
  for (const b of view.budgets)
    lines.push(
      `  budget ${b.id}: ${b.inFlight}/${b.max} in flight${b.inFlightHosts.length ? ` (${b.inFlightHosts.join(', ')})` : ''}`,
    );
  return lines;
}

export const LEGEND =
  'legend: · pending  > activating  ? confirming  + healthy (soaking)  ✓ soaked/converged  ✗ failed  # blocked  - offline';
