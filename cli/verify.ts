// `nixfleet verify TREE --root ROOT.json`: the auditor's offline verifier. Needs nothing but the tree and
// the pinned root; exit 0 verified, 1 refused (typed error naming the file), 2 usage or I/O error.
import {
  EXIT_OK,
  EXIT_REFUSED,
  UsageError,
  output,
  parseCommandArgs,
  parseNow,
  printRefused,
  type Command,
} from './command.ts';
import { pinnedRootOption } from './root-option.ts';
import { isVerificationError, type TreeReport, verifyTreeDir } from '../protocol/index.ts';
import {
  ackTrustOf,
  loadVerifiedRelease,
  auditAckLogs,
  defaultAckLogOf,
  formatAckAudit,
} from '../read-side/index.ts';

function human(r: TreeReport): string {
  const lines = [
    `${r.ok ? 'OK' : 'FINDINGS'}: fleet "${r.fleet}", release ${r.release.version} (issued ${r.release.issuedAt}), verified at ${r.verifiedAt}`,
    `  trust root v${r.root.version} (chain ${r.root.chain.join(' -> ')}), expires ${r.root.expires}`,
    `  timestamp issued ${r.timestamp.issuedAt}, expires ${r.timestamp.expires}`,
    `  ${r.documents.length} documents verified: ${r.release.hosts} host ` +
      `manifests, ${r.release.channels.length} channel plans ` +
      `(${r.release.channels.join(', ')}), index, budgets, revocations`,
    `  revocations v${r.revocations.version}: ${r.revocations.hosts} hosts, ${r.revocations.closures} closures`,
  ];
  for (const h of r.revokedHosts) lines.push(`  revoked: ${h.host} (${h.file}): ${h.detail}`);
  for (const f of r.unlistedManifests) lines.push(`  NOT IN THE INDEX: ${f}`);
  return lines.join('\n');
}

const command: Command = {
  name: 'verify',
  summary: 'verify a whole published tree offline against a pinned trust root',
  help: `Usage: nixfleet verify TREE --root PINNED_ROOT.json [--now ISO] [--clock-skew SECONDS] [--json]

Verifies the root chain (root/<n>.json forward from the pinned root), the timestamp (signature,
freshness), revocations, the release index and every channel plan, budgets file and host manifest it
binds: signatures by release keys valid at each document's issuedAt, digests, release versions, host
names. Manifest files that the index does not list are reported as findings.

Exit codes: 0 verified, 1 refused (the typed error and the file at fault) or findings, 2 usage/I/O.

Options:
  --root FILE        the pinned trust root (e.g. root/1.json from \`nixfleet trust init\`)
  --now ISO          verify as of this instant (default: the clock)
  --clock-skew S     tolerated clock skew for future-dated timestamps (default 300)
  --json             print the report (or {ok:false,error:{code,file,detail}}) as JSON
  --acks             also audit the ack history offline: every ack verified against the release (fleet,
                     host key), every host's chain checked for seq/prev continuity from seq 1 and forks;
                     gaps are findings (exit 1)
  --ack-log FILE     the ack log(s) to audit: a log directory or any of its segment files, all of whose
                     segments are read (repeatable: replicas, or an archive of old segments, are read as
                     their union; default TREE/.ack-log). Over live segments whose older ones were
                     archived, a host's history starts at the floor file archive-acks left (unsigned)`,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      argv,
      {
        root: { type: 'string' },
        now: { type: 'string' },
        'clock-skew': { type: 'string' },
        json: { type: 'boolean', default: false },
        acks: { type: 'boolean', default: false },
        'ack-log': { type: 'string', multiple: true },
      },
      true,
    );
    if (positionals.length !== 1) throw new UsageError('expected exactly one TREE directory');
    if (!values.root) throw new UsageError('--root is required');
    const now = parseNow(values.now);
    const skewText = values['clock-skew'];
    if (skewText !== undefined && !/^[0-9]{1,6}$/.test(skewText))
      throw new UsageError('--clock-skew: expected seconds');
    const tree = positionals[0]!;
    try {
      const pinned = pinnedRootOption(values.root);
      const report = await verifyTreeDir(tree, pinned, {
        now,
        clockSkewSeconds: skewText === undefined ? undefined : Number(skewText),
      });
      if (values.acks || values['ack-log']) {
        const logs =
          values['ack-log'] ?? [defaultAckLogOf(tree)].filter((f): f is string => f !== null);
        if (logs.length === 0)
          throw new UsageError(
            `--acks: ${tree} holds no ack log (.ack-log/acks.log); pass --ack-log FILE`,
          );
        const release = await loadVerifiedRelease(tree, pinned, {
          now,
          clockSkewSeconds: skewText === undefined ? undefined : Number(skewText),
        });
        const acks = auditAckLogs(logs, ackTrustOf(release));
        output(values.json, { ...report, acks }, () => `${human(report)}\n${formatAckAudit(acks)}`);
        return report.ok && acks.ok ? EXIT_OK : EXIT_REFUSED;
      }
      output(values.json, report, () => human(report));
      return report.ok ? EXIT_OK : EXIT_REFUSED;
    } catch (e) {
      if (!isVerificationError(e)) throw e;
      printRefused('verify', e, values.json);
      return EXIT_REFUSED;
    }
  },
};
export default command;
