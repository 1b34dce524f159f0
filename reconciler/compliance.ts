// The compliance gate (issue 13), pure like the rest of the reconciler. Two rules, both only in an
// `enforce` channel (a `permissive` one records and shows, and gates nothing):
// - a host's phase: its healthy/heartbeat ack counts as health (soak, converged) only when its signed
//   evidence shows every runtime control of the channel's plan passing; a failing control is a signed
//   failure report (it counts against the wave's threshold), a missing one only withholds the soak.
// - its own manifest: a failing static control (which the publisher refuses to sign in `enforce`) is
//   refused, should a release have been signed without the publisher's check.
import type { ChannelCompliance, ControlEvidence, HostManifest } from '../protocol/index.ts';
import type { AckRecord } from './types.ts';

/** `framework/control`: how controls are named in reasons, evidence tables and logs. */
export function controlName(c: { framework: string; control: string }): string {
  return `${c.framework}/${c.control}`;
}

export interface EvidenceVerdict {
  /** Required controls whose evidence failed (the host signed that they fail). */
  failing: ControlEvidence[];
  /** Required controls without any evidence (`framework/control`). */
  missing: string[];
}

/** Judges evidence against the runtime controls a plan requires; evidence for other controls is ignored. */
export function judgeEvidence(
  required: readonly { framework: string; control: string }[],
  evidence: readonly ControlEvidence[] | undefined,
): EvidenceVerdict {
  const byName = new Map((evidence ?? []).map((e) => [controlName(e), e]));
  const failing: ControlEvidence[] = [];
  const missing: string[] = [];
  for (const r of required) {
    const e = byName.get(controlName(r));
    if (!e) missing.push(controlName(r));
    else if (!e.ok) failing.push(e);
  }
  return { failing, missing };
}

/** "auditd-running (exit 3: inactive)" for each failing control, joined: the words of reasons and notes. */
export function describeFailing(failing: readonly ControlEvidence[]): string {
  return failing
    .map((e) => {
      const how = e.exitCode === null ? 'did not exit' : `exit ${e.exitCode}`;
      return `${controlName(e)} (${how}${e.excerpt ? `: ${e.excerpt}` : ''})`;
    })
    .join('; ');
}

/** Marks a note whose soak the gate withheld (context.ts shows the note instead of the soak progress). */
export const SOAK_NOT_COUNTED = 'soak not counted';
/** Starts the note of a failure the gate derived from signed evidence. */
const FAILED_NOTE = 'compliance (enforce): ';

/**
 * For a halted wave's reason: the failed hosts whose failure is a failing runtime control, with the
 * controls ("; web-01: base/auditd-running (exit 3: inactive)"), or "" when none is.
 */
export function complianceFailures(
  hosts: readonly string[],
  phases: readonly { phase: string; note: string }[],
): string {
  const parts: string[] = [];
  phases.forEach((ph, i) => {
    if (ph.phase === 'failed' && ph.note.startsWith(FAILED_NOTE))
      parts.push(`${hosts[i]}: ${ph.note.slice(FAILED_NOTE.length)}`);
  });
  if (parts.length === 0) return '';
  const shown = parts.slice(0, 5).join('; ');
  return `; failing compliance controls (enforce): ${shown}${parts.length > 5 ? `; and ${parts.length - 5} more` : ''}`;
}

/** The subset of a derived phase the gate may change (reconciler/phase.ts DerivedPhase). */
interface PhaseFields {
  phase: string;
  note: string;
  inFlight: boolean;
  done: boolean;
  settled: boolean;
  failure: 'reported' | 'presumed' | null;
}

/**
 * The phase-level gate: `derived` is what the ack says without compliance; `mine` whether the ack is of
 * this rollout and target. Only health claims change (soaked, healthy on target, converged).
 */
export function complianceGatedPhase<P extends PhaseFields>(
  compliance: ChannelCompliance | undefined,
  ack: AckRecord,
  mine: boolean,
  derived: P,
): P {
  if (compliance?.mode !== 'enforce' || compliance.runtime.length === 0) return derived;
  if (ack.kind !== 'healthy' && ack.kind !== 'heartbeat') return derived;
  if (derived.phase !== 'soaked' && derived.phase !== 'healthy' && derived.phase !== 'converged')
    return derived;
  const v = judgeEvidence(compliance.runtime, ack.evidence);
  if (v.failing.length === 0 && v.missing.length === 0) return derived;
  if (mine && v.failing.length > 0)
    // Signed by the host: its target fails a control of an enforce channel. A failure report.
    return {
      ...derived,
      phase: 'failed',
      note: `${FAILED_NOTE}${describeFailing(v.failing)}`,
      inFlight: false,
      done: true,
      settled: false,
      failure: 'reported',
    };
  const why =
    v.failing.length > 0
      ? `its evidence shows ${describeFailing(v.failing)} failing`
      : `no evidence for ${v.missing.join(', ')}`;
  if (!mine)
    // An ack of another rollout proves nothing about this one's controls: the host has not started it.
    return {
      ...derived,
      phase: 'pending',
      note: `runs the target, but ${why} (compliance, enforce)`,
      inFlight: false,
      done: false,
      settled: false,
    };
  // Started this rollout: in flight until its evidence (or a failure) arrives; its soak does not count yet.
  return {
    ...derived,
    phase: 'healthy',
    note: `${derived.note}; ${SOAK_NOT_COUNTED}: ${why} (compliance, enforce)`,
    inFlight: true,
    done: false,
    settled: false,
  };
}

/**
 * The decision-level gate for the host's own manifest: in `enforce`, a failing static control means the
 * release should never have been signed (the publisher refuses it); refuse it here too. Null: no objection.
 */
export function staticControlRefusal(m: HostManifest): string | null {
  const c = m.compliance;
  if (c?.mode !== 'enforce') return null;
  const failing = c.static.filter((s) => !s.ok);
  if (failing.length === 0) return null;
  return `the manifest fails static compliance control${failing.length === 1 ? '' : 's'} of channel ${m.channel} (enforce): ${failing.map((s) => `${controlName(s)}: ${s.evidence}`).join('; ')}; refusing ${m.target}`;
}
