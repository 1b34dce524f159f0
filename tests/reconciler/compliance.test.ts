// The compliance gate on a host's phase (reconciler/compliance.ts), as properties over random evidence:
// in `enforce`, a health claim counts (soaked) exactly when every runtime control of the plan has passing
// evidence; a failing control of this rollout is a reported failure; `permissive` never changes a phase.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import {
  derivePhase,
  fleetView,
  latestAcks,
  phaseParams,
  DEFAULT_TOLERANCES,
} from '../../reconciler/index.ts';
import {
  describeFailing,
  judgeEvidence,
  staticControlRefusal,
} from '../../reconciler/compliance.ts';
import { ackFor, buildFleet } from '../../reconciler/simulator/builders.ts';
import type { ControlEvidence, RuntimeControl } from '../../protocol/index.ts';

const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);
const MIN = 60_000;
const CONTROLS = ['a', 'b', 'c'];
const runtime: RuntimeControl[] = CONTROLS.map((control) => ({
  framework: 'fw',
  control,
  argv: ['true'],
  expectExit: 0,
  timeoutMs: 1000,
}));

function fleet(mode: 'enforce' | 'permissive') {
  return buildFleet({
    channels: [
      {
        name: 'stable',
        waves: [{ hosts: ['web-01'], soakSeconds: 600 }],
        compliance: { mode, frameworks: ['fw'], runtime },
      },
    ],
  });
}

const evidenceOf = (control: string, ok: boolean): ControlEvidence => ({
  framework: 'fw',
  control,
  ok,
  exitCode: ok ? 0 : 1,
  outputDigest: `sha256:${'0'.repeat(64)}`,
  excerpt: '',
});

/** Per control: absent, passing or failing evidence; plus evidence for a control the plan does not name. */
const evidenceArb = fc.record({
  states: fc.array(fc.constantFrom('absent', 'pass', 'fail'), {
    minLength: CONTROLS.length,
    maxLength: CONTROLS.length,
  }),
  extraFailing: fc.boolean(),
  mine: fc.boolean(),
  // The ack that carries the evidence: the first health report or a later heartbeat; still soaking or not.
  kind: fc.constantFrom('healthy' as const, 'heartbeat' as const),
  soaking: fc.boolean(),
});

function phaseFor(
  mode: 'enforce' | 'permissive',
  e: {
    states: string[];
    extraFailing: boolean;
    mine: boolean;
    kind?: 'healthy' | 'heartbeat';
    soaking?: boolean;
  },
) {
  const f = fleet(mode);
  const p = phaseParams(f.plans['stable']!, f.targets['web-01']!, 600, DEFAULT_TOLERANCES);
  const evidence = CONTROLS.flatMap((c, i) =>
    e.states[i] === 'absent' ? [] : [evidenceOf(c, e.states[i] === 'pass')],
  );
  if (e.extraFailing) evidence.push({ ...evidenceOf('other', false), framework: 'unlisted' });
  const ack = ackFor(f, 'web-01', e.kind ?? 'heartbeat', NOW - MIN, {
    healthySince: NOW - (e.soaking ? 5 : 20) * MIN,
    seq: 5,
    evidence,
    ...(e.mine ? {} : { rolloutId: `sha256:${'e'.repeat(64)}` }),
  });
  return derivePhase(p, ack, NOW, false);
}

/** Why the gate withholds a health claim: the failing controls if any, else the missing ones. */
function why(states: string[]): string {
  const failing = CONTROLS.filter((_, i) => states[i] === 'fail');
  const missing = CONTROLS.filter((_, i) => states[i] === 'absent');
  return failing.length > 0
    ? `its evidence shows ${failing.map((c) => `fw/${c} (exit 1)`).join('; ')} failing`
    : `no evidence for ${missing.map((c) => `fw/${c}`).join(', ')}`;
}

