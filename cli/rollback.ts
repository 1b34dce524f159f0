// `nixfleet rollback --to-release N`: a fleet-wide emergency rollback, published as a new release whose
// targets are release N's (publisher/rollback.ts), under the policy the operator chooses.
import { EXIT_OK, UsageError, output, parseCommandArgs, type Command } from './command.ts';
import { loadFleetArg, readReleaseKeys, reportPublisherError } from './publish.ts';
import { parseNow } from './command.ts';
import {
  publishReleaseChecked,
  planRollback,
  type RollbackPolicy,
  loadTrustDir,
  describeDiff,
  type PublishResult,
} from '../publisher/index.ts';

const command: Command = {
  name: 'rollback',
  summary: 'emergency rollback: publish a new release with the targets of release N',
  help: `Usage: nixfleet rollback --to-release N --policy all-at-once|waves (FLEET.json | --flake REF)
                         --tree DIR --trust DIR --release-key FILE... [--now ISO] [--no-cache-check]
                         [--dry-run] [--json]

Reads release N from the tree and verifies it (release-key signatures under the newest trust root, so a
release from before a rejectBefore compromise switch is refused), then publishes release M > N: the
current fleet (FLEET.json) with every host's target set to release N's. Hosts release N did not have keep
their current target. Agents never accept release N itself again (rollback protection); M is an
ordinary release, verified and rolled out like any other.

  --policy all-at-once   every channel rolls back in one wave (its probes kept), disruption budgets and
                         channel edges lifted: every host may switch at its next poll
  --policy waves         the fleet's own waves, budgets and edges

Options:
  --to-release N       the release whose targets to restore
  --flake REF          evaluate the current fleet with \`nix eval --json REF\` instead of reading a file
  --tree DIR           the published tree (release N must still be in it)
  --trust DIR          trust directory with root/1.json..root/<n>.json
  --release-key FILE   release private key file (repeat to meet the threshold)
  --now ISO            publish time (default: the clock)
  --no-cache-check     as for publish
  --dry-run            print what would change, write nothing
  --json               print the result as JSON

Exit: 0 published (or dry run), 1 refused (release N missing or not verifiable, invalid fleet, closures
not in the cache), 2 usage or I/O.`,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      argv,
      {
        'to-release': { type: 'string' },
        policy: { type: 'string' },
        flake: { type: 'string' },
        tree: { type: 'string' },
        trust: { type: 'string' },
        'release-key': { type: 'string', multiple: true },
        now: { type: 'string' },
        'no-cache-check': { type: 'boolean', default: false },
        'dry-run': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
      },
      true,
    );
    if (!values['to-release'] || !/^[1-9][0-9]{0,15}$/.test(values['to-release']))
      throw new UsageError('--to-release N (a release version) is required');
    if (values.policy !== 'all-at-once' && values.policy !== 'waves')
      throw new UsageError('--policy all-at-once|waves is required');
    if (!values.tree) throw new UsageError('--tree DIR is required');
    if (!values.trust) throw new UsageError('--trust DIR is required');
    const toRelease = Number(values['to-release']);
    const policy: RollbackPolicy = values.policy;
    const now = parseNow(values.now);
    const json = values.json === true;
    try {
      const releaseKeys = readReleaseKeys(values['release-key']);
      const { fleet, source } = await loadFleetArg(positionals, values.flake);
      const trust = loadTrustDir(values.trust, now);
      const plan = planRollback({
        treeDir: values.tree,
        toRelease,
        policy,
        fleet,
        root: trust.root.signed,
        fleetSource: source,
      });
      const r = await publishReleaseChecked({
        treeDir: values.tree,
        fleet: plan.fleet,
        fleetSource: `${source} with the targets of release ${toRelease}`,
        releaseKeys,
        trustDir: values.trust,
        now,
        source: `rollback to release ${toRelease} (policy ${policy})`,
        // An emergency rollback always publishes (even when the targets already equal release N's,
        // e.g. to lift a budget), unless it is a dry run.
        ifIdentical: 'publish',
        dryRun: values['dry-run'] === true,
        ...(values['no-cache-check'] ? { cacheCheck: 'skip' as const } : {}),
      });
      output(
        json,
        {
          ok: true,
          toRelease,
          policy,
          restored: plan.restored,
          notInRelease: plan.notInRelease,
          ...r,
        },
        () => describeRollback(r, plan, toRelease, policy),
      );
      return EXIT_OK;
    } catch (e) {
      return reportPublisherError('rollback', e, json);
    }
  },
};
/** The human summary: what was (or would be) published, hosts left as they are, the diff. */
function describeRollback(
  r: PublishResult,
  plan: ReturnType<typeof planRollback>,
  toRelease: number,
  policy: RollbackPolicy,
): string {
  return [
    r.status === 'dry-run'
      ? `dry run: would publish release ${r.version} with the targets of release ${toRelease} (policy ${policy}); nothing written`
      : `published release ${r.version}: the targets of release ${toRelease} for ${plan.restored.length} host(s) (policy ${policy})`,
    ...(plan.notInRelease.length
      ? [
          `  not in release ${toRelease} (keep their current target): ${plan.notInRelease.join(', ')}`,
        ]
      : []),
    ...describeDiff(r.diff),
  ].join('\n');
}

export default command;
