// decide() at the edges of each host-local gate: deadlines and quarantines at their exact instant, the
// deadline an activation or a resumed one carries, revocations that do not apply, rollback-and-halt with
// nothing to return to, and reasons that name the host, target, wave and channel operators act on.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  ackFor,
  buildFleet,
  hostKeyOf,
  type ChannelSpec,
} from '../../reconciler/simulator/builders.ts';
import { keyIdOf, unb64 } from '../../protocol/index.ts';
import {
  decide,
  latestAcks,
  prepareFleet,
  type DecideInput,
  type Decision,
} from '../../reconciler/index.ts';

const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);
const MIN = 60_000;

function input(extra: Partial<ChannelSpec> = {}, host = 'web-01'): DecideInput {
  const f = buildFleet({
    channels: [
      {
        name: 'stable',
        waves: [
          { hosts: ['web-01', 'web-02'], soakSeconds: 600 },
          { hosts: ['web-03'], soakSeconds: 600 },
        ],
        confirmDeadlineSeconds: 300,
        ...extra,
      },
    ],
  });
  return {
    now: NOW,
    plans: f.plans,
    budgets: f.budgets,
    revocations: f.revocations,
    acks: latestAcks(
      ['web-01', 'web-02', 'web-03'].map((h) => ackFor(f, h, 'heartbeat', NOW - MIN)),
    ),
    manifest: f.manifests[host]!,
    freshness: { status: 'fresh' },
    local: { current: f.previous[host]!, pending: null, previous: null, quarantine: [] },
    inhibitor: null,
  };
}

const previous = { generation: 41, path: '/nix/store/00000000000000000000000000000000-prev' };

function expectKind<K extends Decision['kind']>(
  d: Decision,
  kind: K,
): Extract<Decision, { kind: K }> {
  assert.is(d.kind, kind, d.reason);
  return d as Extract<Decision, { kind: K }>;
}

test('an activation carries now + the confirm deadline, and says so', () => {
  const i = input();
  const d = expectKind(decide(i), 'activate');
  assert.is(d.deadline, NOW + 300_000);
  assert.is(d.rolloutId, i.manifest.rolloutId);
  assert.is(
    d.reason,
    `wave 1 of channel stable is open and every gate passed: activate ${i.manifest.target} and confirm within 5 min`,
  );
});

test('a pending activation: resumed with its own deadline up to that instant, rolled back one millisecond later', () => {
  const i = input();
  const pending = {
    target: i.manifest.target,
    rolloutId: i.manifest.rolloutId,
    previous,
    deadline: NOW,
  };
  const resumed = expectKind(decide({ ...i, local: { ...i.local, pending } }), 'activate');
  assert.is(resumed.deadline, NOW, 'the deadline is not extended by resuming');
  assert.is(
    resumed.reason,
    `resuming the activation of ${i.manifest.target}: confirm before 2026-01-01T12:00:00Z`,
  );
  const late = expectKind(
    decide({ ...i, now: NOW + 1, local: { ...i.local, pending } }),
    'rollback',
  );
  assert.is(late.gate, 'recovery');
  assert.equal(late.to, previous);
  assert.is(
    late.reason,
    `activation of ${i.manifest.target} was not confirmed before its deadline (2026-01-01T12:00:00Z): rolling back to generation 41 (${previous.path})`,
  );
  // A pending activation of a closure that is no longer the signed target rolls back, naming both.
  const moved = expectKind(
    decide({
      ...i,
      local: { ...i.local, pending: { ...pending, target: previous.path, deadline: NOW + MIN } },
    }),
    'rollback',
  );
  assert.is(moved.gate, 'recovery');
  assert.match(moved.reason, `unconfirmed activation of ${previous.path} is no longer`);
  assert.match(moved.reason, `signed target (${i.manifest.target})`);
  assert.match(moved.reason, 'generation 41');
});

