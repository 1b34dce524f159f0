// The compliance gate on a host's phase (reconciler/compliance.ts), as properties over random evidence:
// in `enforce`, a health claim counts (soaked) exactly when every runtime control of the plan has passing
// evidence; a failing control of this rollout is a reported failure; `permissive` never changes a phase.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { derivePhase, phaseParams, DEFAULT_TOLERANCES } from '../../reconciler/index.ts';
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
});

function phaseFor(
  mode: 'enforce' | 'permissive',
  e: { states: string[]; extraFailing: boolean; mine: boolean },
) {
  const f = fleet(mode);
  const p = phaseParams(f.plans['stable']!, f.targets['web-01']!, 600, DEFAULT_TOLERANCES);
  const evidence = CONTROLS.flatMap((c, i) =>
    e.states[i] === 'absent' ? [] : [evidenceOf(c, e.states[i] === 'pass')],
  );
  if (e.extraFailing) evidence.push({ ...evidenceOf('other', false), framework: 'unlisted' });
  const ack = ackFor(f, 'web-01', 'heartbeat', NOW - MIN, {
    healthySince: NOW - 20 * MIN,
    seq: 5,
    evidence,
    ...(e.mine ? {} : { rolloutId: `sha256:${'e'.repeat(64)}` }),
  });
  return derivePhase(p, ack, NOW, false);
}

test('enforce: settled exactly when every runtime control passes; a failing one of this rollout is a reported failure', () => {
  fc.assert(
    fc.property(evidenceArb, (e) => {
      const ph = phaseFor('enforce', e);
      const allPass = e.states.every((s) => s === 'pass');
      assert.is(ph.settled, allPass, ph.note);
      assert.is(ph.done, allPass || (e.mine && e.states.includes('fail')), ph.note);
      if (!allPass && e.mine && e.states.includes('fail')) {
        assert.is(ph.phase, 'failed');
        assert.is(ph.failure, 'reported');
        const failing = CONTROLS.filter((_, i) => e.states[i] === 'fail');
        for (const c of failing) assert.ok(ph.note.includes(`fw/${c}`), ph.note);
      } else if (!allPass && e.mine) {
        assert.is(ph.phase, 'healthy');
        assert.ok(ph.inFlight, 'a started host without evidence stays in flight');
        for (const c of CONTROLS.filter((_, i) => e.states[i] === 'absent'))
          assert.ok(ph.note.includes(`fw/${c}`), ph.note);
      } else if (!allPass) assert.is(ph.phase, 'pending');
      else assert.is(ph.phase, e.mine ? 'soaked' : 'converged');
    }),
    { numRuns: 300 },
  );
});

test('permissive: evidence never changes a phase', () => {
  fc.assert(
    fc.property(evidenceArb, (e) => {
      const ph = phaseFor('permissive', e);
      assert.is(ph.phase, e.mine ? 'soaked' : 'converged');
      assert.ok(ph.settled);
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

test.run();
