// `nixfleet trace`: replays a host's or a channel's rollout over the verified ack history with the
// reconciler's trace(): when each host became eligible, which gate held it and for how long, when it
// activated, confirmed, soaked or failed.
import {
  EXIT_OK,
  EXIT_REFUSED,
  EXIT_STALE,
  UsageError,
  directoryOption,
  fileOption,
  output,
  parseCommandArgs,
  parseNow,
  parseTimeOption,
  printRefused,
  secondsOption,
  processIo,
  type Command,
  type CommandContext,
} from './command.ts';
import { pinnedRootOption } from './root-option.ts';
import { defaultCacheDir, isVerificationError } from '../protocol/index.ts';
import {
  loadReleaseAllowingStale,
  releaseForOperator,
  UnknownSubject,
  openVerifiedAckStore,
  loadAckHistory,
  renderTrace,
  traceReport,
  traceScope,
  type TraceSubject,
  type VerifiedRelease,
} from '../read-side/index.ts';

const isoOption = (flag: string, text: string | undefined): number | undefined =>
  text === undefined ? undefined : parseTimeOption(flag, text);

const command: Command = {
  name: 'trace',
  summary:
    "replay a host's or channel's rollout from the ack history: eligibility, gate holds, activation, soak",
  help: `Usage: nixfleet trace --tree DIR --root PINNED_ROOT.json (--host H | --channel C) [--acks-log FILE]...
                      [--from ISO] [--until ISO] [--step SECONDS] [--now ISO] [--json]

Verifies the tree against the pinned trust root (as \`nixfleet status\` does: every document but the
host manifests; with --host, that host's manifest as its agent verifies it), then replays the
reconciler over the ack history of the current release: every ack at its signed time, and the whole
fleet re-evaluated every --step seconds between acks (with --host: every --step seconds, and a step is
replayed ack by ack wherever the host's phase or gate changes in it, which gives the same trace).
Prints a timeline (phase and gate changes) and, per host, when it became eligible, which gate held it
and for how long, and when it activated, confirmed, soaked or failed.

The history is the ack endpoint's append-only log (--acks-log FILE; default DIR/.ack-log/acks.log when
DIR is a control plane directory) plus the acks in DIR/acks. With several control plane boxes, give
--acks-log once per box (or a log \`nixfleet cp merge\` wrote): the history is their union. Every ack is verified against the host key
of the signed release; acks that do not verify are not counted and are listed as rejected. Only the
acks the subject's gates read are read (its channel's hosts, those of the channels gating it and its
budgets' members; log records of other hosts are skipped unread), and the default period starts at
the first of them. Without a
log only each host's latest ack is known, so the trace shows the current state, not the history.

When \`nixfleet views serve\` serves DIR with the same cache directory, the trace is asked of it (the
same look, verified the same way; see \`nixfleet status --help\`).

When every signature verifies but the timestamp has expired, the trace of the last verified release
is shown under a STALE banner ("freshness": "stale" in --json) and the exit code is 3. A failed host
shows why it failed (the reason of its signed failure report, or the missed confirm deadline). Waves
are numbered from 1 in the text; the JSON keeps 0-based "wave" fields.

Exit codes: 0 traced, 1 refused (the tree does not verify: the typed error and the file at fault),
2 usage or I/O error (also an unknown --host / --channel, an unreadable or corrupt log),
3 traced, but STALE (the timestamp expired; the last verified release is traced).

Options:
  --tree DIR       the published tree or control plane directory
  --root FILE      the pinned trust root
  --host H         trace this host (gates still consider every other host's acks)
  --channel C      trace every host of this channel
  --acks-log FILE  the ack endpoint's acks.log (one "sha256:<digest> TAB <ack> LF" record per ack);
                   repeat it for the logs of several boxes (read as their union)
  --from ISO       start of the period (default: the first ack)
  --until ISO      end of the period (default: the last ack + the longest soak, at most --now)
  --step SECONDS   re-evaluation interval between acks (default 60)
  --now ISO        verify the tree as of this instant (default: the clock)
  --clock-skew S   tolerated clock skew for the timestamp (default 300)
  --cache-dir DIR  verified acks remembered by digest and host key, as for \`nixfleet status\`, the
                   log's verified prefix (length + SHA-256) and an index of its verified acks: a
                   warm trace hashes the prefix, takes its acks from the index, checks new records only
  --no-cache       verify every ack, read and write no cache
  --json           print {subject, release, from, until, history, hosts, entries} with ISO times`,
  async run(argv, { io, openStore = openVerifiedAckStore }: CommandContext = { io: processIo }) {
    const { values, positionals } = parseCommandArgs(argv, {
      tree: { type: 'string' },
      root: { type: 'string' },
      host: { type: 'string' },
      channel: { type: 'string' },
      'acks-log': { type: 'string', multiple: true },
      from: { type: 'string' },
      until: { type: 'string' },
      step: { type: 'string' },
      now: { type: 'string' },
      'clock-skew': { type: 'string' },
      'cache-dir': { type: 'string' },
      'no-cache': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    });
    if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
    if (!values.tree) throw new UsageError('--tree is required');
    if (!values.root) throw new UsageError('--root is required');
    const tree = directoryOption('--tree', values.tree);
    const pinned = pinnedRootOption(values.root);
    if ((values.host === undefined) === (values.channel === undefined))
      throw new UsageError('give exactly one of --host or --channel');
    const subject: TraceSubject =
      values.host !== undefined ? { host: values.host } : { channel: values.channel! };
    const now = parseNow(values.now);
    const from = isoOption('--from', values.from);
    const until = isoOption('--until', values.until);
    if (from !== undefined && until !== undefined && until < from)
      throw new UsageError('--until is before --from');
    const stepText = values.step;
    if (stepText !== undefined && !/^[1-9][0-9]{0,6}$/.test(stepText))
      throw new UsageError('--step: expected a positive number of seconds');
    const clockSkewSeconds = secondsOption('--clock-skew', values['clock-skew']);
    const [log, ...replicaLogs] = (values['acks-log'] ?? []).map((f) =>
      fileOption('--acks-log', f),
    );
    try {
      // The trace shows no manifest: a --host trace verifies that host's (as its agent does), a channel's none.
      const manifests = 'host' in subject ? [subject.host] : [];
      const cacheDir = values['no-cache'] ? null : (values['cache-dir'] ?? defaultCacheDir());
      const store = openStore(cacheDir, 'trace');
      const { release, stale } = releaseForOperator(
        await loadReleaseAllowingStale(tree, pinned, {
          now,
          manifests,
          memo: store.documents,
          ...(clockSkewSeconds === undefined ? {} : { clockSkewSeconds }),
        }),
        manifests,
      );
      const { scope, history } = scopedHistory(
        tree,
        release,
        subject,
        store,
        log,
        replicaLogs,
        cacheDir !== null,
      );
      const report = traceReport(release, history, subject, {
        now,
        from,
        until,
        stepSeconds: stepText === undefined ? undefined : Number(stepText),
        stale,
        scope,
        // The replay checkpoint kept with the log's index (read-side/trace-replay.ts), saved below.
        ...(cacheDir === null ? {} : { replays: store.indexedLogPrefixes }),
      });
      store.save();
      output(values.json, report, () => renderTrace(report), io);
      return stale === null ? EXIT_OK : EXIT_STALE;
    } catch (e) {
      if (e instanceof UnknownSubject) throw new UsageError(e.message);
      if (!isVerificationError(e)) throw e;
      printRefused('trace', e, values.json, io);
      return EXIT_REFUSED;
    }
  },
};
/**
 * Only the acks the subject's gates read (its channel's, its gating channels', its budgets' members'),
 * with one ack cache, one set of log prefixes and their indexes per scope (its channel), so that traces
 * of different channels do not evict each other's. A trace replays signed acks only, so the log's
 * verified prefix is read through its index (read-side/log-index.ts) when one was saved for it.
 */
function scopedHistory(
  tree: string,
  release: VerifiedRelease,
  subject: TraceSubject,
  store: ReturnType<typeof openVerifiedAckStore>,
  log: string | undefined,
  replicaLogs: string[],
  cached: boolean,
) {
  const scope = traceScope(release, subject);
  const cache = store.scopeAcks(scope.channels[0]!);
  const history = loadAckHistory(
    tree,
    release,
    log,
    cache,
    replicaLogs,
    scope.hosts,
    store.indexedLogPrefixes,
    // Latest-ack files recalled by identity with the ack each held (a memo kept only with a cache).
    cached ? store.verifiedAckFiles : undefined,
    // The indexed prefix's acks are built by the replay, only those it needs (read-side/trace-replay.ts).
    cached,
  );
  return { scope, history };
}

export default command;
