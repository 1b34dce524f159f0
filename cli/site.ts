// `nixfleet site build` and `nixfleet site watch`: the operator's static dashboard (site-gen/).
import {
  EXIT_OK,
  EXIT_REFUSED,
  UsageError,
  directoryOption,
  output,
  parseCommandArgs,
  parseNow,
  type Command,
} from './command.ts';
import { pinnedRootOption } from './root-option.ts';
import { defaultCacheDir, type SignedRoot } from '../protocol/index.ts';
import { openVerifiedAckStore } from '../read-side/index.ts';
import {
  buildSite,
  type SiteBuildResult,
  watchSite,
  Notifier,
  type NotifyTarget,
  type VerifiedStore,
} from '../site-gen/index.ts';

const COMMON_OPTIONS = `  --tree DIR         the tree: a control plane directory (current -> verified tree, acks/) or a
                     tree written by \`nixfleet publish\` (acks/ inside it)
  --root FILE        the pinned trust root (root/1.json from \`nixfleet trust init\`)
  --out DIR          where the site goes: becomes a symlink to the newest build (serve this path)
  --ack-log FILE     the ack endpoint's log, for timelines and ack history
                     (default DIR/.ack-log/acks.log when it exists)
  --no-ack-log       use only the latest ack of each host (acks/hosts/)
  --clock-skew S     tolerated clock skew for a future-dated timestamp (default 300)
  --cache-dir DIR    where verified acks and release documents are remembered by the SHA-256 of their
                     bytes (default $XDG_CACHE_HOME/nixfleet or ~/.cache/nixfleet, as for \`status\`;
                     only read when it is the user's own and not writable by others): the next build
                     checks digests instead of signatures; a changed file is a miss, verified in full
  --no-cache         verify everything, read and write no cache
  --pki DIR          the control plane's PKI directory (\`nixfleet pki init\`): certificates expiring
                     within 30 days are listed under "What needs you now"
  --json             machine-readable output`;

