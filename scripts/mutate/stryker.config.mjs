// StrykerJS configuration for `npm run mutate` (scripts/mutate/run.ts). One target per run, chosen by
// NIXFLEET_MUTATE_TARGET, so each directory keeps its own incremental file and report and its score is
// reported on its own (docs/benchmarks.md, "Mutation testing").
const TARGETS = {
  reconciler: {
    mutate: ['reconciler/**/*.ts'],
    // The uvu files that exercise reconciler/ in-process (fast and pure: no nix, nginx or browser).
    testFiles: ['tests/reconciler/*.test.ts'],
  },
  verify: {
    mutate: ['protocol/verify/**/*.ts'],
    testFiles: ['tests/verify/*.test.ts', 'tests/protocol/*.test.ts'],
  },
  // The operator views' memory between runs and looks: what a wrong view would come from.
  'read-side': {
    mutate: [
      'read-side/log-index.ts',
      'read-side/ack-file-memo.ts',
      'read-side/verified-cache.ts',
      'read-side/trace-replay.ts',
      'read-side/arrived-acks.ts',
    ],
    testFiles: ['tests/read-side/*.test.ts'],
    tsconfig: 'scripts/mutate/tsconfig.read-side.json',
  },
  // The one write path from outside: what the ack endpoint takes from hosts (strict JSON, the ack's
  // schema, the log's framing, the chain rules) and how it keeps it (the append-only log, its segments
  // and snapshots). Only the tests that run the endpoint in-process (crash.test.ts kills a child
  // endpoint, then recovers its log here): a mutant is active in this process only.
  intake: {
    mutate: [
      'protocol/strict-json.ts',
      'protocol/acks.ts',
      'protocol/ack-log.ts',
      'control-plane/ack-chain.ts',
      'control-plane/ack-log.ts',
      'control-plane/ack-service.ts',
    ],
    testFiles: [
      'tests/protocol/strict-json.test.ts',
      'tests/protocol/ack-log.test.ts',
      'tests/protocol/acks.test.ts',
      'tests/protocol/parse-with.test.ts',
      'tests/protocol/schema-checks.test.ts',
      'tests/control-plane/ack-chain.test.ts',
      'tests/control-plane/ack-endpoint.test.ts',
      'tests/control-plane/ack-segments.test.ts',
      'tests/control-plane/ack-snapshot.test.ts',
      'tests/control-plane/ack-log-full-disk.test.ts',
      'tests/control-plane/crash.test.ts',
      'tests/control-plane/ack-backfill.test.ts',
      'tests/control-plane/ack-merge.test.ts',
      'tests/control-plane/embedded.test.ts',
    ],
    tsconfig: 'scripts/mutate/tsconfig.intake.json',
  },
};

const name = process.env.NIXFLEET_MUTATE_TARGET ?? 'reconciler';
const target = TARGETS[name];
if (!target)
  throw new Error(`NIXFLEET_MUTATE_TARGET: unknown target '${name}' (${Object.keys(TARGETS)})`);

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  mutate: target.mutate,
  // The uvu runner of scripts/mutate/uvu-runner.ts: every test file of a run in one process, each run in a
  // fresh worker thread. `npm run mutate -- <target> --testRunner tap` falls back to the tap runner (one
  // node process per test file and mutant, through scripts/mutate/uvu-tap.ts): same results, slower.
  plugins: ['@stryker-mutator/*', './scripts/mutate/uvu-runner.ts'],
  testRunner: 'uvu-in-process',
  uvu: { testFiles: target.testFiles },
  // The plugin is TypeScript: every Stryker process loads it (run.ts starts Stryker itself with tsx).
  testRunnerNodeArgs: ['--import', 'tsx'],
  checkerNodeArgs: ['--import', 'tsx'],
  tap: {
    testFiles: target.testFiles,
    // Each test file runs in its own node process: Stryker's coverage hook, tsx for TypeScript, and the
    // shim that runs one uvu file and prints TAP.
    nodeArgs: [
      '-r',
      '{{hookFile}}',
      '--import',
      'tsx',
      'scripts/mutate/uvu-tap.ts',
      '{{testFile}}',
    ],
  },
  // Each mutant runs only the test files that executed it in the initial run.
  coverageAnalysis: 'perTest',
  // Mutants that do not type-check are dropped before any test runs. The checker compiles only the two
  // mutated folders (protocol/ and reconciler/ import nothing else; read-side/ has its own, with them):
  // the whole project made each check slow enough to starve the test runners on a loaded machine.
  checkers: ['typescript'],
  tsconfigFile: target.tsconfig ?? 'scripts/mutate/tsconfig.json',
  // The machine has 2 cores, shared.
  concurrency: 2,
  incremental: true,
  incrementalFile: `reports/mutation/${name}.incremental.json`,
  // A loaded machine makes honest runs slow; a generous bound keeps slowness from counting as a kill.
  timeoutMS: 30000,
  timeoutFactor: 3,
  // event-recorder: one JSON file per event as it happens, so survivors can be read during a long run.
  reporters: ['clear-text', 'progress', 'html', 'json', 'event-recorder'],
  eventReporter: { baseDir: `reports/mutation/${name}-events` },
  htmlReporter: { fileName: `reports/mutation/${name}.html` },
  jsonReporter: { fileName: `reports/mutation/${name}.json` },
  clearTextReporter: { allowEmojis: false, logTests: false },
  thresholds: { high: 90, low: 85, break: null },
  tempDirName: '.stryker-tmp',
  // Local output is not needed in the sandbox (dist/ is: tests/verify/cli.test.ts also runs the binary).
  ignorePatterns: ['demo-output', '.bench', 'tmp', 'reports'],
};
