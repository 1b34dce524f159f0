// `nixfleet status`: where the rollout stands, computed by the reconciler from the verified tree and
// the verified acks it holds, read from a directory or from the control plane (--url, mTLS, read-only).
// Refuses (exit 1) when the tree does not verify against the pinned root; shows the last verified state
// marked STALE (exit 3) when only the timestamp expired.
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
  printRefused,
  secondsOption,
  processIo,
  type Command,
  type CommandContext,
} from './command.ts';
import { pinnedRootOption } from './root-option.ts';
import { defaultCacheDir, isVerificationError, type SignedRoot } from '../protocol/index.ts';
import {
  loadFleetState,
  type FleetState,
  renderStatus,
  statusReport,
  openVerifiedAckStore,
  UnknownSubject,
} from '../read-side/index.ts';

/** Exactly one of --tree DIR or --url URL (with its --ca, --cert and --key). */
function checkSource(values: {
  tree?: string;
  url?: string;
  ca?: string;
  cert?: string;
  key?: string;
}): void {
  if ((values.tree === undefined) === (values.url === undefined))
    throw new UsageError('give exactly one of --tree DIR or --url URL');
  if (values.url !== undefined) {
    for (const flag of ['ca', 'cert', 'key'] as const) {
      if (!values[flag]) throw new UsageError(`--url needs --${flag}`);
      fileOption(`--${flag}`, values[flag]);
    }
    if (!/^https:\/\//.test(values.url))
      throw new UsageError(`--url: expected an https:// URL, got ${values.url}`);
  } else {
    for (const flag of ['ca', 'cert', 'key'] as const)
      if (values[flag]) throw new UsageError(`--${flag} is only for --url`);
    directoryOption('--tree', values.tree!);
  }
}

type ViewOptions = { now: number; clockSkewSeconds?: number };
type RemoteFlags = { ca: string; cert: string; key: string };

/** The view of a tree directory, with the verified-ack store of the view (status or status-host). */
async function treeState(
  tree: string,
  pinned: SignedRoot,
  opts: ViewOptions,
  ackLogs: string[],
  flags: { host?: string; 'cache-dir'?: string; 'no-cache'?: boolean },
  openStore = openVerifiedAckStore,
): Promise<FleetState> {
  const host = flags.host;
  // The view shows no manifest: a --host view verifies that host's (as its agent does), the fleet
  // none. A --host view reads only the acks its channel's gates read, so it keeps its own cache,
  // one per channel (a store holds what its last run used: sharing one, views would evict each other's).
  const cacheDir = flags['no-cache'] ? null : (flags['cache-dir'] ?? defaultCacheDir());
  const store = openStore(cacheDir, host === undefined ? 'status' : 'status-host');
  const state = await loadFleetState(tree, pinned, {
    ...opts,
    manifests: host === undefined ? [] : [host],
    ...(host === undefined
      ? { ackCache: store.cache }
      : { host, ackCacheFor: (channel: string) => store.scopeAcks(channel) }),
    // Latest-ack files recalled by their identity, with their verified acks, instead of read and
    // verified (a memo kept only with a cache).
    ...(cacheDir === null ? {} : { ackFiles: () => store.verifiedAckFiles }),
    memo: store.documents,
    ackLogs,
  });
  store.save();
  return state;
}

/** The view fetched from the control plane over mTLS (an unreachable or refusing one is a usage error). */
async function remoteState(
  url: string,
  flags: RemoteFlags,
  pinned: SignedRoot,
  opts: ViewOptions,
): Promise<FleetState> {
  // Loaded only here: the control plane client (node:https, TLS) is no part of a --tree view.
  const { loadRemoteFleetState, RemoteAccessDenied, RemoteUnavailable } =
    await import('../read-side/index.ts');
  const remote = { url, caFile: flags.ca, certFile: flags.cert, keyFile: flags.key };
  try {
    return await loadRemoteFleetState(remote, pinned, opts);
  } catch (e) {
    if (e instanceof RemoteAccessDenied || e instanceof RemoteUnavailable)
      throw new UsageError(`--url ${url}: ${e.message}`);
    throw e;
  }
}

const command: Command = {
  name: 'status',
  summary:
    "show the rollout: release, freshness, each channel's waves, every host's phase and why it waits",
  help: `Usage: nixfleet status --tree DIR --root PINNED_ROOT.json [--now ISO] [--channel C] [--host H] [--problems] [--json]
       nixfleet status --url URL --ca CA.pem --cert OPERATOR.crt --key OPERATOR.key --root PINNED_ROOT.json [...]

Verifies the tree against the pinned trust root as \`nixfleet verify\` does (root chain, timestamp,
revocations, controls, release index, budgets, every channel plan), except the host manifests, which
the view does not show: with --host, that host's manifest is verified as its agent verifies it; the
audit of every manifest is \`nixfleet verify\`. Reads the acks in DIR/acks (each host's latest ack and
the per-wave bundles) and verifies every one against the host key of the signed release; acks that do
not verify are not counted and are listed as rejected. With --host, only the acks that host's gates
read are read and verified (its channel's hosts, those of the channels gating it and its budgets'
members; their latest-ack files, no bundles). Then runs
the reconciler's fleet view and prints: the release and the timestamp's freshness, per channel the
rollout state and each wave's progress, the disruption budgets, and a host table (phase, current and
target closure, age of the last ack, and for a waiting host the gate that holds it and why).

DIR is a tree written by \`nixfleet publish\` or a control plane directory (DIR/current -> the
installed tree, acks in DIR/acks). With several control plane boxes, --acks-log once per box (each
box's .ack-log/acks.log, or one \`nixfleet cp merge\` wrote) adds their acks: every host's latest
ack is its newest in the union. With --url the same documents are fetched from the control plane
over mTLS with an operator certificate (OU=operator) and verified exactly as an agent verifies them;
the acks come from the per-wave bundles (acks/channels/) and acks/hosts/. Nothing is written. A host
certificate may not read other hosts' manifests: the command then says so and exits 2.

When \`nixfleet views serve\` serves DIR with the same cache directory, the view is asked of it: the
same look (these options, this instant, this directory), verified the same way, from a process that
keeps its verified stores in memory. --no-cache and --url views never are.

When every signature verifies but the timestamp has expired (the CI refresh job stopped), hosts
activate nothing new: the last verified state is shown under a STALE banner ("freshness": "stale" in
--json) and the exit code is 3.

Waves are numbered from 1 in the text ("wave 1 of 2"); the JSON keeps the protocol's 0-based
"index" / "wave" fields. Every time in the JSON is an ISO 8601 UTC string.

Exit codes: 0 shown, 1 refused (the tree does not verify: the typed error and the file at fault),
2 usage or I/O error (also an unknown --channel / --host, an unreachable control plane),
3 shown, but STALE (the timestamp expired; the last verified state is shown).

Options:
  --tree DIR       the published tree or control plane directory
  --url URL        instead of --tree: the control plane (https://...), with --ca, --cert, --key
  --ca FILE        the fleet CA (PEM) the control plane's certificate must chain to
  --cert FILE      the operator client certificate (PEM, OU=operator)
  --key FILE       its private key (PEM)
  --root FILE      the pinned trust root (root/1.json from \`nixfleet trust init\`)
  --now ISO        evaluate as of this instant (default: the clock)
  --channel C      only this channel and its hosts
  --host H         only this host (and its channel)
  --problems       only what needs attention: failed, deferred or blocked hosts, offline hosts a wave
                   waits for, halted waves and channels, budgets over their limit
  --cache-dir DIR  where verified acks are remembered by the SHA-256 of their bytes and the host key
                   (default \$XDG_CACHE_HOME/nixfleet or ~/.cache/nixfleet; only read when it is the
                   user's own and not writable by others). A changed ack is a miss and verified in full.
                   The latest-ack files read are remembered there too, by device, inode, size and
                   modification and change times (a file changed in any way is read again)
  --no-cache       verify every ack, read and write no cache
  --acks-log FILE  also read this ack log (repeatable: the logs of several boxes, read as their union)
  --clock-skew S   tolerated clock skew for the timestamp (default 300)
  --json           print the fleet view (channels, waves, hosts, budgets) with release, freshness and
                   rejected acks as JSON`,
  async run(argv, { io, openStore }: CommandContext = { io: processIo }) {
    const { values, positionals } = parseCommandArgs(argv, {
      tree: { type: 'string' },
      url: { type: 'string' },
      ca: { type: 'string' },
      cert: { type: 'string' },
      key: { type: 'string' },
      root: { type: 'string' },
      now: { type: 'string' },
      channel: { type: 'string' },
      host: { type: 'string' },
      problems: { type: 'boolean', default: false },
      'cache-dir': { type: 'string' },
      'no-cache': { type: 'boolean', default: false },
      'acks-log': { type: 'string', multiple: true },
      'clock-skew': { type: 'string' },
      json: { type: 'boolean', default: false },
    });
    if (positionals.length) throw new UsageError(`unexpected argument ${positionals[0]}`);
    checkSource(values);
    const ackLogs = (values['acks-log'] ?? []).map((f) => fileOption('--acks-log', f));
    if (ackLogs.length > 0 && values.url !== undefined)
      throw new UsageError('--acks-log is only for --tree');
    if (!values.root) throw new UsageError('--root is required');
    const pinned = pinnedRootOption(values.root);
    const now = parseNow(values.now);
    const clockSkewSeconds = secondsOption('--clock-skew', values['clock-skew']);
    const opts = { now, ...(clockSkewSeconds === undefined ? {} : { clockSkewSeconds }) };
    try {
      const state =
        values.url === undefined
          ? await treeState(values.tree!, pinned, opts, ackLogs, values, openStore)
          : await remoteState(
              values.url,
              { ca: values.ca!, cert: values.cert!, key: values.key! },
              pinned,
              opts,
            );
      const report = statusReport(state, {
        channel: values.channel,
        host: values.host,
        problems: values.problems,
      });
      output(values.json, report, () => renderStatus(report), io);
      return state.stale === null ? EXIT_OK : EXIT_STALE;
    } catch (e) {
      if (e instanceof UnknownSubject) throw new UsageError(e.message);
      if (!isVerificationError(e)) throw e;
      printRefused('status', e, values.json, io);
      return EXIT_REFUSED;
    }
  },
};
export default command;
