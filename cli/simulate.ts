// `nixfleet simulate`: drive a synthetic fleet through the real reconciler in the deterministic simulator
// and print the rollout summary next to the theoretical minimum.
import {
  EXIT_OK,
  EXIT_REFUSED,
  UsageError,
  output,
  parseCommandArgs,
  type Command,
} from './command.ts';
import { simulate, syntheticFleet, humanDuration } from '../reconciler/index.ts';

function int(
  name: string,
  value: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value))
    throw new UsageError(`--${name} must be a whole number, got "${value}"`);
  const n = Number(value);
  if (n < min || n > max)
    throw new UsageError(`--${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

function ratio(name: string, value: string | undefined): number {
  if (value === undefined) return 0;
  const n = Number(value);
  if (!/^(0|1|0?\.\d+)$/.test(value) || Number.isNaN(n))
    throw new UsageError(`--${name} must be a number between 0 and 1, got "${value}"`);
  return n;
}

const command: Command = {
  name: 'simulate',
  summary: 'simulate a rollout of a synthetic fleet through the real reconciler',
  help: `Usage: nixfleet simulate [--hosts N] [--channels C] [--waves W] [--seed S] [options] [--json]

Runs N simulated agents (virtual clock, deterministic for a seed; acks become visible at whole seconds)
through the real reconciler and prints
how long the rollout took against the theoretical minimum (per wave: poll interval + slowest activation +
probes + soak, summed along the longest chain of channels).

Options:
  --hosts N          hosts (default 100, max 200000)
  --channels C       channels, hosts dealt round-robin (default 3)
  --waves W          waves per channel (default 4)
  --seed S           random seed (default 1)
  --poll SECONDS     poll interval (default 60)
  --soak SECONDS     soak time of every wave (default 600)
  --chain            gate each channel on the previous one (channel edges)
  --budget-pct P     one fleet-wide disruption budget of P percent
  --failure-rate F   probability an activation fails its probes (0..1, default 0)
  --failure-threshold-pct P
                     each wave tolerates P percent failed hosts before halting (default: none)
  --ack-delay S      acks become visible to others after 0..S seconds (default 0)
  --skew S           host clocks off by -S, 0 or +S seconds (default 0)
  --quantum S        polls and ack visibility land on multiples of S seconds (default 1): hosts polling
                     in one quantum share one fleet evaluation; for 100,000-host runs (adds <= S s of lag)
  --json             machine-readable summary

Exit status: 0 when the rollout converged, 1 when it did not (halted or stuck), 2 on usage errors.`,
  async run(argv) {
    const { values } = parseCommandArgs(argv, {
      hosts: { type: 'string' },
      channels: { type: 'string' },
      waves: { type: 'string' },
      seed: { type: 'string' },
      poll: { type: 'string' },
      soak: { type: 'string' },
      chain: { type: 'boolean' },
      'budget-pct': { type: 'string' },
      'failure-rate': { type: 'string' },
      'ack-delay': { type: 'string' },
      skew: { type: 'string' },
      json: { type: 'boolean' },
      quantum: { type: 'string' },
      'failure-threshold-pct': { type: 'string' },
    });
    const hosts = int('hosts', values.hosts, 100, 1, 200_000);
    const channels = int('channels', values.channels, 3, 1, 100);
    const waves = int('waves', values.waves, 4, 1, 100);
    const seed = int('seed', values.seed, 1, 0, 2 ** 32 - 1);
    const poll = int('poll', values.poll, 60, 1, 86_400);
    const soak = int('soak', values.soak, 600, 0, 7 * 86_400);
    const budgetPct =
      values['budget-pct'] === undefined
        ? null
        : int('budget-pct', values['budget-pct'], 0, 1, 100);
    const ackDelay = int('ack-delay', values['ack-delay'], 0, 0, 3600);
    const skew = int('skew', values.skew, 0, 0, 59);
    const quantum = int('quantum', values.quantum, 1, 1, 60);
    const thresholdPct =
      values['failure-threshold-pct'] === undefined
        ? null
        : int('failure-threshold-pct', values['failure-threshold-pct'], 0, 0, 100);
    const failureRate = ratio('failure-rate', values['failure-rate']);
    const fleet = syntheticFleet({
      hosts,
      channels,
      waves,
      soakSeconds: soak,
      chain: values.chain ?? false,
      budgetPct,
      heartbeatSeconds: poll,
      ...(thresholdPct === null ? {} : { failureThreshold: { percent: thresholdPct } }),
    });
    const began = performance.now();
    const r = simulate({
      seed,
      fleet,
      pollSeconds: poll,
      failureRate,
      ackDelaySeconds: [0, ackDelay],
      clockSkewSeconds: skew,
      batchVisibility: true,
      timeQuantumSeconds: quantum,
      recordHistory: false,
    });
    const wallMs = Math.round(performance.now() - began);
    const summary = {
      hosts,
      channels,
      waves,
      seed,
      quantumSeconds: quantum,
      converged: r.converged,
      completedSeconds: r.completedAt,
      theoreticalMinimumSeconds: r.theoreticalMinimum,
      ratioToMinimum:
        r.completedAt === null ? null : Number((r.completedAt / r.theoreticalMinimum).toFixed(3)),
      activations: r.starts.length,
      failures: r.failures.length,
      rollbacks: r.rollbacks.length,
      decisions: r.decisions,
      acks: r.ackCount,
      violations: r.violations,
      budgets: r.budgets,
      channelStates: r.finalView.channels.map((c) => ({
        channel: c.channel,
        state: c.state,
        reason: c.reason,
      })),
      wallMs,
    };
    output(values.json ?? false, summary, () => {
      const lines = [
        `simulated ${hosts} hosts, ${channels} channel(s) x ${waves} wave(s), seed ${seed}`,
        r.converged
          ? `converged after ${humanDuration(r.completedAt!)} (${r.completedAt} s); ` +
            `theoretical minimum ${humanDuration(r.theoreticalMinimum)} ` +
            `(${r.theoreticalMinimum} s): ${summary.ratioToMinimum}x`
          : `did NOT converge (stopped after ${humanDuration(r.endedAt)}); theoretical minimum ${humanDuration(r.theoreticalMinimum)}`,
        `${r.starts.length} activations, ${r.failures.length} failed ` +
          `probes, ${r.rollbacks.length} rollbacks, ${r.decisions} reconciler ` +
          `decisions, ${r.ackCount} acks`,
        ...Object.entries(r.budgets).map(
          ([id, b]) => `budget ${id}: max ${b.max}, highest in flight ${b.observed}`,
        ),
        ...r.finalView.channels.map((c) => `channel ${c.channel}: ${c.state} - ${c.reason}`),
        r.violations.length === 0
          ? 'property checks: none violated'
          : `PROPERTY VIOLATIONS (${r.violations.length}):\n  ${r.violations.slice(0, 10).join('\n  ')}`,
        `simulator wall time ${wallMs} ms`,
      ];
      return lines.join('\n');
    });
    return r.converged && r.violations.length === 0 ? EXIT_OK : EXIT_REFUSED;
  },
};
export default command;
