// Each host's compliance controls as the operator views show them (status, trace, the dashboard): the
// static results and the mode from the host's VERIFIED manifest (signed by the release key), runtime
// results from the newest verified ack carrying them (signed by the host key). The same rule as an
// evidence bundle's table (protocol/evidence.ts controlsOf).
//
// Views that verify no manifest (the fleet `status`, per the read side's narrow verification) still
// see the runtime results: they are in the hosts' own verified acks. Mode and static results need the
// manifest, so those views say only what the acks prove.
import { controlsOf, type ComplianceMode, type EvidenceControl } from '../protocol/index.ts';
import { oneLine, table } from './format.ts';
import type { AckRecord } from '../reconciler/index.ts';
import type { VerifiedRelease } from './release.ts';

export interface HostComplianceView {
  mode: ComplianceMode;
  frameworks: string[];
  controls: EvidenceControl[];
}

/** null: the host's manifest was not verified by this load, or its channel names no framework. */
export function hostCompliance(
  release: VerifiedRelease,
  host: string,
  acksOldestFirst: readonly AckRecord[],
): HostComplianceView | null {
  const c = release.manifests.get(host)?.manifest.compliance;
  if (!c) return null;
  return {
    mode: c.mode,
    frameworks: c.frameworks,
    controls: controlsOf({ compliance: c }, acksOldestFirst),
  };
}

export interface FailingControl {
  framework: string;
  control: string;
  kind: 'static' | 'runtime';
  /** The excerpt or the static evidence (signed text: escape it where shown). */
  evidence: string;
}

/**
 * A host's failing controls: from its compliance view when the manifest was verified, else the runtime
 * results its latest verified ack carries (the only signed compliance facts such a view has).
 */
export function failingControls(
  view: HostComplianceView | null,
  latest: AckRecord | null,
): FailingControl[] {
  if (view !== null)
    return view.controls
      .filter((c) => c.status === 'failing')
      .map((c) => ({
        framework: c.framework,
        control: c.control,
        kind: c.kind,
        evidence: c.evidence,
      }));
  // Most acks carry no evidence: no filtered and mapped copies of nothing (a fleet view asks per host).
  const evidence = latest?.evidence;
  if (evidence === undefined || evidence.length === 0) return [];
  return evidence
    .filter((e) => !e.ok)
    .map((e) => ({
      framework: e.framework,
      control: e.control,
      kind: 'runtime' as const,
      evidence: e.excerpt,
    }));
}

export interface ChannelCompliance {
  channel: string;
  /** From verified manifests (null when this view verified none of the channel's). */
  mode: ComplianceMode | null;
  frameworks: string[];
  /** Hosts with a verified compliance manifest or runtime evidence in their latest ack. */
  hostsReporting: number;
  failing: ({ host: string } & FailingControl)[];
}

/** Per channel with any compliance fact (a verified compliance manifest, or evidence in a latest ack). */
export function channelCompliance(
  hosts: readonly { host: string; channel: string }[],
  latest: Readonly<Record<string, AckRecord>>,
  views: ReadonlyMap<string, HostComplianceView | null>,
): ChannelCompliance[] {
  const out = new Map<string, ChannelCompliance>();
  for (const h of hosts) {
    const view = views.get(h.host) ?? null;
    const ack = latest[h.host] ?? null;
    const evidence = ack?.evidence ?? [];
    if (view === null && evidence.length === 0) continue;
    let c = out.get(h.channel);
    if (!c)
      out.set(
        h.channel,
        (c = { channel: h.channel, mode: null, frameworks: [], hostsReporting: 0, failing: [] }),
      );
    c.hostsReporting++;
    if (view !== null) c.mode = view.mode;
    const frameworks = new Set([
      ...c.frameworks,
      ...(view?.frameworks ?? evidence.map((e) => e.framework)),
    ]);
    c.frameworks = [...frameworks].sort();
    for (const f of failingControls(view, ack)) c.failing.push({ host: h.host, ...f });
  }
  return [...out.values()].sort((a, b) => (a.channel < b.channel ? -1 : 1));
}

/** "cis/aide" for one failing control; the list for a host's detail column. */
export function controlNames(failing: readonly FailingControl[]): string {
  return failing.map((f) => `${f.framework}/${f.control}`).join(', ');
}

/** One host's controls as text (status --host, trace --host): signed text escaped onto its row. */
export function renderHostCompliance(host: string, view: HostComplianceView | null): string[] {
  if (view === null) return [`compliance of ${host}: its channel names no compliance framework`];
  const rows = view.controls.map((c) => [
    c.framework,
    c.control,
    c.kind,
    c.status === 'ok' ? 'ok' : c.status === 'failing' ? 'FAILING' : 'NO EVIDENCE',
    c.kind === 'static'
      ? 'signed in the release'
      : c.time === undefined
        ? '-'
        : `${c.time} (ack seq ${c.ackSeq}, exit ${c.exitCode ?? 'none'})`,
    oneLine(c.evidence),
  ]);
  return [
    `compliance of ${host}: ${view.mode}, frameworks ${view.frameworks.join(', ')}`,
    ...table(['FRAMEWORK', 'CONTROL', 'KIND', 'RESULT', 'SIGNED', 'EVIDENCE'], rows).map(
      (l) => `  ${l}`,
    ),
  ];
}

/** A channel's compliance in one line (status). */
export function channelComplianceLine(c: ChannelCompliance): string {
  const failing =
    c.failing.length === 0
      ? 'no failing control'
      : `${c.failing.length} failing: ${c.failing.map((f) => `${f.host} ${f.framework}/${f.control}`).join(', ')}`;
  return `  compliance: ${c.frameworks.join(', ')}${c.mode === null ? '' : ` (${c.mode})`}; ${c.hostsReporting} host(s) reporting; ${failing}`;
}
