// The reconciler-input builders (reconciler/simulator/builders.ts) make documents the protocol accepts:
// every plan, manifest, budget, revocation list and ack parses with its schema, the documents of one
// release agree with each other, rollout ids are content-addressed, and acks chain by seq.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import {
  Ack,
  ChannelPlan,
  DisruptionBudgets,
  HostManifest,
  Revocations,
  StorePath,
  parseWith,
  type ControlEvidence,
} from '../../protocol/index.ts';
import {
  ackFor,
  buildFleet,
  digestOf,
  hostKeyOf,
  makeAck,
  storePath,
  type BuiltFleet,
  type ChannelSpec,
  type FleetSpec,
} from '../../reconciler/simulator/builders.ts';

const T0 = Date.UTC(2026, 0, 1);

/** Parses `doc` with `schema` and checks nothing was dropped or changed (the schemas are strict). */
function accepts(schema: Parameters<typeof parseWith>[0], doc: unknown, what: string): void {
  const plain = (x: unknown): unknown => JSON.parse(JSON.stringify(x));
  assert.equal(plain(parseWith(schema, doc, what)), plain(doc), what);
}

function assertValid(f: BuiltFleet): void {
  for (const [name, p] of Object.entries(f.plans)) accepts(ChannelPlan, p, `plan ${name}`);
  for (const [h, m] of Object.entries(f.manifests)) accepts(HostManifest, m, `manifest ${h}`);
  accepts(DisruptionBudgets, f.budgets, 'budgets');
  accepts(Revocations, f.revocations, 'revocations');
}

const channelArb: fc.Arbitrary<Omit<ChannelSpec, 'name'>> = fc.record(
  {
    waves: fc.array(
      fc.record(
        {
          hosts: fc.integer({ min: 1, max: 3 }).map((n) => Array.from({ length: n }, () => '')),
          soakSeconds: fc.integer({ min: 0, max: 3600 }),
          failureThreshold: fc.oneof(
            fc.record({ count: fc.nat(3) }),
            fc.record({ percent: fc.integer({ min: 0, max: 100 }) }),
          ),
          offlineExcuseLimit: fc.nat(2),
        },
        { requiredKeys: ['hosts'] },
      ),
      { minLength: 1, maxLength: 3 },
    ),
    onFailure: fc.constantFrom('halt' as const, 'rollback-and-halt' as const),
    heartbeatSeconds: fc.integer({ min: 1, max: 600 }),
    offlineWindowSeconds: fc.integer({ min: 60, max: 3600 }),
    confirmDeadlineSeconds: fc.integer({ min: 30, max: 3600 }),
    signingIntervalSeconds: fc.integer({ min: 60, max: 3600 }),
    maintenanceWindows: fc.constant([{ cron: '0 2 * * *', durationMinutes: 60 }]),
    reboot: fc.constantFrom('never' as const, 'in-maintenance-window' as const, 'allowed' as const),
    deferredHosts: fc.constantFrom('hold' as const, 'excuse' as const),
    compliance: fc.constantFrom(
      { mode: 'enforce' as const, frameworks: ['fw'], runtime: [] },
      {
        mode: 'permissive' as const,
        frameworks: ['fw'],
        runtime: [
          { framework: 'fw', control: 'c', argv: ['true'], expectExit: 0, timeoutMs: 1000 },
        ],
      },
    ),
  },
  { requiredKeys: ['waves'] },
);

/** A fleet spec of 1-3 channels with unique host names, each channel gated by the one before or not. */
const specArb: fc.Arbitrary<FleetSpec> = fc
  .record({
    channels: fc.array(fc.tuple(channelArb, fc.boolean()), { minLength: 1, maxLength: 3 }),
    releaseVersion: fc.integer({ min: 1, max: 50 }),
    budget: fc.option(fc.integer({ min: 1, max: 3 }), { nil: null }),
    empty: fc.boolean(),
  })
  .map(({ channels, releaseVersion, budget, empty }) => {
    const specs: ChannelSpec[] = channels.map(([c, gated], ci) => ({
      ...c,
      name: `ch${ci}`,
      waves: c.waves.map((w, wi) => ({
        ...w,
        hosts: w.hosts.map((_, i) => `c${ci}-w${wi}-h${i}`),
      })),
      gatedBy: gated && ci > 0 ? [`ch${ci - 1}`] : [],
    }));
    const all = specs.flatMap((c) => c.waves.flatMap((w) => w.hosts));
    return {
      channels: specs,
      releaseVersion,
      budgets: budget === null ? [] : [{ id: 'b', hosts: empty ? [] : all, maxInFlight: budget }],
    };
  });

