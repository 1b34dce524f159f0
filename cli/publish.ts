// `nixfleet publish`: fleet JSON (file or --flake) -> validated, resolved, signed tree.
import {
  readPrivateKey,
  KeyFileError,
  type SigningKey,
  isVerificationError,
} from '../protocol/index.ts';
import { writeControl } from './terminal.ts';
import {
  EXIT_OK,
  EXIT_REFUSED,
  EXIT_USAGE,
  UsageError,
  output,
  parseCommandArgs,
  parseNow,
  type Command,
} from './command.ts';
import {
  publishReleaseChecked,
  type PublishProgress,
  PublishRefused,
  FleetInvalid,
  evalFlake,
  readFleetFile,
  FleetInputError,
  describeDiff,
} from '../publisher/index.ts';

export function readReleaseKeys(files: readonly string[] | undefined): SigningKey[] {
  if (!files || files.length === 0)
    throw new UsageError('--release-key FILE is required (repeat it for several keys)');
  return files.map((f) => readPrivateKey(f));
}

/** Shared exit-code mapping of the publisher commands: refusals 1, usage and I/O 2. */
export function reportPublisherError(cmd: string, e: unknown, json: boolean): number {
  if (e instanceof UsageError) throw e;
  if (e instanceof FleetInvalid) {
    if (json) output(true, { ok: false, errors: e.errors, warnings: e.warnings }, () => '');
    process.stderr.write(`nixfleet ${cmd}: refused: ${e.message}\n`);
    return EXIT_REFUSED;
  }
  if (e instanceof PublishRefused || isVerificationError(e)) {
    if (json) output(true, { ok: false, errors: [(e as Error).message] }, () => '');
    process.stderr.write(`nixfleet ${cmd}: refused: ${(e as Error).message}\n`);
    return EXIT_REFUSED;
  }
  if (e instanceof FleetInputError || e instanceof KeyFileError) {
    process.stderr.write(`nixfleet ${cmd}: ${(e as Error).message}\n`);
    return EXIT_USAGE;
  }
  throw e;
}

const PHASE_LABEL: Record<PublishProgress['phase'], string> = {
  resolve: 'validating and resolving',
  cache: 'checking the binary cache (narinfos)',
  sign: 'signing',
  write: 'writing',
  commit: 'writing the timestamp',
  done: 'done',
};

/** On a TTY: one line redrawn in place. With --progress on a pipe: a line per phase and per 25%. */
export function progressPrinter(tty: boolean): (p: PublishProgress) => void {
  let lastPhase = '';
  let lastQuarter = -1;
  return (p) => {
    const label = PHASE_LABEL[p.phase];
    if (tty) {
      const text = p.phase === 'done' ? 'done' : `${label} ${p.done}/${p.total}`;
      writeControl('stderr', '\r\x1b[K'); // redraw the line in place
      process.stderr.write(`${text}${p.phase === 'done' ? '\n' : ''}`);
      return;
    }
    const quarter = p.total > 0 ? Math.floor((4 * p.done) / p.total) : 0;
    if (p.phase !== lastPhase || quarter !== lastQuarter) {
      process.stderr.write(p.phase === 'done' ? 'done\n' : `${label} ${p.done}/${p.total}\n`);
      lastPhase = p.phase;
      lastQuarter = quarter;
    }
  };
}

export async function loadFleetArg(
  positionals: string[],
  flake: string | undefined,
): Promise<{ fleet: unknown; source: string }> {
  if (flake !== undefined && positionals.length > 0)
    throw new UsageError('give either FLEET.json or --flake REF, not both');
  if (flake !== undefined) return { fleet: await evalFlake(flake), source: flake };
  if (positionals.length !== 1) throw new UsageError('expected one FLEET.json (or --flake REF)');
  return { fleet: readFleetFile(positionals[0]!), source: positionals[0]! };
}

