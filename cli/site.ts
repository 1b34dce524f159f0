// `nixfleet site build` and `nixfleet site watch`: the operator's static dashboard (site-gen/).
import { EXIT_OK, EXIT_REFUSED, UsageError, directoryOption, output, parseCommandArgs, parseNow, pinnedRootOption, type Command } from './command.ts';
import type { SignedRoot } from '../protocol/trust-root.ts';
import { buildSite, type SiteBuildResult } from '../site-gen/build.ts';
import { watchSite } from '../site-gen/watch.ts';

const COMMON_OPTIONS = `  --tree DIR         the tree: a control plane directory (current -> verified tree, acks/) or a
                     tree written by \`nixfleet publish\` (acks/ inside it)
  --root FILE        the pinned trust root (root/1.json from \`nixfleet trust init\`)
  --out DIR          where the site goes: becomes a symlink to the newest build (serve this path)
  --ack-log FILE     the ack endpoint's log, for timelines and ack history
                     (default DIR/.ack-log/acks.log when it exists)
  --no-ack-log       use only the latest ack of each host (acks/hosts/)
  --clock-skew S     tolerated clock skew for a future-dated timestamp (default 300)
  --json             machine-readable output`;


const options = {
  tree: { type: 'string' },
  root: { type: 'string' },
  out: { type: 'string' },
  'ack-log': { type: 'string' },
  'no-ack-log': { type: 'boolean', default: false },
  'clock-skew': { type: 'string' },
  json: { type: 'boolean', default: false },
} as const;

interface Common {
  treeDir: string;
  pinnedRoot: SignedRoot;
  outDir: string;
  ackLogFile?: string | null;
  clockSkewSeconds?: number;
  json: boolean;
}

function common(values: { tree?: string; root?: string; out?: string; 'ack-log'?: string; 'no-ack-log'?: boolean; 'clock-skew'?: string; json?: boolean }): Common {
  if (!values.tree) throw new UsageError('--tree is required');
  if (!values.root) throw new UsageError('--root is required');
  if (!values.out) throw new UsageError('--out is required');
  if (values['ack-log'] !== undefined && values['no-ack-log']) throw new UsageError('--ack-log and --no-ack-log exclude each other');
  const skew = values['clock-skew'];
  if (skew !== undefined && !/^[0-9]{1,6}$/.test(skew)) throw new UsageError('--clock-skew: expected seconds');
  return {
    treeDir: directoryOption('--tree', values.tree),
    pinnedRoot: pinnedRootOption(values.root),
    outDir: values.out,
    ...(values['no-ack-log'] ? { ackLogFile: null } : values['ack-log'] !== undefined ? { ackLogFile: values['ack-log'] } : {}),
    ...(skew === undefined ? {} : { clockSkewSeconds: Number(skew) }),
    json: values.json ?? false,
  };
}

function summaryLine(r: SiteBuildResult): string {
  const head = r.status === 'verified'
    ? `built: fleet "${r.fleet}", release ${r.release}, ${r.hosts} hosts`
    : r.status === 'stale'
      ? `built (STALE: ${r.failure?.code} ${r.failure?.file}): fleet "${r.fleet}", release ${r.release}, ${r.hosts} hosts`
      : `built the failure page: verification failed: ${r.failure?.code} ${r.failure?.file}: ${r.failure?.detail}`;
  return `${head}; ${r.pages} pages, ${r.acks.accepted} acks (${r.acks.rejected} rejected) -> ${r.outDir} in ${Math.round(r.timingsMs.total)} ms`;
}

export const siteBuild: Command = {
  name: 'site build',
  summary: 'build the operator dashboard (static HTML) from the verified tree and the acks',
  help: `Usage: nixfleet site build --tree DIR --root PINNED_ROOT.json --out DIR [--now ISO] [--ack-log FILE] [--json]

Verifies the whole tree against the pinned trust root (as \`nixfleet verify\` does), verifies every ack
against the host key in the signed release, runs the reconciler's fleet view, and writes a static site:
index.html (overview, channels, budgets, failed/quarantined/offline hosts, revocations), channels/<ch>.html
(waves, soak, failures vs threshold, timelines), hosts.html and hosts/<host>.html (closures, phase,
last ack, why it waits, ack history), trust.html (root, release and cache keys) and documents.html
(the verification result of every document, rejected acks). Plain HTML with inline CSS and SVG:
no JavaScript, no external assets. The site is built into a new directory and --out is switched to it
atomically (--out must be absent, an empty directory, or a previous site-gen output).

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

Builds once, then rebuilds (as \`nixfleet site build\`) when timestamp.json, the installed tree
(current), root/, revocations, acks/ or the ack log change. Changes within --debounce are coalesced into
one build; builds never overlap (a change during a build schedules exactly one more). Rebuilds every
--interval seconds even without changes, because ages, soak progress and heartbeat expiry move with
time. One line per build on stdout (a JSON object per line with --json). Stops cleanly on SIGINT or
SIGTERM (exit 0).

Options:
${COMMON_OPTIONS}
  --interval S       periodic rebuild (default 60; 0 = only on changes)
  --debounce MS      coalescing window (default 300)`,
  async run(argv) {
    const { values } = parseCommandArgs(argv, { ...options, interval: { type: 'string' }, debounce: { type: 'string' } });
    const c = common(values);
    const interval = values.interval ?? '60';
    const debounce = values.debounce ?? '300';
    if (!/^[0-9]{1,6}$/.test(interval)) throw new UsageError('--interval: expected seconds');
    if (!/^[0-9]{1,6}$/.test(debounce)) throw new UsageError('--debounce: expected milliseconds');
    const { json, ...rest } = c;
    const line = (obj: Record<string, unknown>, text: string) => process.stdout.write((json ? JSON.stringify(obj) : text) + '\n');
    const watcher = await watchSite({
      ...rest,
      intervalSeconds: Number(interval),
      debounceMs: Number(debounce),
      onBuild: (r, trigger) => line({ event: 'built', trigger, ...r }, `${summaryLine(r)} [${trigger}]`),
      onError: (e, trigger) => line({ event: 'error', trigger, error: (e as Error).message }, `build failed [${trigger}]: ${(e as Error).message}`),
    });
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        process.off('SIGINT', onInt);
        process.off('SIGTERM', onTerm);
        void watcher.close().then(() => {
          line({ event: 'stopped', signal }, `stopped (${signal})`);
          resolve();
        });
      };
      const onInt = () => stop('SIGINT');
      const onTerm = () => stop('SIGTERM');
      process.on('SIGINT', onInt);
      process.on('SIGTERM', onTerm);
    });
    return EXIT_OK;
  },
};
