// A StrykerJS test runner (`testRunner: 'uvu-in-process'`, scripts/mutate/stryker.config.mjs) that runs
// uvu test files inside Stryker's own test-runner process instead of one node process per file and mutant
// (the tap runner with scripts/mutate/uvu-tap.ts, kept as the fallback: `--testRunner tap`).
//
// Stryker compiles every mutant into the sandbox code once and the instrumented code picks the active one
// from `globalThis.__stryker__.activeMutant`. Each run here (the initial run of one test file, or one
// mutant's run of the files that cover it) is a fresh worker thread (scripts/mutate/uvu-worker.ts) that
// sets that global and then imports the files: a fresh module graph per run, because the code under test
// keeps module-level memos keyed by plan, budgets and cron expression. Re-running the suites of files
// imported once would let a value computed under one mutant (or none) answer for the next mutant: a false
// kill or a false survivor. A worker thread costs about 0.3 s; the tap runner paid 0.5-1 s per FILE.
//
// Coverage is per file, as the tap runner reports it: the initial run gives each file its own worker, so
// everything the file executed (its module loads included) counts as its coverage, no mutant is "static",
// and a mutant runs exactly the files that reached it. Those files run fastest first (the initial run's
// times, kept in the sandbox for runner processes Stryker restarts, then updated as runs go), so a killed mutant usually costs only its cheapest failing file. The hit limit (a mutant looping
// forever) is checked on the run's total hit count and reported as a timeout; a run that hangs is ended by
// Stryker's own timeout, which restarts this process.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { SHARE_ENV, Worker } from 'node:worker_threads';
import { INSTRUMENTER_CONSTANTS, type StrykerOptions } from '@stryker-mutator/api/core';
import type { Logger } from '@stryker-mutator/api/logging';
import { commonTokens, declareClassPlugin, PluginKind, tokens } from '@stryker-mutator/api/plugin';
import {
  determineHitLimitReached,
  DryRunStatus,
  MutantRunStatus,
  TestStatus,
  toMutantRunResult,
  type DryRunOptions,
  type DryRunResult,
  type MutantRunOptions,
  type MutantRunResult,
  type TestResult,
  type TestRunner,
  type TestRunnerCapabilities,
} from '@stryker-mutator/api/test-runner';
import { isolateCacheHome } from '../../tests/support/cache-home.ts';
import type { FileOutcome, RunEnd, RunRequest } from './uvu-worker.ts';

export const RUNNER_NAME = 'uvu-in-process';

interface UvuOptions {
  /** Test files: paths relative to the project, `*` allowed in the file name (`tests/reconciler/*.test.ts`). */
  testFiles: string[];
  /** Where the initial run's times are kept (default TIMES_FILE, in the sandbox). */
  timesFile?: string;
}

// A worker thread does not inherit the --import hooks of its process (Node 20), so it registers tsx itself
// before loading the TypeScript worker module.
const WORKER_BOOT = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))})
  .then((tsx) => { tsx.register(); return import(${JSON.stringify(new URL('./uvu-worker.ts', import.meta.url).href)}); })`;

// Relative to the sandbox (every runner's cwd): the initial run's time per test file, for the runner processes
// Stryker starts later (more runners once type checking ends; a fresh one after each timeout).
const TIMES_FILE = '.uvu-runner-times.json';

// The text the instrumented code throws once the active mutant has been reached hitLimit times.
const HIT_LIMIT_ERROR = 'Stryker: Hit count limit reached';

/** What one worker run gave: the files' outcomes in run order, and how it ended. */
interface WorkerRun {
  outcomes: FileOutcome[];
  end?: RunEnd;
  /** The worker died (an uncaught error or process.exit in a test file) while running this file. */
  crash?: { file: string | undefined; message: string };
}

/** Expands `dir/*.suffix` patterns (the only form the configuration uses) in name order. */
export function expandTestFiles(patterns: readonly string[]): string[] {
  const files = patterns.flatMap((pattern) => {
    const name = basename(pattern);
    if (dirname(pattern).includes('*'))
      throw new Error(`uvu.testFiles: '${pattern}': '*' is supported in the file name only`);
    if (!name.includes('*')) return [pattern];
    const re = new RegExp(`^${name.split('*').map(escapeRegExp).join('[^/]*')}$`);
    return readdirSync(dirname(pattern))
      .filter((f) => re.test(f))
      .sort()
      .map((f) => join(dirname(pattern), f));
  });
  return [...new Set(files)];
}