test('every document of a built fleet parses with its protocol schema, whatever the spec', () => {
  fc.assert(
    fc.property(specArb, (spec) => assertValid(buildFleet(spec))),
    { numRuns: 60 },
  );
  // A compliance channel's manifests carry each host's static results.
  const f = buildFleet({
    channels: [
      {
        name: 'c',
        waves: [{ hosts: ['a', 'b'] }],
        compliance: {
          mode: 'enforce',
          frameworks: ['fw'],
          runtime: [],
          static: { a: [{ framework: 'fw', control: 'x', ok: true, evidence: 'checked' }] },
        },
      },
    ],
  });
  assertValid(f);
  assert.equal(f.manifests['a']!.compliance!.static, [
    { framework: 'fw', control: 'x', ok: true, evidence: 'checked' },
  ]);
  assert.equal(f.manifests['b']!.compliance!.static, []);
  assert.equal(f.plans['c']!.compliance, { mode: 'enforce', frameworks: ['fw'], runtime: [] });
});

test('the documents of one release agree: plans, manifests, targets and budgets name the same hosts', () => {
  fc.assert(
    fc.property(specArb, (spec) => {
      const f = buildFleet(spec);
      const v = spec.releaseVersion!;
      for (const c of spec.channels) {
        const p = f.plans[c.name]!;
        assert.is(p.channel, c.name);
        assert.is(p.releaseVersion, v);
        assert.equal(
          p.waves.map((w) => w.hosts),
          c.waves.map((w) => w.hosts),
        );
        assert.equal(p.gatedBy, c.gatedBy);
        assert.is(p.onFailure, c.onFailure ?? 'halt');
        assert.is(p.reboot, c.reboot ?? 'never');
        assert.is(p.deferredHosts, c.deferredHosts ?? 'hold');
        assert.is(p.heartbeatSeconds, c.heartbeatSeconds ?? 60);
        assert.is(p.offlineWindowSeconds, c.offlineWindowSeconds ?? 900);
        assert.is(p.confirmDeadlineSeconds, c.confirmDeadlineSeconds ?? 300);
        assert.is(p.signingIntervalSeconds, c.signingIntervalSeconds ?? 600);
        assert.equal(p.maintenanceWindows, c.maintenanceWindows ?? []);
        c.waves.forEach((w, wi) => {
          const pw = p.waves[wi]!;
          assert.is(pw.index, wi);
          assert.is(pw.soakSeconds, w.soakSeconds ?? 600);
          assert.equal(pw.failureThreshold, w.failureThreshold ?? { count: 0 });
          assert.is(pw.offlineExcuseLimit, w.offlineExcuseLimit ?? 0);
          for (const h of w.hosts) {
            const m = f.manifests[h]!;
            assert.equal(p.hosts[h], { target: f.targets[h], hostKey: hostKeyOf(h), wave: wi });
            assert.is(m.channel, c.name);
            assert.is(m.wave, wi);
            assert.is(m.target, f.targets[h]);
            assert.is(m.hostKey, hostKeyOf(h));
            assert.is(m.rolloutId, p.rolloutId);
            assert.is(m.releaseVersion, v);
            assert.is(m.confirmDeadlineSeconds, p.confirmDeadlineSeconds);
            assert.is(m.plan.path, `releases/${v}/channels/${c.name}.json`);
            assert.equal(
              m.gatingPlans.map((g) => [g.channel, g.plan.path]),
              p.gatedBy.map((g) => [g, `releases/${v}/channels/${g}.json`]),
            );
            assert.is(m.budgets.path, `releases/${v}/budgets.json`);
            assert.is.not(f.previous[h], f.targets[h], `${h} starts on another closure`);
          }
        });
      }
      const hosts = Object.keys(f.manifests);
      assert.is(new Set(hosts.map((h) => f.targets[h])).size, hosts.length, 'one target per host');
      for (const [i, b] of (spec.budgets ?? []).entries()) {
        const built = f.budgets.budgets[i]!;
        assert.equal(built.hosts, b.hosts);
        assert.is(built.maxInFlight, b.maxInFlight);
        // A selector may not be empty: a budget of no hosts selects a placeholder no host is named.
        assert.equal(built.selector, { hosts: b.hosts.length > 0 ? b.hosts : ['none'] });
      }
    }),
    { numRuns: 60 },
  );
});