test('enforce: settled exactly when every runtime control passes; a failing one of this rollout is a reported failure', () => {
  fc.assert(
    fc.property(evidenceArb, (e) => {
      const ph = phaseFor('enforce', e);
      const allPass = e.states.every((s) => s === 'pass');
      // Passing evidence leaves the phase as the ack made it: a host of this rollout still soaking is
      // neither settled nor done; a failing control fails it, soaked or not, whichever ack carried it.
      const soaked = allPass && !(e.mine && e.soaking);
      assert.is(ph.settled, soaked, ph.note);
      assert.is(ph.done, soaked || (e.mine && e.states.includes('fail')), ph.note);
      if (!allPass && e.mine && e.states.includes('fail')) {
        assert.is(ph.phase, 'failed');
        assert.is(ph.failure, 'reported');
        assert.not.ok(ph.inFlight);
        const failing = CONTROLS.filter((_, i) => e.states[i] === 'fail');
        for (const c of failing) assert.ok(ph.note.includes(`fw/${c}`), ph.note);
      } else if (!allPass && e.mine) {
        assert.is(ph.phase, 'healthy');
        assert.ok(ph.inFlight, 'a started host without evidence stays in flight');
        assert.ok(ph.note.endsWith(`: ${why(e.states)} (compliance, enforce)`), ph.note);
        for (const c of CONTROLS.filter((_, i) => e.states[i] === 'absent'))
          assert.ok(ph.note.includes(`fw/${c}`), ph.note);
      } else if (!allPass) {
        // Another rollout's ack proves nothing about this one's controls: not started, so not in flight.
        assert.is(ph.phase, 'pending');
        assert.not.ok(ph.inFlight);
        assert.is(ph.note, `runs the target, but ${why(e.states)} (compliance, enforce)`);
      } else assert.is(ph.phase, e.mine ? (e.soaking ? 'healthy' : 'soaked') : 'converged');
    }),
    { numRuns: 300 },
  );
});

test('permissive: evidence never changes a phase', () => {
  fc.assert(
    fc.property(evidenceArb, (e) => {
      const ph = phaseFor('permissive', e);
      assert.is(ph.phase, e.mine ? (e.soaking ? 'healthy' : 'soaked') : 'converged');
      assert.is(ph.settled, !(e.mine && e.soaking));
    }),
    { numRuns: 100 },
  );
});

test('failure reports and starts are not touched by the gate', () => {
  const f = fleet('enforce');
  const p = phaseParams(f.plans['stable']!, f.targets['web-01']!, 600, DEFAULT_TOLERANCES);
  const rolledBack = derivePhase(
    p,
    ackFor(f, 'web-01', 'rolled-back', NOW - MIN, { seq: 3, evidence: [evidenceOf('a', false)] }),
    NOW,
    false,
  );
  assert.is(rolledBack.phase, 'failed');
  const started = derivePhase(p, ackFor(f, 'web-01', 'started', NOW - MIN), NOW, false);
  assert.is(started.phase, 'activating');
});

test('failing controls are named with how they failed: exit code or no exit, and the excerpt when there is one', () => {
  const e = evidenceOf('a', false);
  assert.is(describeFailing([e]), 'fw/a (exit 1)');
  assert.is(
    describeFailing([{ ...e, exitCode: null, excerpt: 'timed out' }]),
    'fw/a (did not exit: timed out)',
  );
  assert.is(
    describeFailing([
      { ...e, exitCode: 3, excerpt: 'inactive' },
      { ...evidenceOf('b', false), exitCode: null },
    ]),
    'fw/a (exit 3: inactive); fw/b (did not exit)',
  );
  // Evidence for controls the plan does not require is ignored; passing evidence is neither failing nor missing.
  const v = judgeEvidence(runtime.slice(0, 2), [evidenceOf('a', true), evidenceOf('c', false)]);
  assert.equal(v, { failing: [], missing: ['fw/b'] });
  assert.equal(judgeEvidence(runtime.slice(0, 1), undefined), { failing: [], missing: ['fw/a'] });
});

