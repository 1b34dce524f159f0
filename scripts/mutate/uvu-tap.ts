// Runs ONE uvu test file and reports it as TAP, for StrykerJS's tap runner (`npm run mutate`). The tap
// runner starts each test file as its own node process and reads TAP from its stdout:
//
//   node -r <stryker hook> --import tsx scripts/mutate/uvu-tap.ts tests/reconciler/phase.test.ts
//
// stdout therefore carries only TAP: a version line, one `ok`/`not ok` per test, and the plan. uvu's own
// report and anything a test prints go to stderr. A file that cannot even load (a mutant that breaks a
// module's top level) is one failed test, so Stryker counts the mutant as killed rather than as an error.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isolateCacheHome } from '../../tests/support/cache-home.ts';

type SuiteRun = () => Promise<
  [errors: string | true, passed: number, skipped: number, total: number]
>;
type Write = typeof process.stdout.write;

// The marks uvu's runner writes after each test (kleur leaves them uncoloured: stdout is a pipe).
const PASS_MARK = '• ';
const FAIL_MARK = '✘ ';

const tap = process.stdout.write.bind(process.stdout) as (text: string) => boolean;
const toStderr = ((chunk: unknown, ...rest: unknown[]) =>
  (process.stderr.write as (c: unknown, ...r: unknown[]) => boolean)(chunk, ...rest)) as Write;
let count = 0;
let failed = 0;

function report(ok: boolean, name: string, details = ''): void {
  count++;
  if (!ok) failed++;
  tap(`${ok ? 'ok' : 'not ok'} ${count} - ${name.replace(/#/g, '\\#')}\n`);
  for (const line of details.split('\n').filter((l) => l.trim() !== '')) tap(`  # ${line}\n`);
}

function finish(): never {
  tap(`1..${count}\n`);
  process.exit(failed > 0 ? 1 : 0);
}

const file = process.argv[2];
if (!file) {
  console.error('usage: node --import tsx scripts/mutate/uvu-tap.ts <test file>');
  process.exit(2);
}
isolateCacheHome();
tap('TAP version 13\n');
process.stdout.write = toStderr;
// A test that throws outside uvu's try (a stray timer, an unawaited promise) fails the file.
for (const event of ['uncaughtException', 'unhandledRejection'] as const) {
  process.on(event, (err: unknown) => {
    report(false, `${file}: ${event}`, String((err as Error)?.stack ?? err));
    finish();
  });
}

// The same deferred-queue protocol tests/run.ts uses: importing a test file queues its suites.
const g = globalThis as unknown as { UVU_DEFER: number; UVU_QUEUE: unknown[][]; UVU_INDEX: number };
g.UVU_DEFER = 1;
g.UVU_QUEUE = [[file]];
g.UVU_INDEX = 0;
try {
  await import(pathToFileURL(resolve(file)).href);
} catch (err) {
  report(false, `${file}: load`, String((err as Error)?.stack ?? err));
  finish();
}

const [, ...suites] = g.UVU_QUEUE[0] as [string, ...SuiteRun[]];
for (const [index, run] of suites.entries()) {
  // uvu writes one mark per finished test; count them to report each test on its own line.
  const marks: boolean[] = [];
  process.stdout.write = ((chunk: unknown, ...rest: unknown[]) => {
    if (chunk === PASS_MARK || chunk === FAIL_MARK) marks.push(chunk === PASS_MARK);
    return toStderr(chunk as string, ...(rest as []));
  }) as Write;
  const [errors, , , total] = await run();
  process.stdout.write = toStderr;
  const suite = `${file} suite ${index + 1}`;
  for (const [i, ok] of marks.entries()) report(ok, `${suite} test ${i + 1}`);
  // A throwing before hook ends the suite before its tests run (uvu then reports fewer passed than total);
  // a throwing after.each hook fails it with no failed mark. Either way the suite fails.
  if (marks.length < total || (errors !== true && marks.every(Boolean)))
    report(false, `${suite}: hooks`);
  if (errors !== true) for (const line of errors.split('\n')) tap(`  # ${line}\n`);
}
if (count === 0) report(false, `${file}: no tests ran`);
finish();
