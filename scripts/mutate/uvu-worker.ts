// One test run of the in-process uvu runner (scripts/mutate/uvu-runner.ts), in a worker thread of its own.
// A worker thread has its own module graph, so each run loads the sandbox's code afresh with the mutant
// already active: module-level memos (reconciler/context.ts's plan indexes, maintenance.ts's parsed cron
// expressions) cannot carry a value computed under one mutant into the next run, and a mutant executed
// while a module loads takes effect like any other. What a run saves over the tap runner is the node and
// tsx start of every test file: all the files of a run share one worker.
//
// Input (workerData): RunRequest. Output: one FileOutcome message per file as it ends, then RunEnd.
import { parentPort, workerData } from 'node:worker_threads';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

export interface RunRequest {
  /** Test files, relative to the sandbox (the worker's cwd), run in this order. */
  files: string[];
  /** Stryker's global namespace (`__stryker__`): the instrumented code reads the active mutant there. */
  namespace: string;
  activeMutant?: string;
  hitLimit?: number;
  /** Stop after the first failing file (a mutant is killed by one failure). */
  bail: boolean;
}

export interface FileOutcome {
  kind: 'file';
  file: string;
  ok: boolean;
  /** uvu's report of the failures (or the load error), when not ok. */
  failure?: string;
  ms: number;
}

export interface RunEnd {
  kind: 'end';
  /** How often the active mutant was reached (only counted when a hit limit is set). */
  hitCount?: number;
  /** Every mutant the run reached, with its hit count (Stryker's `mutantCoverage.static`). */
  coverage: Record<string, number>;
}

type SuiteRun = () => Promise<
  [errors: string | true, passed: number, skipped: number, total: number]
>;

interface StrykerGlobal {
  activeMutant?: string;
  hitLimit?: number;
  hitCount?: number;
  mutantCoverage?: { static: Record<string, number>; perTest: Record<string, unknown> };
}

// uvu's runner returns [errors, passed, skipped, total] and never rejects for a failing test. A test that
// fails leaves errors as text; a throwing before hook ends the suite early with errors still `true` but
// fewer passed than total (the hook's error is swallowed by the runner's `finally`); a throwing after hook
// rejects. Only all-passed is a pass.
async function runFile(file: string): Promise<{ ok: boolean; failure?: string }> {
  const g = globalThis as unknown as { UVU_QUEUE: unknown[][]; UVU_INDEX: number };
  g.UVU_QUEUE = [[file]];
  g.UVU_INDEX = 0;
  try {
    await import(pathToFileURL(resolve(file)).href);
  } catch (err) {
    return { ok: false, failure: `${file}: load: ${describe(err)}` };
  }
  const [, ...suites] = g.UVU_QUEUE[0] as [string, ...SuiteRun[]];
  if (suites.length === 0) return { ok: false, failure: `${file}: no tests ran` };
  const failures: string[] = [];
  for (const [index, run] of suites.entries()) {
    const suite = `${file} suite ${index + 1}`;
    try {
      const [errors, passed, , total] = await run();
      if (errors !== true) failures.push(errors);
      else if (passed < total)
        failures.push(`${suite}: a hook failed (${passed} of ${total} passed)`);
    } catch (err) {
      failures.push(`${suite}: after hook: ${describe(err)}`);
    }
  }
  return failures.length === 0 ? { ok: true } : { ok: false, failure: failures.join('\n') };
}

function describe(err: unknown): string {
  return String((err as Error)?.stack ?? err);
}

{
  const request = workerData as RunRequest;
  const ns: StrykerGlobal = {};
  (globalThis as Record<string, unknown>)[request.namespace] = ns;
  if (request.activeMutant !== undefined) ns.activeMutant = request.activeMutant;
  if (request.hitLimit !== undefined) {
    ns.hitLimit = request.hitLimit;
    ns.hitCount = 0;
  }
  // Before uvu loads: its suites then queue their run functions instead of running on their own.
  (globalThis as unknown as { UVU_DEFER: number }).UVU_DEFER = 1;
  const port = parentPort!;
  for (const file of request.files) {
    const started = performance.now();
    const outcome = await runFile(file);
    const message: FileOutcome = {
      kind: 'file',
      file,
      ...outcome,
      ms: Math.round(performance.now() - started),
    };
    port.postMessage(message);
    if (!outcome.ok && request.bail) break;
  }
  const end: RunEnd = { kind: 'end', coverage: ns.mutantCoverage?.static ?? {} };
  if (ns.hitCount !== undefined) end.hitCount = ns.hitCount;
  port.postMessage(end);
}