test('a halted wave names its compliance failures: the failing hosts with their controls, at most five, and how many more', () => {
  const hosts = ['h-1', 'h-2', 'h-3', 'h-4', 'h-5', 'h-6', 'h-7', 'h-8'];
  const f = buildFleet({
    channels: [
      {
        name: 'stable',
        waves: [{ hosts, soakSeconds: 600 }],
        compliance: { mode: 'enforce', frameworks: ['fw'], runtime },
      },
    ],
  });
  const passing = CONTROLS.map((c) => evidenceOf(c, true));
  const failingAck = (h: string, control: string) =>
    ackFor(f, h, 'heartbeat', NOW - MIN, {
      healthySince: NOW - 20 * MIN,
      seq: 5,
      evidence: passing.map((e) => (e.control === control ? evidenceOf(control, false) : e)),
    });
  const view = (acks: ReturnType<typeof ackFor>[]) =>
    fleetView({
      now: NOW,
      plans: f.plans,
      budgets: f.budgets,
      revocations: f.revocations,
      acks: latestAcks(acks),
    }).channels[0]!;
  // h-1 rolled back (not a compliance failure); h-2..h-8 fail control b or c; seven of them.
  const acks = [
    ackFor(f, 'h-1', 'rolled-back', NOW - MIN, { seq: 3, reason: 'health check failed' }),
    ...hosts.slice(1).map((h, i) => failingAck(h, i % 2 === 0 ? 'b' : 'c')),
  ];
  const ch = view(acks);
  assert.is(ch.state, 'halted');
  assert.match(
    ch.reason,
    '; failing compliance controls (enforce): h-2: fw/b (exit 1); h-3: fw/c (exit 1); h-4: fw/b (exit 1); h-5: fw/c (exit 1); h-6: fw/b (exit 1); and 2 more',
  );
  assert.not.match(ch.reason, 'h-1: ', 'a rollback is no compliance failure');
  // Exactly five: all named, without "more".
  const five = view([
    ackFor(f, 'h-1', 'rolled-back', NOW - MIN, { seq: 3 }),
    ...hosts.slice(1, 6).map((h) => failingAck(h, 'a')),
  ]);
  assert.match(
    five.reason,
    'h-2: fw/a (exit 1); h-3: fw/a (exit 1); h-4: fw/a (exit 1); h-5: fw/a (exit 1); h-6: fw/a (exit 1); a newly',
  );
  // One compliance failure: named alone, without "more".
  const one = view([
    ackFor(f, 'h-1', 'rolled-back', NOW - MIN, { seq: 3 }),
    failingAck('h-8', 'a'),
  ]);
  assert.match(
    one.reason,
    /failing compliance controls \(enforce\): h-8: fw\/a \(exit 1\); a newly/,
  );
  // No compliance failure: the halted reason says nothing about compliance.
  const none = view([ackFor(f, 'h-1', 'rolled-back', NOW - MIN, { seq: 3 })]);
  assert.is(none.state, 'halted');
  assert.not.match(none.reason, 'compliance');
  assert.match(none.reason, 'than the 0 allowed; a newly signed release', 'nothing in between');
});

test('static controls: in enforce a manifest with failing ones is refused, naming each; permissive or passing never', () => {
  const f = buildFleet({
    channels: [
      {
        name: 'stable',
        waves: [{ hosts: ['web-01'], soakSeconds: 600 }],
        compliance: {
          mode: 'enforce',
          frameworks: ['fw'],
          runtime: [],
          static: {
            'web-01': [
              { framework: 'fw', control: 's1', ok: false, evidence: 'x = 1' },
              { framework: 'fw', control: 's2', ok: true, evidence: 'y = 2' },
              { framework: 'fw', control: 's3', ok: false, evidence: 'z = 3' },
            ],
          },
        },
      },
    ],
  });
  const m = f.manifests['web-01']!;
  const c = m.compliance!;
  assert.is(
    staticControlRefusal(m),
    `the manifest fails static compliance controls of channel stable (enforce): fw/s1: x = 1; fw/s3: z = 3; refusing ${m.target}`,
  );
  const single = { ...m, compliance: { ...c, static: c.static.slice(0, 2) } };
  assert.match(staticControlRefusal(single) ?? '', 'fails static compliance control of channel');
  assert.is(staticControlRefusal({ ...m, compliance: { ...c, static: [c.static[1]!] } }), null);
  assert.is(staticControlRefusal({ ...m, compliance: { ...c, mode: 'permissive' } }), null);
  assert.is(staticControlRefusal({ ...m, compliance: undefined }), null);
});

test.run();