const options = {
  tree: { type: 'string' },
  root: { type: 'string' },
  out: { type: 'string' },
  'ack-log': { type: 'string' },
  'no-ack-log': { type: 'boolean', default: false },
  'clock-skew': { type: 'string' },
  pki: { type: 'string' },
  'cache-dir': { type: 'string' },
  'no-cache': { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
} as const;

interface Common {
  treeDir: string;
  pinnedRoot: SignedRoot;
  outDir: string;
  ackLogFile?: string | null;
  clockSkewSeconds?: number;
  pkiDir?: string;
  verifiedStore: VerifiedStore;
  json: boolean;
}

function common(values: {
  tree?: string;
  root?: string;
  out?: string;
  'ack-log'?: string;
  'no-ack-log'?: boolean;
  'clock-skew'?: string;
  pki?: string;
  'cache-dir'?: string;
  'no-cache'?: boolean;
  json?: boolean;
}): Common {
  if (!values.tree) throw new UsageError('--tree is required');
  if (!values.root) throw new UsageError('--root is required');
  if (!values.out) throw new UsageError('--out is required');
  if (values['ack-log'] !== undefined && values['no-ack-log'])
    throw new UsageError('--ack-log and --no-ack-log exclude each other');
  const skew = values['clock-skew'];
  if (skew !== undefined && !/^[0-9]{1,6}$/.test(skew))
    throw new UsageError('--clock-skew: expected seconds');
  return {
    treeDir: directoryOption('--tree', values.tree),
    pinnedRoot: pinnedRootOption(values.root),
    outDir: values.out,
    ...(values['no-ack-log']
      ? { ackLogFile: null }
      : values['ack-log'] !== undefined
        ? { ackLogFile: values['ack-log'] }
        : {}),
    ...(skew === undefined ? {} : { clockSkewSeconds: Number(skew) }),
    ...(values.pki === undefined ? {} : { pkiDir: values.pki }),
    verifiedStore: openVerifiedAckStore(
      values['no-cache'] ? null : (values['cache-dir'] ?? defaultCacheDir()),
      'site',
    ),
    json: values.json ?? false,
  };
}

function summaryLine(r: SiteBuildResult): string {
  const head =
    r.status === 'verified'
      ? `built: fleet "${r.fleet}", release ${r.release}, ${r.hosts} hosts`
      : r.status === 'stale'
        ? `built (STALE: ${r.failure?.code} ${r.failure?.file}): fleet "${r.fleet}", release ${r.release}, ${r.hosts} hosts`
        : `built the failure page: verification failed: ${r.failure?.code} ${r.failure?.file}: ${r.failure?.detail}`;
  return (
    `${head}; ${r.pages} pages (${r.written} written, the rest ` +
    `unchanged), ${r.acks.accepted} acks (${r.acks.rejected} rejected) ` +
    `-> ${r.outDir} in ${Math.round(r.timingsMs.total)} ms`
  );
}

export const siteBuild: Command = {
  name: 'site build',
  summary: 'build the operator dashboard (static HTML) from the verified tree and the acks',
  help: `Usage: nixfleet site build --tree DIR --root PINNED_ROOT.json --out DIR [--now ISO] [--ack-log FILE] [--json]

Verifies the whole tree against the pinned trust root (as \`nixfleet verify\` does), verifies every ack
against the host key in the signed release, runs the reconciler's fleet view, and writes a static site:
index.html ("what needs you now", overview, channels, budgets, failed/offline hosts, revocations),
channels/<ch>.html (waves, soak, failures vs threshold, timelines), hosts.html and lists/ (every host,
paged, filtered by phase, channel, wave, quarantine), hosts/<ch>_w<wave>_<n>.html (40 hosts of a wave
each, one section per host: closures, phase, failure, quarantine evidence, ack history), trust.html (root, release and cache keys) and documents.html
(the verification result of every document, rejected acks). Plain HTML, one stylesheet, inline SVG, no
external assets; an optional script adds search by host name (everything works without it). The site
is built into a new directory (pages unchanged since the previous build are hard-linked, not
rewritten) and --out is switched to it atomically (--out must be absent, an empty directory, or a
previous site-gen output). What a build verified is remembered in --cache-dir, so the next build checks
the digests of unchanged acks and documents instead of their signatures.

A tree that does not verify gives a site with only a red "verification failed: <code> <file>" banner.
An expired timestamp gives the fleet view under a red banner (every signature still verified).

Exit codes: 0 built from a verified tree; 1 built, but the tree failed verification or its timestamp
is stale; 2 usage or I/O error.

Options:
${COMMON_OPTIONS}
  --now ISO          build as of this instant (default: the clock); same inputs + same --now = same bytes`,
  async run(argv) {
    const { values } = parseCommandArgs(argv, { ...options, now: { type: 'string' } });
    const c = common(values);
    const now = parseNow(values.now);
    const { json, ...rest } = c;
    const result = await buildSite({ ...rest, now });
    output(json, result, () => summaryLine(result));
    return result.status === 'verified' ? EXIT_OK : EXIT_REFUSED;
  },
};

export const siteWatch: Command = {
  name: 'site watch',
  summary: 'rebuild the operator dashboard whenever the timestamp, the tree or the acks change',
  help: `Usage: nixfleet site watch --tree DIR --root PINNED_ROOT.json --out DIR [--interval S] [--debounce MS] [--json]
         [--notify-url URL | --notify-command ARGV...] [--notify-state FILE]

Builds once, then rebuilds (as \`nixfleet site build\`) when timestamp.json, the installed tree
(current), root/, revocations, acks/ or the ack log change. Changes within --debounce are coalesced into
one build; builds never overlap (a change during a build schedules exactly one more). Rebuilds every
--interval seconds even without changes, because ages, soak progress and heartbeat expiry move with
time. One line per build on stdout (a JSON object per line with --json). Stops cleanly on SIGINT or
SIGTERM (exit 0).

Options:
${COMMON_OPTIONS}
  --interval S       periodic rebuild (default 60; 0 = only on changes)
  --debounce MS      coalescing window (default 300)

Notifications (after each build): channel halted, host failed or rolled back, channel rollout complete,
each once, as one JSON object carrying the signed acks that prove it (site-gen/notify.ts):
  --notify-url URL          POST the event as JSON (10 s timeout; any non-2xx is retried after the next build)
  --notify-command ARGV...  run ARGV (no shell) with the event JSON on stdin and NIXFLEET_EVENT,
                            NIXFLEET_EVENT_ID in the environment; takes every argument after it (put it last)
  --notify-state FILE       ids of events already delivered (default OUT.notified.json beside --out)`,
  async run(allArgv) {
    // --notify-command takes the rest of the command line as the argv to run.
    const at = allArgv.indexOf('--notify-command');
    const argv = at < 0 ? allArgv : allArgv.slice(0, at);
    const notifyArgv = at < 0 ? null : allArgv.slice(at + 1);
    const { values } = parseCommandArgs(argv, {
      ...options,
      interval: { type: 'string' },
      debounce: { type: 'string' },
      'notify-url': { type: 'string' },
      'notify-state': { type: 'string' },
    });
    const c = common(values);
    if (notifyArgv !== null && notifyArgv.length === 0)
      throw new UsageError('--notify-command: give the command to run after it');
    if (notifyArgv !== null && values['notify-url'] !== undefined)
      throw new UsageError('--notify-url and --notify-command exclude each other');
    const url = values['notify-url'];
    if (url !== undefined && !/^https?:\/\/[^\s]+$/.test(url))
      throw new UsageError('--notify-url: expected an http:// or https:// URL');
    const target: NotifyTarget | null = notifyArgv
      ? { kind: 'command', argv: notifyArgv }
      : url !== undefined
        ? { kind: 'webhook', url }
        : null;
    if (target === null && values['notify-state'] !== undefined)
      throw new UsageError('--notify-state needs --notify-url or --notify-command');
    const interval = values.interval ?? '60';
    const debounce = values.debounce ?? '300';
    if (!/^[0-9]{1,6}$/.test(interval)) throw new UsageError('--interval: expected seconds');
    if (!/^[0-9]{1,6}$/.test(debounce)) throw new UsageError('--debounce: expected milliseconds');
    const { json, ...rest } = c;
    const line = (obj: Record<string, unknown>, text: string) =>
      process.stdout.write((json ? JSON.stringify(obj) : text) + '\n');
    const notifier =
      target === null
        ? null
        : new Notifier({
            treeDir: rest.treeDir,
            pinnedRoot: rest.pinnedRoot,
            target,
            stateFile: values['notify-state'] ?? `${rest.outDir.replace(/\/+$/, '')}.notified.json`,
            ...(rest.clockSkewSeconds === undefined
              ? {}
              : { clockSkewSeconds: rest.clockSkewSeconds }),
            log: (e) =>
              line(
                e,
                e['event'] === 'notified'
                  ? `notified ${String(e['id'])}`
                  : `notification failed ${String(e['id'])}: ${String(e['error'])}`,
              ),
          });
    // The signal handlers go in before the first build: a SIGTERM that arrives while it runs (or right
    // after its `built` line) must stop the watcher cleanly, not kill the process mid-write.
    let stopSignal: string | null = null;
    let stopRequested: (signal: string) => void = (signal) => (stopSignal = signal);
    const onInt = () => stopRequested('SIGINT');
    const onTerm = () => stopRequested('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    const watcher = await watchSite({
      ...rest,
      intervalSeconds: Number(interval),
      debounceMs: Number(debounce),
      onBuild: (r, trigger) => {
        line({ event: 'built', trigger, ...r }, `${summaryLine(r)} [${trigger}]`);
        notifier
          ?.check(Date.now())
          .catch((e: Error) =>
            line({ event: 'notify-error', error: e.message }, `notifications: ${e.message}`),
          );
      },
      onError: (e, trigger) =>
        line(
          { event: 'error', trigger, error: (e as Error).message },
          `build failed [${trigger}]: ${(e as Error).message}`,
        ),
    });
    const signal = await new Promise<string>((resolve) => {
      if (stopSignal !== null) resolve(stopSignal);
      else stopRequested = resolve;
    });
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    await watcher.close();
    await notifier?.idle();
    line({ event: 'stopped', signal }, `stopped (${signal})`);
    return EXIT_OK;
  },
};