function escapeRegExp(text: string): string {
  return text.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
}

function runWorker(request: RunRequest, log: Logger): Promise<WorkerRun> {
  return new Promise((resolveRun) => {
    const run: WorkerRun = { outcomes: [] };
    let current: string | undefined = request.files[0];
    // stdout/stderr: true keeps uvu's report and the tests' output out of Stryker's log; nobody reads it.
    // SHARE_ENV: the process's own environment, not a copy, because only a change to the real one moves
    // the time zone (`process.env.TZ = ...`, as tests/reconciler/time.test.ts does); runEnvRestored()
    // undoes whatever a run changed.
    const worker = new Worker(WORKER_BOOT, {
      eval: true,
      workerData: request,
      env: SHARE_ENV,
      stdout: true,
      stderr: true,
    });
    worker.stdout.resume();
    worker.stderr.resume();
    worker.on('message', (m: FileOutcome | RunEnd) => {
      if (m.kind === 'file') {
        run.outcomes.push(m);
        current = request.files[request.files.indexOf(m.file) + 1];
      } else {
        run.end = m;
        // A test may leave a timer or a socket behind; the run is over all the same.
        void worker.terminate();
      }
    });
    worker.on('error', (err) => {
      run.crash = { file: current, message: String(err?.stack ?? err) };
      log.debug(`uvu worker error in ${current}: ${run.crash.message}`);
    });
    worker.on('exit', (code) => {
      if (run.end === undefined && run.crash === undefined)
        run.crash = { file: current, message: `the test worker exited with code ${code}` };
      resolveRun(run);
    });
  });
}

/** Runs `run` and then puts the environment back as it was, so no run sees what an earlier one set. */
async function runEnvRestored<T>(run: () => Promise<T>): Promise<T> {
  const saved = { ...process.env };
  try {
    return await run();
  } finally {
    for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
    for (const [key, value] of Object.entries(saved))
      if (process.env[key] !== value) process.env[key] = value;
  }
}

function testResult(outcome: FileOutcome): TestResult {
  const base = {
    id: outcome.file,
    name: outcome.file,
    fileName: outcome.file,
    timeSpentMs: outcome.ms,
  };
  return outcome.ok
    ? { ...base, status: TestStatus.Success }
    : { ...base, status: TestStatus.Failed, failureMessage: outcome.failure ?? 'failed' };
}

/** A crash inside a test file fails that file (as the tap shim did); one before any file is the runner's. */
function crashedFile(crash: NonNullable<WorkerRun['crash']>): TestResult | undefined {
  if (crash.file === undefined) return undefined;
  return testResult({ kind: 'file', file: crash.file, ok: false, failure: crash.message, ms: 0 });
}

export class UvuInProcessRunner implements TestRunner {
  static inject = tokens(commonTokens.options, commonTokens.logger);
  private files: string[] = [];
  private timesFile = TIMES_FILE;
  /** Last measured run time per file (ms): a mutant's files run fastest first. */
  private readonly times = new Map<string, number>();

  constructor(
    private readonly options: StrykerOptions,
    private readonly log: Logger,
  ) {}

  capabilities(): TestRunnerCapabilities {
    // Every run loads the sandbox afresh in its own worker thread: a static mutant needs nothing more.
    return { reloadEnvironment: true };
  }