test('quarantine: waits until its end, retrying when it ends; gone at that instant; other targets ignored', () => {
  const i = input();
  const q = (until: number, target = i.manifest.target) => ({
    ...i,
    local: { ...i.local, quarantine: [{ target, until }] },
  });
  const d = expectKind(decide(q(NOW + 90_500)), 'wait');
  assert.is(d.gate, 'quarantined');
  assert.is(d.retryAfter, 91, 'rounded up: never retried before the quarantine ends');
  assert.match(
    d.reason,
    `target ${i.manifest.target} is quarantined on this host until 2026-01-01T12:01:30.500Z`,
  );
  assert.is(expectKind(decide(q(NOW + 1)), 'wait').retryAfter, 1);
  expectKind(decide(q(NOW)), 'activate');
  expectKind(decide(q(NOW + MIN, previous.path)), 'activate');
});

test('not fresh: a stale or unsigned chain holds new activations, retried at the signing interval', () => {
  const i = input({ signingIntervalSeconds: 77 });
  const stale = expectKind(
    decide({ ...i, freshness: { status: 'stale', reason: 'expired 5 min ago' } }),
    'wait',
  );
  assert.is(stale.gate, 'not-fresh');
  assert.is(stale.retryAfter, 77);
  assert.is(
    stale.reason,
    'no new activations: the signed release chain is stale (expired 5 min ago)',
  );
  const bad = expectKind(
    decide({ ...i, freshness: { status: 'unsigned', reason: 'bad signature' } }),
    'wait',
  );
  assert.is(
    bad.reason,
    'no new activations: the release chain is not validly signed (bad signature)',
  );
});

test('revocations apply only to their host key and their closure', () => {
  const i = input();
  const revokedAt = '2026-01-01T00:00:00Z';
  const other = '/nix/store/11111111111111111111111111111111-other';
  // A revocation of another key of this host (e.g. its key before a rotation) does not refuse it.
  const oldKey = {
    host: 'web-01',
    keyid: 'sha256:' + 'a'.repeat(64),
    certSerial: null,
    reason: 'rotated',
    revokedAt,
  };
  expectKind(decide({ ...i, revocations: { ...i.revocations, hosts: [oldKey] } }), 'activate');
  const anyKey = { ...oldKey, keyid: null, reason: 'stolen' };
  const refused = expectKind(
    decide({ ...i, revocations: { ...i.revocations, hosts: [anyKey] } }),
    'refuse',
  );
  assert.is(refused.gate, 'revoked');
  assert.is(refused.reason, 'host web-01 is revoked (stolen): it may not activate anything');
  // The host's own key, revoked: refused, also when listed after a revocation of another of its keys.
  const ownKey = { ...oldKey, keyid: keyIdOf(unb64(hostKeyOf('web-01'))), reason: 'leaked' };
  for (const hosts of [[ownKey], [oldKey, ownKey]]) {
    const d = expectKind(decide({ ...i, revocations: { ...i.revocations, hosts } }), 'refuse');
    assert.is(d.reason, 'host web-01 is revoked (leaked): it may not activate anything');
  }
  // Another host's revocation, another closure's revocation: nothing to say.
  expectKind(
    decide({ ...i, revocations: { ...i.revocations, hosts: [{ ...anyKey, host: 'web-02' }] } }),
    'activate',
  );
  const closure = { storePath: other, reason: 'bad build', revokedAt };
  expectKind(decide({ ...i, revocations: { ...i.revocations, closures: [closure] } }), 'activate');
  // A pending activation of another closure is not undone by the target's revocation: it is refused.
  const mine = { ...closure, storePath: i.manifest.target };
  const pendingOther = {
    target: other,
    rolloutId: i.manifest.rolloutId,
    previous,
    deadline: NOW + MIN,
  };
  const r = expectKind(
    decide({
      ...i,
      revocations: { ...i.revocations, closures: [mine] },
      local: { ...i.local, pending: pendingOther },
    }),
    'refuse',
  );
  assert.is(
    r.reason,
    `target ${i.manifest.target} is revoked (bad build): it will not be activated`,
  );
});

