// `nixfleet simulate`: summary output, JSON mode, exit codes and usage errors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import command from '../../cli/simulate.ts';
import { UsageError } from '../../cli/command.ts';
import { captureOutput } from '../support/cli.ts';

const capture = (argv: string[]) => captureOutput(() => command.run(argv));

test('--json summary of a small converging rollout, within 10% of the theoretical minimum', async () => {
  const { code, out } = await capture([
    '--hosts',
    '30',
    '--channels',
    '2',
    '--waves',
    '3',
    '--seed',
    '9',
    '--soak',
    '300',
    '--chain',
    '--budget-pct',
    '20',
    '--json',
  ]);
  assert.is(code, 0);
  const s = JSON.parse(out) as {
    converged: boolean;
    activations: number;
    completedSeconds: number;
    theoreticalMinimumSeconds: number;
    violations: string[];
    budgets: Record<string, { max: number; observed: number }>;
  };
  assert.ok(s.converged);
  assert.is(s.activations, 30);
  assert.equal(s.violations, []);
  assert.ok(s.completedSeconds >= s.theoreticalMinimumSeconds * 0.9);
  assert.is(s.budgets['fleet']!.max, 6);
  assert.ok(s.budgets['fleet']!.observed <= 6);
});

test('a failing rollout exits 1 and says it halted', async () => {
  const { code, out } = await capture([
    '--hosts',
    '12',
    '--channels',
    '1',
    '--waves',
    '2',
    '--seed',
    '2',
    '--soak',
    '120',
    '--failure-rate',
    '1',
  ]);
  assert.is(code, 1);
  assert.match(out, /did NOT converge/);
  assert.match(out, /halted/);
});

test('a wave failure threshold lets a rollout with failures converge; --quantum aligns polls; acks are counted without keeping the history', async () => {
  const argv = [
    '--hosts',
    '60',
    '--channels',
    '1',
    '--waves',
    '2',
    '--seed',
    '4',
    '--soak',
    '120',
    '--failure-rate',
    '0.1',
    '--quantum',
    '5',
    '--json',
  ];
  const halted = JSON.parse((await capture(argv)).out) as { converged: boolean; failures: number };
  assert.ok(halted.failures > 0, 'the seed produces failures');
  assert.not.ok(halted.converged, 'with no tolerated failures the rollout halts');
  const { code, out } = await capture([...argv, '--failure-threshold-pct', '50']);
  assert.is(code, 0);
  const s = JSON.parse(out) as {
    converged: boolean;
    failures: number;
    acks: number;
    quantumSeconds: number;
    violations: string[];
  };
  assert.ok(s.converged);
  assert.ok(s.failures > 0);
  assert.is(s.quantumSeconds, 5);
  assert.ok(s.acks > 60 * 3, `acks counted: ${s.acks}`);
  assert.equal(s.violations, []);
});

test('usage errors name the option', async () => {
  for (const [argv, re] of [
    [['--hosts', 'many'], /--hosts must be a whole number/],
    [['--failure-rate', '2'], /--failure-rate/],
    [['--quantum', '0'], /--quantum/],
    [['--failure-threshold-pct', '101'], /--failure-threshold-pct/],
    [['--bogus'], /bogus/],
  ] as const) {
    try {
      await capture([...argv]);
      assert.unreachable(`accepted ${argv.join(' ')}`);
    } catch (e) {
      assert.instance(e, UsageError);
      assert.match((e as Error).message, re);
    }
  }
});

test.run();
