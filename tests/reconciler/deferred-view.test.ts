// Deferred hosts in the fleet view (issue 8): a host waiting to reboot into its target is shown as
// `deferred` with its reason and its effect on the wave, under the signed deferredHosts policy, and
// never turns into "offline" however old its ack grows.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ackFor, buildFleet, type ChannelSpec } from '../../reconciler/simulator/builders.ts';
import { fleetView, latestAcks } from '../../reconciler/index.ts';

const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);
const MIN = 60_000;

function view(extra: Partial<ChannelSpec>, deferredAgo: number) {
  const f = buildFleet({
    channels: [
      {
        name: 'stable',
        waves: [
          { hosts: ['web-01', 'web-02'], soakSeconds: 600 },
          { hosts: ['web-03'], soakSeconds: 600 },
        ],
        ...extra,
      },
    ],
    budgets: [{ id: 'web', hosts: ['web-01', 'web-02', 'web-03'], maxInFlight: 2 }],
  });
  const acks = [
    ackFor(f, 'web-01', 'deferred', NOW - deferredAgo, {
      reason:
        'switching needs a reboot (kernel changes); deferred: reboot policy of channel stable is never',
    }),
    ackFor(f, 'web-02', 'heartbeat', NOW - MIN, { healthySince: NOW - 20 * MIN, seq: 5 }),
    ackFor(f, 'web-03', 'heartbeat', NOW - MIN),
  ];
  return fleetView({
    now: NOW,
    plans: f.plans,
    budgets: f.budgets,
    revocations: f.revocations,
    acks: latestAcks(acks),
  });
}

test('deferredHosts hold (default): the deferred host is shown with its reason, holds its wave and a budget slot, and never becomes offline', () => {
  // A day old: far beyond the offline window (900 s).
  const v = view({}, 24 * 60 * MIN);
  const h = v.hosts.find((x) => x.host === 'web-01')!;
  assert.is(h.phase, 'deferred');
  assert.match(h.detail, 'reboot policy of channel stable is never');
  assert.match(h.reason ?? '', 'wave 1 of channel stable waits for it (deferredHosts: hold)');
  assert.is(h.excused, false);
  const w0 = v.channels[0]!.waves[0]!;
  assert.is(w0.state, 'active');
  assert.equal(w0.blockingHosts, ['web-01']);
  assert.match(w0.reason, 'web-01 is deferred');
  assert.is(w0.counts.deferred, 1);
  assert.is(w0.counts.offline, 0);
  assert.equal(v.budgets[0]!.inFlightHosts, ['web-01']);
  assert.is(v.hosts.find((x) => x.host === 'web-03')!.gate, 'earlier-waves');
});

test('deferredHosts excuse: the wave completes without the deferred host, says so, and the host keeps its budget slot', () => {
  const v = view({ deferredHosts: 'excuse' }, 30 * MIN);
  const h = v.hosts.find((x) => x.host === 'web-01')!;
  assert.is(h.phase, 'deferred');
  assert.is(h.excused, true);
  assert.match(h.reason ?? '', 'excused for wave 1 of channel stable (deferredHosts: excuse)');
  const w0 = v.channels[0]!.waves[0]!;
  assert.is(w0.state, 'complete');
  assert.match(w0.reason, 'excused by deferredHosts: excuse: web-01');
  assert.equal(v.budgets[0]!.inFlightHosts, ['web-01']);
  const web03 = v.hosts.find((x) => x.host === 'web-03')!;
  assert.is(web03.gate, null, 'wave 1 is open');
});

test('a host rebooting into its target (started ack with the reason) shows the reason as activating', () => {
  const f = buildFleet({
    channels: [
      { name: 'stable', waves: [{ hosts: ['web-01'], soakSeconds: 60 }], reboot: 'allowed' },
    ],
  });
  const acks = [
    ackFor(f, 'web-01', 'started', NOW - MIN, {
      reason: 'rebooting into its target (kernel changes)',
    }),
  ];
  const v = fleetView({
    now: NOW,
    plans: f.plans,
    budgets: f.budgets,
    revocations: f.revocations,
    acks: latestAcks(acks),
  });
  const h = v.hosts[0]!;
  assert.is(h.phase, 'activating');
  assert.match(h.detail, 'started: rebooting into its target (kernel changes)');
});

test.run();
