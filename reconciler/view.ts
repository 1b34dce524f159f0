// fleetView(): every host's phase, every wave's and channel's state, and why each waiting host waits.
// Runs the same gate chain as decide(), so the dashboard and the host agree on every reason.
import { FleetContext } from './context.ts';
import { describePhase } from './phase.ts';
import { listWithMore, waveLabel } from './words.ts';
import type {
  ChannelView,
  FleetInput,
  FleetView,
  HostPhase,
  HostView,
  WaveState,
  WaveView,
  BudgetView,
} from './types.ts';

function zeroCounts(): Record<HostPhase, number> {
  return {
    pending: 0,
    activating: 0,
    confirming: 0,
    healthy: 0,
    soaked: 0,
    converged: 0,
    failed: 0,
    deferred: 0,
    offline: 0,
    blocked: 0,
  };
}

export interface FleetViewOptions {
  /** Leave out the per-host list (the waves and channels still count every host). */
  hosts?: boolean;
  /**
   * Only these channels' views (and their hosts), and only the budgets one of their hosts is in. Other
   * channels are still evaluated where a shown channel's gates read them (a channel edge), so `acks`
   * needs only the hosts read-side's viewScope names: what a one-host view verifies.
   */
  channels?: readonly string[];
  /**
   * The per-host list only for these hosts (a one-host view prints one row); the waves, channels and
   * budgets still count every host.
   */
  only?: ReadonlySet<string>;
}

/** What a deferred host does to its wave, under the channel's signed deferredHosts policy. */
function deferredEffect(channel: string, wave: number, excused: boolean): string {
  return excused
    ? `waits to reboot into its target; excused for ${waveLabel(wave)} of channel ${channel} (deferredHosts: excuse), still holding its disruption-budget slot`
    : `waits to reboot into its target; ${waveLabel(wave)} of channel ${channel} waits for it (deferredHosts: hold) and it holds its disruption-budget slot`;
}

export function fleetView(input: FleetInput, options: FleetViewOptions = {}): FleetView {
  const ctx = new FleetContext(input);
  const withHosts = options.hosts ?? true;
  const channels: ChannelView[] = [];
  const hosts: HostView[] = [];
  const shown = options.channels === undefined ? null : new Set(options.channels);
  for (const name of Object.keys(input.plans).sort()) {
    if (shown !== null && !shown.has(name)) continue;
    const ce = ctx.channel(name);
    const edgeHold = ctx.channelEdgeHold(name);
    const waves: WaveView[] = [];
    for (const w of ce.waves) {
      const counts = zeroCounts();
      let onlyHealthyBlocking = true;
      for (const pos of w.blocking)
        if (w.phases[pos]!.phase !== 'healthy') onlyHealthyBlocking = false;
      for (const [pos, ph] of w.phases.entries()) {
        counts[ph.phase]++;
        if (!withHosts) continue;
        const host = w.wave.hosts[pos]!;
        if (options.only !== undefined && !options.only.has(host)) continue;
        const hold = ph.phase === 'pending' ? ctx.gatesFor(name, host) : null;
        hosts.push({
          host,
          channel: name,
          wave: w.index,
          target: ce.plan.hosts[host]!.target,
          phase: ph.phase,
          detail: describePhase(ph, input.now),
          lastAck: ph.lastAck,
          healthySeconds: ph.healthySeconds,
          gate: hold?.gate ?? null,
          reason:
            hold?.reason ??
            (ph.phase === 'pending'
              ? 'every gate passed: starts at its next poll'
              : ph.phase === 'deferred'
                ? deferredEffect(name, w.index, w.excused[pos]!)
                : null),
          excused: w.excused[pos]!,
        });
      }
      let state: WaveState;
      if (w.halted || (ce.halted && !w.complete)) state = 'halted';
      else if (w.complete) state = 'complete';
      else if (edgeHold !== null || ce.firstIncomplete < w.index) state = 'waiting';
      else if (onlyHealthyBlocking) state = 'soaking';
      else state = 'active';
      const excusedDeferred = w.wave.hosts.filter(
        (_, pos) => w.excused[pos] && w.phases[pos]!.phase === 'deferred',
      );
      const completeText =
        `${waveLabel(w.index)} of channel ${name} is ` +
        `complete${excusedDeferred.length ? ` (deferred, excused by deferredHosts: excuse: ${listWithMore(excusedDeferred, 5)})` : ''}`;
      const reason =
        state === 'complete'
          ? completeText
          : state === 'halted'
            ? ctx.haltedReason(ce)
            : ctx.waveReason(ce, w.index).text;
      waves.push({
        channel: name,
        index: w.index,
        state,
        hosts: w.wave.hosts.length,
        counts,
        failures: w.failures,
        allowedFailures: w.allowedFailures,
        soakSeconds: w.wave.soakSeconds,
        blockingHosts: w.blocking.slice(0, 10).map((p) => w.wave.hosts[p]!),
        reason,
      });
    }
    const state = ce.halted
      ? 'halted'
      : ce.complete
        ? 'complete'
        : edgeHold !== null
          ? 'gated'
          : 'in-progress';
    const reason =
      state === 'halted'
        ? ctx.haltedReason(ce)
        : state === 'complete'
          ? `rollout of channel ${name} is complete`
          : state === 'gated'
            ? edgeHold!.reason
            : ctx.waveReason(ce, ce.firstIncomplete).text;
    channels.push({
      channel: name,
      rolloutId: ce.plan.rolloutId,
      releaseVersion: ce.plan.releaseVersion,
      state,
      currentWave: ce.firstIncomplete,
      reboot: ce.plan.reboot ?? 'never',
      deferredHosts: ce.plan.deferredHosts ?? 'hold',
      waves,
      reason,
    });
  }
  const reached = (b: FleetInput['budgets']['budgets'][number]): boolean =>
    shown === null || b.hosts.some((h) => shown.has(ctx.channelOf(h)));
  const budgets: BudgetView[] = input.budgets.budgets.filter(reached).map((b) => {
    const s = ctx.budgetSummary(b.id);
    return {
      id: b.id,
      max: s.max,
      inFlight: s.inFlight.length,
      inFlightHosts: s.inFlight.slice(0, 20),
    };
  });
  return { now: input.now, channels, hosts, budgets };
}
