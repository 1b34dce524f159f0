// What a one-host or one-channel view has to read. The reconciler's gates for a channel's hosts
// (reconciler/context.ts gatesFor) read the acks of: the channel's own hosts (their phases, their
// waves' completion and failures, host edges), the hosts of the channels gating it (a channel edge waits
// for those to complete or halt; their own gates are not evaluated), and every member of a disruption
// budget one of its hosts is in (the budget counts members in flight and ranked ahead). Nothing else: a
// view of that channel (fleetView's `channels` option, trace) over exactly these hosts' acks equals the
// one over every ack (tests/read-side/scope.test.ts checks it host by host).
import type { ChannelPlan, DisruptionBudgets } from '../protocol/index.ts';

export interface ViewScope {
  /** The channels shown. */
  channels: string[];
  /** The hosts whose acks the shown channels' views read. */
  hosts: ReadonlySet<string>;
}

/** The scope of a view of `channels` (each must have a plan). */
export function viewScope(
  plans: Record<string, ChannelPlan>,
  budgets: DisruptionBudgets,
  channels: readonly string[],
): ViewScope {
  const hosts = new Set<string>();
  const addChannel = (name: string) => {
    for (const h of Object.keys(plans[name]!.hosts)) hosts.add(h);
  };
  for (const c of channels) {
    addChannel(c);
    for (const g of plans[c]!.gatedBy) addChannel(g);
  }
  const own = new Set(channels.flatMap((c) => Object.keys(plans[c]!.hosts)));
  for (const b of budgets.budgets)
    if (b.hosts.some((h) => own.has(h))) for (const h of b.hosts) hosts.add(h);
  return { channels: [...channels], hosts };
}

/** The channel a host is planned in, or null. */
export function channelOfHost(plans: Record<string, ChannelPlan>, host: string): string | null {
  for (const p of Object.values(plans)) if (p.hosts[host] !== undefined) return p.channel;
  return null;
}
