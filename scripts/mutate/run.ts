// `npm run mutate [target...] [-- stryker options]`: mutation testing with StrykerJS over reconciler/,
// protocol/verify/, the read side's caches and the ack endpoint's intake (targets `reconciler`,
// `verify`, `read-side`, `intake`; all when none is named). Each target is its own Stryker run (scripts/mutate/stryker.config.mjs) with its own
// incremental file, so a second run re-tests only the mutants whose code or tests changed. Reports land
// in reports/mutation/ (ignored by git); the summary printed at the end is the mutation score per target
// and per directory. Not part of `npm test`.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const TARGETS = ['reconciler', 'verify', 'read-side', 'intake'] as const;
type Target = (typeof TARGETS)[number];

// Statuses from the mutation-testing report schema. The score counts detected mutants among the valid
// ones: a mutant the type checker rejects (CompileError) or that crashes the runner is not valid.
const DETECTED = new Set(['Killed', 'Timeout']);
const UNDETECTED = new Set(['Survived', 'NoCoverage']);

interface Tally {
  detected: number;
  undetected: number;
  invalid: number;
}

interface Report {
  files: Record<string, { mutants: { status: string }[] }>;
}

function score(t: Tally): string {
  const valid = t.detected + t.undetected;
  return valid === 0 ? 'n/a' : `${((100 * t.detected) / valid).toFixed(2)} %`;
}

/** Tallies a Stryker JSON report per directory of the mutated files, plus the total. */
function tallyReport(report: Report): Map<string, Tally> {
  const tallies = new Map<string, Tally>();
  const add = (key: string, status: string) => {
    const t = tallies.get(key) ?? { detected: 0, undetected: 0, invalid: 0 };
    if (DETECTED.has(status)) t.detected++;
    else if (UNDETECTED.has(status)) t.undetected++;
    else t.invalid++;
    tallies.set(key, t);
  };
  for (const [file, { mutants }] of Object.entries(report.files)) {
    for (const m of mutants) {
      add('total', m.status);
      add(`${dirname(file)}/`, m.status);
    }
  }
  return tallies;
}

function runTarget(target: Target, root: string, strykerArgs: string[]): boolean {
  const started = Date.now();
  const r = spawnSync(
    process.execPath,
    [
      // The uvu runner plugin (scripts/mutate/uvu-runner.ts) is TypeScript.
      '--import',
      'tsx',
      'node_modules/@stryker-mutator/core/bin/stryker.js',
      'run',
      'scripts/mutate/stryker.config.mjs',
      ...strykerArgs,
    ],
    { cwd: root, stdio: 'inherit', env: { ...process.env, NIXFLEET_MUTATE_TARGET: target } },
  );
  const minutes = ((Date.now() - started) / 60_000).toFixed(1);
  console.log(`\n${target}: stryker exited with ${r.status ?? r.signal} after ${minutes} min`);
  return r.status === 0;
}

function summary(target: Target, root: string): void {
  const file = `${root}/reports/mutation/${target}.json`;
  if (!existsSync(file)) {
    console.log(`${target}: no report at ${file}`);
    return;
  }
  const tallies = tallyReport(JSON.parse(readFileSync(file, 'utf8')) as Report);
  console.log(
    `\nmutation score, ${target} (killed + timeout) / (killed + timeout + survived + no coverage):`,
  );
  for (const [key, t] of [...tallies].sort(([a], [b]) => a.localeCompare(b))) {
    const counts = `${t.detected} detected, ${t.undetected} undetected, ${t.invalid} invalid`;
    console.log(`  ${key.padEnd(28)} ${score(t).padStart(8)}   (${counts})`);
  }
}

{
  const root = fileURLToPath(new URL('../..', import.meta.url));
  // Options (`--mutate reconciler/decide.ts`, `--force`) go to Stryker as they are; the rest name targets.
  const argv = process.argv.slice(2);
  const firstOption = argv.findIndex((a) => a.startsWith('--'));
  const asked = firstOption < 0 ? argv : argv.slice(0, firstOption);
  const strykerArgs = firstOption < 0 ? [] : argv.slice(firstOption);
  for (const a of asked) {
    if (!(TARGETS as readonly string[]).includes(a)) {
      console.error(
        `npm run mutate: unknown target '${a}' (expected one of: ${TARGETS.join(', ')})`,
      );
      process.exit(2);
    }
  }
  const targets = (asked.length > 0 ? asked : TARGETS) as Target[];
  let ok = true;
  for (const target of targets) ok = runTarget(target, root, strykerArgs) && ok;
  for (const target of targets) summary(target, root);
  process.exit(ok ? 0 : 1);
}
