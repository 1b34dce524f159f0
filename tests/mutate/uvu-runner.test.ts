// The in-process uvu runner of `npm run mutate` (scripts/mutate/uvu-runner.ts), driven as Stryker drives
// it, over fixture test files whose code is switched the way Stryker instruments it
// (tests/mutate/fixtures/lib.ts). What must hold for the mutation score to mean anything: a mutant is
// killed exactly when a covering test fails, even when it acts while a module loads or behind a
// module-level memo filled by an earlier run; coverage names each file that reached a mutant; an endless
// loop ends as a timeout; a test file that dies takes the mutant with it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StrykerOptions } from '@stryker-mutator/api/core';
import type { Logger } from '@stryker-mutator/api/logging';
import {
  DryRunStatus,
  MutantRunStatus,
  TestStatus,
  type MutantRunOptions,
  type MutantRunResult,
} from '@stryker-mutator/api/test-runner';
import { expandTestFiles, UvuInProcessRunner } from '../../scripts/mutate/uvu-runner.ts';

const fixture = (name: string) => fileURLToPath(new URL(`fixtures/${name}`, import.meta.url));
const LIMIT = fixture('limit.fixture.ts');
const DOUBLE = fixture('double.fixture.ts');
const COUNT = fixture('count.fixture.ts');
const EXIT = fixture('exit.fixture.ts');
const ENV = fixture('env.fixture.ts');
const THREAD = fixture('thread.fixture.ts');

const quiet = { debug: () => undefined, isDebugEnabled: () => false } as unknown as Logger;

const scratch = mkdtempSync(join(tmpdir(), 'nixfleet-uvu-runner-'));
test.after(() => rmSync(scratch, { recursive: true, force: true }));

async function runner(
  files = [LIMIT, DOUBLE, COUNT],
  timesFile = join(scratch, `times-${Math.random()}.json`),
): Promise<UvuInProcessRunner> {
  const options = { uvu: { testFiles: files, timesFile } } as unknown as StrykerOptions;
  const r = new UvuInProcessRunner(options, quiet);
  await r.init();
  return r;
}

function mutant(id: string, files: string[], extra: Partial<MutantRunOptions> = {}) {
  return {
    activeMutant: { id, fileName: fixture('lib.ts'), mutatorName: 'test', replacement: '' },
    testFilter: files,
    disableBail: false,
    timeout: 60_000,
    sandboxFileName: fixture('lib.ts'),
    mutantActivation: 'runtime',
    reloadEnvironment: false,
    ...extra,
  } as MutantRunOptions;
}

function killedBy(r: MutantRunResult): string[] {
  assert.is(r.status, MutantRunStatus.Killed, JSON.stringify(r));
  return r.status === MutantRunStatus.Killed ? r.killedBy : [];
}

test('the initial run passes every file and gives each the mutants it reached, module loads included', async () => {
  const r = await runner();
  const dry = await r.dryRun({ coverageAnalysis: 'perTest', disableBail: false, timeout: 60_000 });
  assert.is(dry.status, DryRunStatus.Complete);
  if (dry.status !== DryRunStatus.Complete) return;
  assert.equal(
    dry.tests.map((t) => [t.id, t.status]),
    [LIMIT, DOUBLE, COUNT].map((f) => [f, TestStatus.Success]),
  );
  assert.equal(dry.mutantCoverage?.static, {}, 'no mutant is static: each file loads afresh');
  const perTest = dry.mutantCoverage?.perTest ?? {};
  assert.equal(Object.keys(perTest[LIMIT] ?? {}), ['0']);
  assert.equal(Object.keys(perTest[DOUBLE] ?? {}).sort(), ['0', '1']);
  assert.equal(Object.keys(perTest[COUNT] ?? {}).sort(), ['0', '2']);
});

test('a mutant acting while its module loads is killed by the file that loads it', async () => {
  const r = await runner();
  assert.equal(killedBy(await r.mutantRun(mutant('0', [LIMIT]))), [LIMIT]);
  assert.is((await r.mutantRun(mutant('0', [DOUBLE]))).status, MutantRunStatus.Survived);
});

