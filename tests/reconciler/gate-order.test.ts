// decide()'s gate order (docs/architecture.md "Gate order"): one host for which every gate has something
// to say, then each condition lifted in turn. Each step must be decided by the next gate of the list, so
// swapping two gates in decide() fails here even where every single-gate fixture still passes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ackFor, buildFleet, storePath } from '../../reconciler/simulator/builders.ts';
import { decide, latestAcks, type DecideInput, type Decision } from '../../reconciler/index.ts';

const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);
const MIN = 60_000;

const f = buildFleet({
  channels: [
    {
      name: 'stable',
      waves: [
        { hosts: ['web-01'], soakSeconds: 600 },
        { hosts: ['web-02'], soakSeconds: 600 },
      ],
      // web-02's manifest records a failing static control of an enforce channel (gate 2a).
      compliance: {
        mode: 'enforce',
        frameworks: ['base'],
        runtime: [],
        static: {
          'web-02': [
            {
              framework: 'base',
              control: 'ssh-no-password',
              ok: false,
              evidence: 'services.openssh.settings.PasswordAuthentication = true (expected false)',
            },
          ],
        },
      },
    },
  ],
});
const target = f.targets['web-02']!;
const old = f.previous['web-02']!;
const previous = { generation: 7, path: old };
const revokedAt = '2026-01-01T00:00:00Z';

/** Everything holds: an expired and a live pending activation can't coexist, so `pending` is a step. */
function everyGateHolds(): DecideInput {
  return {
    now: NOW,
    plans: f.plans,
    budgets: f.budgets,
    revocations: {
      ...f.revocations,
      hosts: [{ host: 'web-02', keyid: null, certSerial: null, reason: 'stolen', revokedAt }],
      closures: [{ storePath: target, reason: 'bad build', revokedAt }],
    },
    // web-01 (wave 1) has not soaked yet: wave 2 waits for it.
    acks: latestAcks([ackFor(f, 'web-01', 'heartbeat', NOW - MIN)]),
    manifest: f.manifests['web-02']!,
    freshness: { status: 'stale', reason: 'timestamp expired' },
    local: {
      current: target,
      pending: { target, rolloutId: f.plans['stable']!.rolloutId, previous, deadline: NOW - 1 },
      previous,
      quarantine: [{ target, until: NOW + 10 * MIN }],
    },
    inhibitor: 'kernel changes',
  };
}

function gateOf(d: Decision): string {
  return `${d.kind}${'gate' in d ? `/${d.gate}` : ''}`;
}

test('each gate decides only once every gate before it has nothing to say', () => {
  const input = everyGateHolds();
  const steps: [string, string, () => void][] = [
    [
      'rollback/recovery',
      'an unconfirmed activation past its deadline',
      () =>
        (input.local = {
          ...input.local,
          pending: { ...input.local.pending!, deadline: NOW + MIN, target: storePath('other') },
        }),
    ],
    [
      'refuse/revoked',
      'the host is revoked',
      () => (input.revocations = { ...input.revocations, hosts: [] }),
    ],
    [
      'refuse/revoked',
      'the target is revoked',
      () => (input.revocations = { ...input.revocations, closures: [] }),
    ],
    [
      'rollback/recovery',
      'the pending activation is no longer the signed target',
      () => (input.local = { ...input.local, pending: null }),
    ],
    ['converged', 'already on target', () => (input.local = { ...input.local, current: old })],
    [
      'refuse/compliance',
      'the manifest fails a static control (enforce)',
      () =>
        (input.manifest = {
          ...input.manifest,
          compliance: { ...input.manifest.compliance!, static: [] },
        }),
    ],
    ['wait/not-fresh', 'the release chain is stale', () => (input.freshness = { status: 'fresh' })],
    [
      'wait/quarantined',
      'the target is quarantined',
      () => (input.local = { ...input.local, quarantine: [] }),
    ],
    [
      'wait/earlier-waves',
      'wave 1 has not soaked',
      () =>
        (input.acks = latestAcks([
          ackFor(f, 'web-01', 'heartbeat', NOW - MIN, { healthySince: NOW - 20 * MIN, seq: 5 }),
        ])),
    ],
    ['defer', 'the switch needs a reboot', () => (input.inhibitor = null)],
    ['activate', 'every gate passed', () => {}],
  ];
  for (const [expected, why, lift] of steps) {
    const d = decide(input);
    assert.is(gateOf(d), expected, `${why}: ${d.reason}`);
    lift();
  }
});

test.run();
