// The simulator's ground-truth checks catch a violation when one happens. The reconciler under test
// never commits one (tests/reconciler/properties.test.ts), so to see each check fire the test makes
// the simulator's ground truth believe a stricter fleet than the one the reconciler is given: the
// simulator reads a host's channel and wave, and a budget's max, once when it sets up its hosts; the
// reconciler reads the signed documents on every decision.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildFleet, type FleetSpec } from '../../reconciler/simulator/builders.ts';
import { simulate, type SimResult } from '../../reconciler/simulator/sim.ts';

/** `o[k]` reads as `first` once (the simulator's setup), then as its real value (the reconciler). */
function tellOnce<T extends object, K extends keyof T>(o: T, k: K, first: T[K]): void {
  const truth = o[k];
  let told = false;
  Object.defineProperty(o, k, {
    get: () => {
      if (told) return truth;
      told = true;
      return first;
    },
    enumerable: true,
    configurable: true,
  });
}

const spec: FleetSpec = {
  channels: [
    { name: 'canary', waves: [{ hosts: ['c1'], soakSeconds: 300 }] },
    {
      name: 'main',
      gatedBy: ['canary'],
      waves: [
        { hosts: ['a1', 'a2'], soakSeconds: 300 },
        { hosts: ['b1', 'b2', 'b3'], soakSeconds: 300 },
      ],
    },
    { name: 'solo', waves: [{ hosts: ['s1'], soakSeconds: 300 }] },
  ],
  budgets: [{ id: 'b', hosts: ['b1', 'b2', 'b3'], maxInFlight: 3 }],
};

const run = (fleet = buildFleet(spec), failingHosts: string[] = []): SimResult =>
  simulate({ seed: 1, fleet, failingHosts, maxSeconds: 6 * 3600 });

/** The violations of one kind ("wave-order: ..."), and every violation is of a kind the test expects. */
function violations(r: SimResult, kind: string, expected: string[] = [kind]): string[] {
  for (const v of r.violations)
    assert.ok(
      expected.some((k) => v.startsWith(`${k}: `)),
      `unexpected violation: ${v}`,
    );
  return r.violations.filter((v) => v.startsWith(`${kind}: `));
}

test('the honest run has no violation, converges, and keeps the budget', () => {
  const r = run();
  assert.equal(r.violations, []);
  assert.ok(r.converged);
  assert.equal(r.budgets, { b: { max: 3, observed: 3 } });
});

test('wave order: a host that starts while an earlier wave of its channel is not soaked is reported', () => {
  const fleet = buildFleet(spec);
  tellOnce(fleet.manifests['a1']!, 'wave', 1); // the ground truth puts a1 in wave 1 of main
  const found = violations(run(fleet), 'wave-order');
  assert.ok(found.length > 0, 'no wave-order violation');
  assert.match(
    found[0]!,
    /^wave-order: a1 \(wave 1 of main\) started at \d+s before wave 0 was soaked$/,
  );
});

test('channel edges: a host that starts before its gating channel soaked is reported', () => {
  const fleet = buildFleet(spec);
  tellOnce(fleet.manifests['s1']!, 'channel', 'main'); // the ground truth puts s1 behind the canary
  const found = violations(run(fleet), 'channel-edge');
  assert.equal(
    found.map((v) => v.replace(/at \d+s/, 'at Ns')),
    ['channel-edge: s1 (main) started at Ns before channel canary wave 0 was soaked'],
  );
});

test('halts: a host that starts while a wave of its channel has more visible failures than allowed is reported', () => {
  const fleet = buildFleet({
    channels: [
      { name: 'solo', waves: [{ hosts: ['s1'], soakSeconds: 300 }] },
      {
        name: 'other',
        waves: [
          { hosts: ['o1'], soakSeconds: 300 },
          { hosts: ['o2'], soakSeconds: 300 },
        ],
      },
    ],
  });
  // The ground truth puts the failing s1 in wave 0 of `other`, whose rollout the reconciler (rightly,
  // for the real fleet) does not halt.
  tellOnce(fleet.manifests['s1']!, 'channel', 'other');
  const r = run(fleet, ['s1']);
  assert.equal(r.failures, ['s1']);
  const found = violations(r, 'halted');
  assert.ok(
    found.some((v) =>
      /^halted: o2 \(other\) started at \d+s although wave 0 has 1 visible failures$/.test(v),
    ),
    found.join('\n'),
  );
  assert.not.ok(r.converged, 'a wave beyond its failure threshold is not a converged rollout');
});

test('budgets: a start that puts more hosts truly in flight than the max is reported, with the worst count', () => {
  const fleet = buildFleet(spec);
  tellOnce(fleet.budgets.budgets[0]!, 'maxInFlight', 1); // the ground truth allows one, the plan three
  const r = run(fleet);
  const found = violations(r, 'budget');
  assert.equal(
    found.map((v) => v.replace(/(b\d) started at \d+s/, 'bN started at Ns')),
    [
      'budget: bN started at Ns with 2 hosts truly in flight in budget b (max 1)',
      'budget: bN started at Ns with 3 hosts truly in flight in budget b (max 1)',
    ],
  );
  assert.equal(r.budgets, { b: { max: 1, observed: 3 } });
});

test.run();
