// The fleet the trace properties replay random histories of (trace-carry, trace-resume): two chained
// channels, a host edge, an offline excuse and a budget across them, so that every gate moves.
import type { TraceInput } from '../../reconciler/trace.ts';
import { buildFleet } from '../../reconciler/simulator/builders.ts';

export const fleet = buildFleet({
  channels: [
    {
      name: 'canary',
      waves: [
        { hosts: ['cn-1', 'cn-2'], soakSeconds: 120 },
        { hosts: ['cn-3'], soakSeconds: 60 },
      ],
    },
    {
      name: 'stable',
      gatedBy: ['canary'],
      waves: [
        { hosts: ['s-1', 's-2'], soakSeconds: 180 },
        { hosts: ['s-3', 's-4', 's-5'], soakSeconds: 120, offlineExcuseLimit: 1 },
      ],
      hostEdges: [{ before: 's-3', after: 's-4' }],
    },
  ],
  budgets: [{ id: 'edge', hosts: ['cn-3', 's-3', 's-4', 's-5'], maxInFlight: 1 }],
});
export const subjects: TraceInput['subject'][] = [
  ...Object.values(fleet.plans).map((p) => ({ channel: p.channel })),
  ...Object.values(fleet.plans).flatMap((p) => Object.keys(p.hosts).map((host) => ({ host }))),
];