test('defaults: fleet "sim", release 1, issued 2026-01-01, targets named after the release', () => {
  const f = buildFleet({ channels: [{ name: 'c', waves: [{ hosts: ['a'] }] }] });
  const p = f.plans['c']!;
  assert.is(p.fleet, 'sim');
  assert.is(p.releaseVersion, 1);
  assert.is(p.issuedAt, '2026-01-01T00:00:00Z');
  assert.is(f.revocations.fleet, 'sim');
  assert.equal([f.revocations.hosts, f.revocations.closures], [[], []]);
  assert.is(f.targets['a'], storePath('nixos-system-a-r1'));
  assert.is(f.previous['a'], storePath('nixos-system-a-previous'));
  const g = buildFleet({
    fleet: 'lab',
    releaseVersion: 3,
    issuedAt: T0 + 3_600_000,
    release: 'x',
    channels: [{ name: 'c', waves: [{ hosts: ['a'] }] }],
  });
  assert.is(g.manifests['a']!.fleet, 'lab');
  assert.is(g.budgets.fleet, 'lab');
  assert.is(g.manifests['a']!.issuedAt, '2026-01-01T01:00:00Z');
  assert.is(g.targets['a'], storePath('nixos-system-a-x'));
});

test('rollout ids are content-addressed: the same targets and policy give the same id, any change a new one', () => {
  const base: FleetSpec = {
    channels: [{ name: 'c', waves: [{ hosts: ['a', 'b'] }] }],
  };
  const id = (s: FleetSpec) => buildFleet(s).plans['c']!.rolloutId;
  const same = id(base);
  assert.match(same, /^sha256:[0-9a-f]{64}$/);
  assert.is(id({ ...base, issuedAt: T0 + 86_400_000 }), same, 'the signing time is not content');
  assert.is(
    id({ channels: [{ name: 'c', waves: [{ hosts: ['a', 'b'] }], deferredHosts: 'hold' }] }),
    same,
    'the default deferral policy spelt out',
  );
  const changed: [string, FleetSpec][] = [
    ['release', { ...base, release: 'r2' }],
    ['onFailure', { channels: [{ ...base.channels[0]!, onFailure: 'rollback-and-halt' }] }],
    ['deferredHosts', { channels: [{ ...base.channels[0]!, deferredHosts: 'excuse' }] }],
    ['waves', { channels: [{ name: 'c', waves: [{ hosts: ['a'] }, { hosts: ['b'] }] }] }],
    ['soak', { channels: [{ name: 'c', waves: [{ hosts: ['a', 'b'], soakSeconds: 60 }] }] }],
    [
      'hostEdges',
      { channels: [{ ...base.channels[0]!, hostEdges: [{ before: 'a', after: 'b' }] }] },
    ],
    [
      'maintenanceWindows',
      {
        channels: [
          {
            ...base.channels[0]!,
            maintenanceWindows: [{ cron: '0 2 * * *', durationMinutes: 60 }],
          },
        ],
      },
    ],
  ];
  for (const [what, s] of changed) assert.is.not(id(s), same, what);
  const gated = buildFleet({
    channels: [
      { name: 'g', waves: [{ hosts: ['x'] }] },
      { name: 'c', gatedBy: ['g'], waves: [{ hosts: ['a', 'b'] }] },
    ],
  });
  assert.is.not(gated.plans['c']!.rolloutId, same, 'gatedBy');
});