test('each run loads the code afresh: a module-level memo carries nothing from one mutant to the next', async () => {
  const r = await runner();
  await r.dryRun({ coverageAnalysis: 'perTest', disableBail: false, timeout: 60_000 });
  // The initial run memoised double(2) = 4; the mutant must still be seen computing 6.
  assert.equal(killedBy(await r.mutantRun(mutant('1', [DOUBLE]))), [DOUBLE]);
  // ... and the memoised 6 must not fail the next mutant's run.
  assert.is((await r.mutantRun(mutant('0', [DOUBLE]))).status, MutantRunStatus.Survived);
  assert.equal(killedBy(await r.mutantRun(mutant('1', [DOUBLE]))), [DOUBLE]);
});

test('an endless loop ends as a timeout at the hit limit', async () => {
  const r = await runner();
  const result = await r.mutantRun(mutant('2', [COUNT], { hitLimit: 1000 }));
  assert.is(result.status, MutantRunStatus.Timeout);
});

test('the first failing file ends the run unless bail is disabled', async () => {
  const r = await runner();
  // Mutant 0 fails limit.fixture only; double.fixture would pass and count.fixture too.
  const bailed = await r.mutantRun(mutant('0', [LIMIT, DOUBLE, COUNT]));
  assert.equal(killedBy(bailed), [LIMIT]);
  assert.is(bailed.status === MutantRunStatus.Killed && bailed.nrOfTests, 1);
  const all = await r.mutantRun(mutant('0', [LIMIT, DOUBLE, COUNT], { disableBail: true }));
  assert.equal(killedBy(all), [LIMIT]);
  assert.is(all.status === MutantRunStatus.Killed && all.nrOfTests, 3);
});

test("a runner started later runs a mutant's files fastest first, from the initial run's times", async () => {
  const timesFile = join(scratch, 'times-order.json');
  // As if the initial run had found limit.fixture slow and count.fixture fast.
  writeFileSync(timesFile, JSON.stringify({ [LIMIT]: 900, [DOUBLE]: 500, [COUNT]: 100 }));
  const r = await runner([LIMIT, DOUBLE, COUNT], timesFile);
  // Mutant 0 fails only limit.fixture: reaching it means both faster files ran first.
  const result = await r.mutantRun(mutant('0', [LIMIT, DOUBLE, COUNT]));
  assert.equal(killedBy(result), [LIMIT]);
  assert.is(result.status === MutantRunStatus.Killed && result.nrOfTests, 3);
});

test('a test file that ends its process fails, and kills the mutant', async () => {
  const r = await runner([EXIT, LIMIT]);
  const result = await r.mutantRun(mutant('9', [EXIT, LIMIT]));
  assert.equal(killedBy(result), [EXIT]);
  assert.match(result.status === MutantRunStatus.Killed ? result.failureMessage : '', /code 3/);
});

test("a run changes the process's real environment (the time zone follows TZ), and each run starts from the same", async () => {
  const r = await runner([ENV]);
  assert.is((await r.mutantRun(mutant('9', [ENV]))).status, MutantRunStatus.Survived);
  assert.is(process.env['NIXFLEET_MUTATE_FIXTURE_LEFT'], undefined);
});

test('a thread a test starts runs the active mutant too (it reads it from the environment)', async () => {
  const r = await runner([THREAD]);
  const dry = await r.dryRun({ coverageAnalysis: 'perTest', disableBail: false, timeout: 60_000 });
  assert.is(dry.status === DryRunStatus.Complete && dry.tests[0]?.status, TestStatus.Success);
  assert.equal(killedBy(await r.mutantRun(mutant('9', [THREAD]))), [THREAD]);
  assert.is(
    process.env['__STRYKER_ACTIVE_MUTANT__'],
    undefined,
    'and the variable is gone after the run',
  );
});

test('test file patterns: a star in the file name, in name order, each file once', () => {
  const dir = fileURLToPath(new URL('fixtures', import.meta.url));
  assert.equal(expandTestFiles([`${dir}/*.fixture.ts`, LIMIT]), [
    COUNT,
    DOUBLE,
    ENV,
    EXIT,
    LIMIT,
    THREAD,
  ]);
  assert.throws(() => expandTestFiles([`${dir}/*/x.ts`]), /in the file name only/);
});

test.run();