const command: Command = {
  name: 'publish',
  summary: 'validate a fleet, resolve its waves and write a signed release into the tree',
  help: `Usage: nixfleet publish (FLEET.json | --flake REF) --tree DIR --release-key FILE... --trust DIR
                        [--now ISO] [--version N] [--source TEXT] [--no-cache-check | --cache-check-at URL]
                        [--dry-run] [--force]
                        [--json] [--progress]

Validates the fleet (every violation is listed), resolves waves and budgets per channel, signs every
document with the release key(s), and writes the tree: root/<n>.json (copied from the trust
directory), releases/<v>/ (complete before anything points to it), revocations-<r>.json, then
timestamp.json last. An interrupted publish leaves the previous release in place and valid.

Before signing, every host's target closure (the target and every path it references) must be in the
fleet's cacheUrl (file://, http:// or https://; for https with a private CA set NODE_EXTRA_CA_CERTS) with
a narinfo signed by one of the trust root's cache keys; otherwise the publish is refused, naming the
store paths and why (not in the cache, unsigned, signed only by keys not in the root, bad signature).
Narinfos are read in parallel (32 at a time).

A fleet identical to the current release (same fleet JSON, same trust root version) is not published
again: the command says "no change" and exits 0 (every rollout id would stay the same anyway; a halted
rollout resumes with \`nixfleet control resume-halted\`). --force publishes a new release regardless.
Every publish prints what changes per channel (targets per host, whether the rollout restarts, plan
settings); --dry-run prints only that, writing nothing.

Options:
  --flake REF          evaluate the fleet with \`nix eval --json REF\` instead of reading a file
  --tree DIR           the published tree (created if missing)
  --release-key FILE   release private key file (repeat to meet the trust root's threshold)
  --trust DIR          trust directory with root/1.json..root/<n>.json (\`nixfleet trust init\`)
  --now ISO            publish time (default: the clock)
  --version N          release version (default: previous + 1; must exceed every existing one)
  --source TEXT        provenance signed into the release index (e.g. a git commit)
  --no-cache-check     do not check the binary cache (air-gapped pipelines that ship closures another
                       way); the output says the check was skipped. Hosts still check the narinfo
                       signatures themselves when they fetch.
  --cache-check-at URL read the cacheUrl's narinfos at URL instead (the same cache by another path): a
                       cache shipped in the tree as nix-cache/ is served at cacheUrl only after
                       \`cp sync\`, so check it as file://TREE/nix-cache before
  --dry-run            build and sign in memory, print the per-channel diff, write nothing
  --force              publish even when the fleet is identical to the current release
  --json               print the result as JSON
  --progress           show progress on stderr even when it is not a terminal

Exit: 0 published, 1 refused (invalid fleet, key not allowed, version not increasing, closures not in
the cache), 2 usage or I/O.`,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      argv,
      {
        flake: { type: 'string' },
        tree: { type: 'string' },
        'release-key': { type: 'string', multiple: true },
        trust: { type: 'string' },
        now: { type: 'string' },
        version: { type: 'string' },
        source: { type: 'string' },
        json: { type: 'boolean', default: false },
        progress: { type: 'boolean', default: false },
        'no-cache-check': { type: 'boolean', default: false },
        'cache-check-at': { type: 'string' },
        'dry-run': { type: 'boolean', default: false },
        force: { type: 'boolean', default: false },
      },
      true,
    );
    if (!values.tree) throw new UsageError('--tree DIR is required');
    if (!values.trust) throw new UsageError('--trust DIR is required');
    if (values.source !== undefined && values.source.length > 512)
      throw new UsageError('--source: at most 512 characters');
    let version: number | undefined;
    if (values.version !== undefined) {
      if (!/^[1-9][0-9]{0,15}$/.test(values.version))
        throw new UsageError(`--version: expected a positive integer, got ${values.version}`);
      version = Number(values.version);
    }
    const checkAt = values['cache-check-at'];
    if (checkAt !== undefined && values['no-cache-check'])
      throw new UsageError('give --no-cache-check or --cache-check-at, not both');
    if (checkAt !== undefined && !/^(https?|file):\/\//.test(checkAt))
      throw new UsageError(
        `--cache-check-at: expected an http(s):// or file:// URL, got ${checkAt}`,
      );
    const now = parseNow(values.now);
    try {
      const releaseKeys = readReleaseKeys(values['release-key']);
      const { fleet, source } = await loadFleetArg(positionals, values.flake);
      const showProgress = values.progress || process.stderr.isTTY === true;
      const r = await publishReleaseChecked({
        treeDir: values.tree,
        fleet,
        fleetSource: source,
        releaseKeys,
        trustDir: values.trust,
        now,
        ifIdentical: values.force ? 'publish' : 'skip',
        dryRun: values['dry-run'] === true,
        ...(values['no-cache-check']
          ? { cacheCheck: 'skip' as const }
          : checkAt !== undefined
            ? { cacheCheck: { checkAt } }
            : {}),
        ...(version !== undefined ? { version } : {}),
        ...(values.source !== undefined ? { source: values.source } : {}),
        ...(showProgress ? { onProgress: progressPrinter(process.stderr.isTTY === true) } : {}),
      });
      if (!values.json) for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
      if (r.status === 'unchanged') {
        output(
          values.json,
          { ok: true, ...r },
          () =>
            `no change: the fleet is identical to release ${r.version} (every rollout continues); nothing written (--force publishes a new release anyway)`,
        );
        return EXIT_OK;
      }
      if (r.status === 'dry-run') {
        output(values.json, { ok: true, ...r }, () =>
          [
            r.diff.identical
              ? `dry run: the fleet is identical to release ${r.diff.currentVersion}; publish ` +
                `would change nothing (with --force: release ${r.version}, same rollouts)`
              : `dry run: would publish release ${r.version} of ${r.hosts} hosts (current: ${r.diff.currentVersion ?? 'none'}); nothing written`,
            ...describeDiff(r.diff),
          ].join('\n'),
        );
        return EXIT_OK;
      }
      output(values.json, { ok: true, ...r }, () =>
        [
          `published release ${r.version} of ${r.hosts} hosts to ${values.tree} (previous: ${r.previousVersion || 'none'})`,
          ...Object.entries(r.rolloutIds).map(([c, id]) => `  channel ${c}: rollout ${id}`),
          ...(r.diff.currentVersion !== null
            ? [
                `  changes against release ${r.diff.currentVersion}:`,
                ...describeDiff(r.diff).map((l) => `  ${l}`),
              ]
            : []),
          r.cacheCheck.skipped
            ? '  binary cache: NOT checked (--no-cache-check)'
            : `  binary cache: ${r.cacheCheck.checked} paths (${r.cacheCheck.targets} ` +
              `targets and their closures) signed in ${r.cacheCheck.cacheUrl} ` +
              `by ${r.cacheCheck.keysUsed.join(', ')} (${Math.round(r.cacheCheck.ms)} ms)`,
          `  timestamp issued ${r.timestamp.issuedAt}, expires ${r.timestamp.expires}; revocations v${r.revocations.version}`,
          `  ${Math.round(r.timings.total)} ms ` +
            `(resolve ${Math.round(r.timings.resolve)}, ` +
            `sign ${Math.round(r.timings.sign)}, write ${Math.round(r.timings.write)})`,
        ].join('\n'),
      );
      return EXIT_OK;
    } catch (e) {
      return reportPublisherError('publish', e, values.json);
    }
  },
};
export default command;
