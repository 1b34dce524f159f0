// Synthetic fleets for the simulator CLI and the benchmark: hosts dealt round-robin over channels,
// each channel split into equal waves (the last may be smaller).
import { buildFleet, type BuiltFleet, type ChannelSpec } from './builders.ts';

export interface SyntheticFleetOptions {
  hosts: number;
  channels: number;
  waves: number;
  soakSeconds?: number;
  /** Channel edges ch-0 -> ch-1 -> ... */
  chain?: boolean;
  /** One fleet-wide disruption budget of this percentage (rounded up, at least 1). */
  budgetPct?: number | null;
  heartbeatSeconds?: number;
  failureThreshold?: { count: number } | { percent: number };
}

export function syntheticFleet(o: SyntheticFleetOptions): BuiltFleet {
  if (!Number.isInteger(o.hosts) || o.hosts < 1)
    throw new RangeError('hosts must be a positive integer');
  if (!Number.isInteger(o.channels) || o.channels < 1)
    throw new RangeError('channels must be a positive integer');
  if (!Number.isInteger(o.waves) || o.waves < 1)
    throw new RangeError('waves must be a positive integer');
  const width = String(o.hosts - 1).length;
  const perChannel: string[][] = Array.from({ length: o.channels }, () => []);
  for (let i = 0; i < o.hosts; i++)
    perChannel[i % o.channels]!.push(`h-${String(i).padStart(width, '0')}`);
  const channels: ChannelSpec[] = perChannel.map((hosts, ci) => {
    // At most o.waves waves of `size` hosts; a channel with fewer hosts than waves gets fewer waves.
    const size = Math.ceil(hosts.length / o.waves);
    const waves = [];
    for (let start = 0; start < hosts.length; start += size)
      waves.push({
        hosts: hosts.slice(start, start + size),
        soakSeconds: o.soakSeconds ?? 600,
        failureThreshold: o.failureThreshold ?? { count: 0 },
      });
    return {
      name: `ch-${ci}`,
      waves,
      gatedBy: o.chain && ci > 0 ? [`ch-${ci - 1}`] : [],
      heartbeatSeconds: o.heartbeatSeconds ?? 60,
    };
  });
  const all = perChannel.flat();
  const budgets = o.budgetPct
    ? [
        {
          id: 'fleet',
          hosts: all,
          maxInFlight: Math.max(1, Math.ceil((o.budgetPct * all.length) / 100)),
        },
      ]
    : [];
  return buildFleet({ channels, budgets });
}
