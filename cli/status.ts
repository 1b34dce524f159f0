// `nixfleet status`: where the rollout stands, computed by the reconciler from the verified tree and
// the verified acks it holds. Refuses (exit 1) when the tree does not verify against the pinned root.
import { EXIT_OK, EXIT_REFUSED, UsageError, output, parseCommandArgs, type Command } from './command.ts';
import { parseNow } from './trust.ts';
import { isVerificationError } from '../protocol/errors.ts';
import { loadFleetState, readPinnedRoot } from '../operator/load.ts';
import { renderStatus, statusReport } from '../operator/status.ts';
import { UnknownSubject } from '../operator/subject.ts';

const command: Command = {
  name: 'status',
  summary: 'show the rollout: release, freshness, each channel\'s waves, every host\'s phase and why it waits',
  help: `Usage: nixfleet status --tree DIR --root PINNED_ROOT.json [--now ISO] [--channel C] [--host H] [--json]

Verifies the tree against the pinned trust root (exactly as \`nixfleet verify\` does), reads the acks in
DIR/acks (each host's latest ack and the per-wave bundles) and verifies every one against the host key
of the signed release; acks that do not verify are not counted and are listed as rejected. Then runs
the reconciler's fleet view and prints: the release and the timestamp's freshness, per channel the
rollout state and each wave's progress, the disruption budgets, and a host table (phase, current and
target closure, age of the last ack, and for a waiting host the gate that holds it and why).

DIR is a tree written by \`nixfleet publish\` or a control plane directory (DIR/current -> the
installed tree, acks in DIR/acks).

Exit codes: 0 shown, 1 refused (the tree does not verify: the typed error and the file at fault),
2 usage or I/O error (also an unknown --channel / --host).

Options:
  --tree DIR       the published tree or control plane directory
  --root FILE      the pinned trust root (root/1.json from \`nixfleet trust init\`)
  --now ISO        evaluate as of this instant (default: the clock)
  --channel C      only this channel and its hosts
  --host H         only this host (and its channel)
  --clock-skew S   tolerated clock skew for the timestamp (default 300)
  --json           print the fleet view (channels, waves, hosts, budgets) with release, freshness and
                   rejected acks as JSON`,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, {
      tree: { type: 'string' },
      root: { type: 'string' },
      now: { type: 'string' },
      channel: { type: 'string' },
      host: { type: 'string' },
      'clock-skew': { type: 'string' },
      json: { type: 'boolean', default: false },
    });
    if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
    if (!values.tree) throw new UsageError('--tree is required');
    if (!values.root) throw new UsageError('--root is required');
    const now = parseNow(values.now);
    const skew = values['clock-skew'];
    if (skew !== undefined && !/^[0-9]{1,6}$/.test(skew)) throw new UsageError('--clock-skew: expected seconds');
    try {
      const state = await loadFleetState(values.tree, readPinnedRoot(values.root), { now, clockSkewSeconds: skew === undefined ? undefined : Number(skew) });
      const report = statusReport(state, { channel: values.channel, host: values.host });
      output(values.json, report, () => renderStatus(report));
      return EXIT_OK;
    } catch (e) {
      if (e instanceof UnknownSubject) throw new UsageError(e.message);
      if (!isVerificationError(e)) throw e;
      if (values.json) output(true, { ok: false, error: e.toJSON() }, () => '');
      else process.stderr.write(`nixfleet status: REFUSED: ${e.code}: ${e.file}: ${e.detail}\n`);
      return EXIT_REFUSED;
    }
  },
};
export default command;
