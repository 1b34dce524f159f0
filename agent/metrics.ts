// The agent's Prometheus metrics, in node_exporter's textfile-collector format: one `*.prom` file
// replaced atomically (temp file in the same directory, then rename) at the end of every run, failed
// runs too, so the collector never reads half a file and a host that stopped verifying shows it.
//
// What a run reports (all gauges, labelled with the host):
//   nixfleet_agent_current_generation            the system profile generation running now
//   nixfleet_agent_generation_info{current,target}  store paths (target "" when this run learnt none)
//   nixfleet_agent_on_target                     1 when the current generation runs the target
//   nixfleet_agent_release_version               release of the last decision
//   nixfleet_agent_phase{phase}                  1 for the agent's phase (AGENT_PHASES), 0 for the rest
//   nixfleet_agent_last_cycle_result{result}     1 for the last run's result (CYCLE_RESULTS)
//   nixfleet_agent_last_cycle_success            1 when the last run verified the tree and decided
//   nixfleet_agent_last_cycle_duration_seconds / _timestamp_seconds
//   nixfleet_agent_quarantined_closures          closures refused for now (quarantine.json)
//   nixfleet_agent_last_verification_timestamp_seconds  last run whose tree verified (kept across runs)
import { z } from 'zod';
import {
  IsoTime,
  isoTime,
  writeFileAtomic,
  renderMetrics,
  stateSamples,
  type MetricFamily,
} from '../protocol/index.ts';
import type { StateDir } from './state-dir.ts';
import type { PendingRecord } from './pending.ts';

/** The agent's phase as it sees itself at the end of a run (not the reconciler's view of it from acks). */
export const AGENT_PHASES = [
  'converged',
  'waiting',
  'activating',
  'confirming',
  'rebooting',
  'deferred',
  'blocked',
  'failed',
  'rolled-back',
  'refused',
  'unknown',
] as const;
export type AgentPhase = (typeof AGENT_PHASES)[number];

export const CYCLE_RESULTS = [
  'decided',
  'unreachable',
  'refused',
  'not-fresh',
  'rebooting',
  'locked',
  'local-state',
  'error',
] as const;
export type CycleResult = (typeof CYCLE_RESULTS)[number];

export interface AgentMetrics {
  host: string;
  current: { number: number; path: string } | null;
  target: string | null;
  releaseVersion: number | null;
  phase: AgentPhase;
  result: CycleResult;
  durationMs: number;
  finishedAt: number;
  quarantined: number;
  lastVerifiedAt: number | null;
}

/** What the run did, as the cycle reported it: the pieces the phase is derived from. */
export interface RunFacts {
  outcome: { kind: string; decision?: string; acted?: string | null } | 'error';
  pendingPhase: PendingRecord['phase'] | null;
}

/**
 * A pending record wins (the host is mid-activation whatever this run decided); then what was done:
 * an activation that ended confirmed is converged, one that ended in a rollback or refused closure
 * says so; a decision without action is its own phase. A run that decided nothing is `unknown`.
 */
export function agentPhase(f: RunFacts): AgentPhase {
  if (f.pendingPhase === 'switching') return 'activating';
  if (f.pendingPhase === 'switched' || f.pendingPhase === 'booted') return 'confirming';
  if (f.pendingPhase === 'booting' || f.pendingPhase === 'rebooting-back') return 'rebooting';
  if (f.outcome === 'error') return 'unknown';
  if (f.outcome.kind === 'refused') return 'refused';
  if (f.outcome.kind !== 'decided') return 'unknown';
  switch (f.outcome.acted) {
    case 'confirmed':
      return 'converged';
    case 'rolled-back':
      return 'rolled-back';
    case 'failed':
      return 'failed';
    case 'unavailable':
      return 'blocked';
  }
  switch (f.outcome.decision) {
    case 'converged':
      return 'converged';
    case 'wait':
      return 'waiting';
    case 'defer':
      return 'deferred';
    case 'refuse':
      return 'refused';
    case 'rollback':
      return 'rolled-back';
    case 'activate':
      return 'activating';
  }
  return 'unknown';
}

export function cycleResult(outcome: RunFacts['outcome']): CycleResult {
  if (outcome === 'error') return 'error';
  return (CYCLE_RESULTS as readonly string[]).includes(outcome.kind)
    ? (outcome.kind as CycleResult)
    : 'error';
}

export function renderAgentMetrics(m: AgentMetrics): string {
  const host = { host: m.host };
  const g = (name: string, help: string, samples: MetricFamily['samples']): MetricFamily => ({
    name,
    help,
    type: 'gauge',
    samples,
  });
  const one = (value: number | null) => (value === null ? [] : [{ labels: host, value }]);
  return renderMetrics([
    g(
      'nixfleet_agent_current_generation',
      'System profile generation number running now.',
      one(m.current?.number ?? null),
    ),
    g(
      'nixfleet_agent_generation_info',
      'Store paths of the current generation and of the target (empty when unknown this run).',
      m.current
        ? [{ labels: { ...host, current: m.current.path, target: m.target ?? '' }, value: 1 }]
        : [],
    ),
    g(
      'nixfleet_agent_on_target',
      '1 when the current generation runs the signed target.',
      m.current && m.target ? one(m.current.path === m.target ? 1 : 0) : [],
    ),
    g(
      'nixfleet_agent_release_version',
      'Release version of the last decision.',
      one(m.releaseVersion),
    ),
    g(
      'nixfleet_agent_phase',
      "The agent's phase at the end of its last run (1 = current).",
      stateSamples(AGENT_PHASES, m.phase, 'phase', host),
    ),
    g(
      'nixfleet_agent_last_cycle_result',
      'Result of the last run (1 = this result).',
      stateSamples(CYCLE_RESULTS, m.result, 'result', host),
    ),
    g(
      'nixfleet_agent_last_cycle_success',
      '1 when the last run verified the tree and decided.',
      one(m.result === 'decided' ? 1 : 0),
    ),
    g(
      'nixfleet_agent_last_cycle_duration_seconds',
      'Duration of the last run.',
      one(m.durationMs / 1000),
    ),
    g(
      'nixfleet_agent_last_cycle_timestamp_seconds',
      'When the last run ended (Unix time).',
      one(Math.floor(m.finishedAt / 1000)),
    ),
    g(
      'nixfleet_agent_quarantined_closures',
      'Closures quarantined after a failed or rolled-back activation.',
      one(m.quarantined),
    ),
    g(
      'nixfleet_agent_last_verification_timestamp_seconds',
      'Last time a run verified the signed tree (Unix time).',
      one(m.lastVerifiedAt === null ? null : Math.floor(m.lastVerifiedAt / 1000)),
    ),
  ]);
}

/** Written for node_exporter, which runs as another user: world-readable. */
export function writeAgentMetrics(file: string, m: AgentMetrics): void {
  writeFileAtomic(file, renderAgentMetrics(m), { mode: 0o644 });
}

const LastVerification = z.strictObject({ at: IsoTime });
export const LAST_VERIFICATION_FILE = 'last-verification.json';

/**
 * The last verified run is remembered in the state directory, so a run that fails still reports when
 * the tree last verified. Volatile: after a power cut the gauge is missing until the next good run.
 */
export function rememberVerification(state: StateDir, at: number | null): number | null {
  if (at !== null) {
    state.writeVolatile(LAST_VERIFICATION_FILE, LastVerification, { at: isoTime(at) });
    return at;
  }
  try {
    const v = state.read(LAST_VERIFICATION_FILE, LastVerification, 1024);
    return v ? Date.parse(v.at) : null;
  } catch {
    return null; // a damaged file only loses the gauge
  }
}