test('store paths and host keys: valid, deterministic, one per name', () => {
  fc.assert(
    fc.property(fc.string({ minLength: 1, maxLength: 40 }), fc.string(), (a, b) => {
      const p = storePath(a);
      parseWith(StorePath, p, 'storePath');
      assert.is(storePath(a), p);
      if (a !== b) assert.is.not(storePath(b), p);
      assert.is(Buffer.from(hostKeyOf(a), 'base64').length, 32);
      if (a !== b) assert.is.not(hostKeyOf(b), hostKeyOf(a));
    }),
  );
  assert.match(storePath('nixos system/1'), /^\/nix\/store\/[0-9a-z]{32}-nixos-system-1$/);
  assert.is(digestOf('x'), digestOf('x'));
  assert.match(digestOf('x'), /^sha256:[0-9a-f]{64}$/);
});

test('makeAck: a valid ack that chains by seq (the first has no prev), with the fields it was given', () => {
  const f = buildFleet({ channels: [{ name: 'c', waves: [{ hosts: ['a'] }] }] });
  const first = makeAck('a', 'heartbeat', { time: T0 });
  accepts(Ack, first, 'first ack');
  assert.is(first.seq, 1);
  assert.is(first.prev, null);
  assert.is(first.fleet, 'sim');
  assert.is(first.releaseVersion, 1);
  assert.is(first.time, '2026-01-01T00:00:00Z');
  assert.equal(
    [first.rolloutId, first.target, first.current, first.healthySince, first.reason],
    [null, null, null, null, null],
  );
  assert.not.ok('evidence' in first, 'no evidence unless given');
  const evidence: ControlEvidence[] = [
    {
      framework: 'fw',
      control: 'c',
      ok: true,
      exitCode: 0,
      outputDigest: digestOf('out'),
      excerpt: 'ok',
    },
  ];
  const seqs = [2, 3, 4].map((seq) =>
    makeAck('a', 'healthy', {
      time: T0 + seq * 1000,
      seq,
      rolloutId: f.plans['c']!.rolloutId,
      target: f.targets['a'],
      current: f.targets['a'],
      healthySince: T0,
      reason: 'why',
      releaseVersion: 2,
      fleet: 'lab',
      evidence,
    }),
  );
  for (const a of seqs) {
    accepts(Ack, a, `ack ${a.seq}`);
    assert.is(a.healthySince, '2026-01-01T00:00:00Z');
    assert.equal(
      [a.fleet, a.releaseVersion, a.reason, a.target, a.current, a.evidence],
      ['lab', 2, 'why', f.targets['a'], f.targets['a'], evidence],
    );
    assert.is(a.prev, digestOf(`a/${a.seq - 1}`));
  }
  assert.is(new Set(seqs.map((a) => a.prev)).size, 3, 'each seq has its own prev');
  assert.is(makeAck('a', 'heartbeat', { time: T0, healthySince: null }).healthySince, null);
});

test('ackFor: a host reports its target as current once it switched, its previous closure before', () => {
  const f = buildFleet({ channels: [{ name: 'c', waves: [{ hosts: ['a'] }] }] });
  const on = f.targets['a'];
  const off = f.previous['a'];
  const cases: [Parameters<typeof ackFor>[2], Parameters<typeof ackFor>[4], string | undefined][] =
    [
      ['activated', {}, on],
      ['healthy', {}, on],
      ['heartbeat', { healthySince: T0 }, on],
      ['heartbeat', {}, off],
      ['heartbeat', { healthySince: null }, off],
      ['started', {}, off],
      ['rolled-back', {}, off],
      ['deferred', {}, off],
    ];
  for (const [kind, extra, current] of cases) {
    const a = ackFor(f, 'a', kind, T0, extra);
    accepts(Ack, a, kind);
    assert.is(a.current, current, `${kind} ${JSON.stringify(extra)}`);
    assert.is(a.target, on);
    assert.is(a.rolloutId, f.plans['c']!.rolloutId);
    assert.is(a.host, 'a');
    assert.is(a.kind, kind);
  }
  assert.is(ackFor(f, 'a', 'heartbeat', T0, { seq: 7, current: 'x' }).current, 'x');
  assert.is(ackFor(f, 'a', 'heartbeat', T0, { seq: 7 }).seq, 7);
});

test.run();