test('already on target: converged, naming host, target, channel and wave; rollback-and-halt needs a generation to return to', () => {
  const i = input({ onFailure: 'rollback-and-halt' });
  const onTarget = { ...i.local, current: i.manifest.target, previous };
  const c = expectKind(decide({ ...i, local: onTarget }), 'converged');
  assert.is(c.reason, `web-01 runs its target ${i.manifest.target} (channel stable, wave 1)`);
  // web-02 (same wave) reported a failure: the wave halts (threshold 0) and rolls back.
  const f = buildFleet({
    channels: [
      {
        name: 'stable',
        onFailure: 'rollback-and-halt',
        waves: [
          { hosts: ['web-01', 'web-02'], soakSeconds: 600 },
          { hosts: ['web-03'], soakSeconds: 600 },
        ],
      },
    ],
  });
  const failed = {
    ...i.acks,
    'web-02': ackFor(f, 'web-02', 'failed', NOW - MIN, { seq: 3, reason: 'boom' }),
  };
  const back = expectKind(decide({ ...i, acks: failed, local: onTarget }), 'rollback');
  assert.is(back.gate, 'halted');
  assert.equal(back.to, previous);
  assert.match(
    back.reason,
    'rollout of channel stable is halted: wave 1 has 1 failed host(s) (web-02)',
  );
  assert.match(
    back.reason,
    `policy rollback-and-halt: rolling wave 1 back, to generation 41 (${previous.path})`,
  );
  // Nothing recorded to return to: it stays (converged), never guesses a generation.
  expectKind(decide({ ...i, acks: failed, local: { ...onTarget, previous: null } }), 'converged');
  // Under `halt` the same failure leaves it converged.
  const halt = input();
  expectKind(
    decide({
      ...halt,
      acks: failed,
      local: { ...halt.local, current: halt.manifest.target, previous },
    }),
    'converged',
  );
});

test('a switch that needs a reboot defers with the channel reboot policy in its reason', () => {
  const never = expectKind(decide({ ...input(), inhibitor: 'kernel changes' }), 'defer');
  assert.is(never.inhibitor, 'kernel changes');
  assert.equal(never.reboot.allowed, false);
  assert.match(
    never.reason,
    'needs a reboot (kernel changes); deferred: reboot policy of channel stable is never',
  );
  const i = input({ reboot: 'allowed', confirmDeadlineSeconds: 120 });
  const ok = expectKind(decide({ ...i, inhibitor: 'kernel changes' }), 'defer');
  assert.equal(ok.reboot, {
    allowed: true,
    deadline: NOW + 120_000,
    rolloutId: i.manifest.rolloutId,
  });
  assert.match(
    ok.reason,
    "the channel's reboot policy (allowed) allows it now: stage it with boot, reboot, and confirm before 2026-01-01T12:02:00Z",
  );
  // in-maintenance-window without windows never opens (a hand-made plan fails closed).
  const noWin = expectKind(
    decide({ ...input({ reboot: 'in-maintenance-window' }), inhibitor: 'initrd changes' }),
    'defer',
  );
  assert.equal(noWin.reboot, {
    allowed: false,
    why: 'reboot policy of channel stable is in-maintenance-window but it has no maintenance windows',
  });
});

test('a prepared fleet refuses an input that differs in any fleet-wide part', () => {
  const i = input();
  const prepared = prepareFleet(i);
  assert.equal(decide(i, prepared), decide(i));
  const other = input({ heartbeatSeconds: 61 });
  for (const [what, changed] of [
    ['plans', { plans: other.plans }],
    ['budgets', { budgets: { ...i.budgets } }],
    ['revocations', { revocations: { ...i.revocations } }],
    ['tolerances', { tolerances: { clockSkewSeconds: 1 } }],
    [
      'controls',
      {
        controls: {
          type: 'controls',
          schemaVersion: 1,
          fleet: 'sim',
          version: 1,
          issuedAt: '2026-01-01T00:00:00Z',
          paused: [],
          resumedHalts: [],
          retries: [],
          quarantineClears: [],
        },
      },
    ],
  ] as const)
    assert.throws(
      () => decide({ ...i, ...changed } as DecideInput, prepared),
      /different input/,
      what,
    );
  // Absent and null controls are the same input.
  assert.not.throws(() => decide({ ...i, controls: null }, prepared));
});

test.run();
