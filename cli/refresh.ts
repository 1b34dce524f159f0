// `nixfleet refresh`: re-sign timestamp.json only (run by CI on a schedule, more often than the
// channels' freshness windows).
import {
  EXIT_OK,
  UsageError,
  output,
  parseCommandArgs,
  parseNow,
  type Command,
} from './command.ts';
import { refreshTimestamp } from '../publisher/index.ts';
import { readReleaseKeys, reportPublisherError } from './publish.ts';

const command: Command = {
  name: 'refresh',
  summary: 're-sign the timestamp of the current release (scheduled CI job keeping the tree fresh)',
  help: `Usage: nixfleet refresh --tree DIR --release-key FILE... [--now ISO] [--json]

Re-signs only timestamp.json: same release index and revocations (their digests are checked first),
new issuedAt and expires (issuedAt + the largest freshness window of the release's channels;
each agent holds the timestamp to its own channel's window), and the newest operator-signed
controls-<n>.json of the tree (nixfleet control ...) bound by path, digest and length.
Run it more often than every channel's signingIntervalSeconds.

Options:
  --tree DIR           the published tree
  --release-key FILE   release private key file (repeat to meet the trust root's threshold)
  --now ISO            signing time (default: the clock)
  --json               print {releaseVersion, issuedAt, expires, previousIssuedAt} as JSON

Exit: 0 refreshed, 1 refused (key not allowed, files changed, clock behind the tree), 2 usage or I/O.`,
  async run(argv) {
    const { values } = parseCommandArgs(argv, {
      tree: { type: 'string' },
      'release-key': { type: 'string', multiple: true },
      now: { type: 'string' },
      json: { type: 'boolean', default: false },
    });
    if (!values.tree) throw new UsageError('--tree DIR is required');
    const now = parseNow(values.now);
    try {
      const releaseKeys = readReleaseKeys(values['release-key']);
      const r = refreshTimestamp({ treeDir: values.tree, releaseKeys, now });
      output(
        values.json,
        { ok: true, ...r },
        () =>
          `refreshed timestamp of release ${r.releaseVersion}: issued ${r.issuedAt}, expires ${r.expires}`,
      );
      return EXIT_OK;
    } catch (e) {
      return reportPublisherError('refresh', e, values.json);
    }
  },
};
export default command;