  async init(): Promise<void> {
    isolateCacheHome();
    const uvu = this.options['uvu'] as UvuOptions | undefined;
    if (!uvu?.testFiles?.length) throw new Error(`${RUNNER_NAME}: uvu.testFiles is not configured`);
    this.files = expandTestFiles(uvu.testFiles);
    this.timesFile = uvu.timesFile ?? TIMES_FILE;
    if (this.files.length === 0)
      throw new Error(`${RUNNER_NAME}: uvu.testFiles (${uvu.testFiles}) matches no file`);
    try {
      const saved = JSON.parse(readFileSync(this.timesFile, 'utf8')) as Record<string, number>;
      for (const [file, ms] of Object.entries(saved)) this.times.set(file, ms);
    } catch {
      // Not written yet (this process runs the initial run), or unreadable: times are learnt as runs go.
    }
  }

  async dryRun(options: DryRunOptions): Promise<DryRunResult> {
    const files = options.testFiles?.length ? options.testFiles : this.files;
    const tests: TestResult[] = [];
    const perTest: Record<string, Record<string, number>> = {};
    for (const file of files) {
      const run = await this.run({ files: [file], bail: false });
      if (run.crash && crashedFile(run.crash) === undefined)
        return { status: DryRunStatus.Error, errorMessage: run.crash.message };
      tests.push(...this.results(run));
      perTest[file] = run.end?.coverage ?? {};
    }
    writeFileSync(this.timesFile, JSON.stringify(Object.fromEntries(this.times)));
    return { status: DryRunStatus.Complete, tests, mutantCoverage: { static: {}, perTest } };
  }

  async mutantRun(options: MutantRunOptions): Promise<MutantRunResult> {
    const files = [...(options.testFilter ?? this.files)].sort(
      (a, b) => (this.times.get(a) ?? 0) - (this.times.get(b) ?? 0),
    );
    const request: Omit<RunRequest, 'namespace'> = {
      files,
      activeMutant: options.activeMutant.id,
      bail: !options.disableBail,
    };
    if (options.hitLimit !== undefined) request.hitLimit = options.hitLimit;
    const run = await this.run(request);
    if (run.crash?.message.includes(HIT_LIMIT_ERROR))
      return { status: MutantRunStatus.Timeout, reason: run.crash.message.split('\n')[0] };
    const hitLimit = determineHitLimitReached(run.end?.hitCount, options.hitLimit);
    if (hitLimit) return toMutantRunResult(hitLimit);
    if (run.crash && crashedFile(run.crash) === undefined)
      return { status: MutantRunStatus.Error, errorMessage: run.crash.message };
    return toMutantRunResult({ status: DryRunStatus.Complete, tests: this.results(run) });
  }

  private run(request: Omit<RunRequest, 'namespace'>): Promise<WorkerRun> {
    return runEnvRestored(() => {
      // Also in the environment, as the tap runner sets it: code under test that runs in threads or
      // processes of its own (protocol/verify's batch-verify helper thread) reads the mutant from there.
      if (request.activeMutant !== undefined)
        process.env[INSTRUMENTER_CONSTANTS.ACTIVE_MUTANT_ENV_VARIABLE] = request.activeMutant;
      return runWorker({ ...request, namespace: INSTRUMENTER_CONSTANTS.NAMESPACE }, this.log);
    });
  }

  private results(run: WorkerRun): TestResult[] {
    for (const o of run.outcomes) this.times.set(o.file, o.ms);
    const crashed = run.crash && crashedFile(run.crash);
    return [...run.outcomes.map(testResult), ...(crashed ? [crashed] : [])];
  }
}

export const strykerPlugins = [
  declareClassPlugin(PluginKind.TestRunner, RUNNER_NAME, UvuInProcessRunner),
];

// Lets Stryker validate (rather than warn about) the `uvu` block of the configuration.
export const strykerValidationSchema = {
  $schema: 'http://json-schema.org/draft-07/schema',
  type: 'object',
  properties: {
    uvu: {
      type: 'object',
      additionalProperties: false,
      properties: {
        testFiles: { type: 'array', items: { type: 'string' } },
        timesFile: { type: 'string' },
      },
    },
  },
};
