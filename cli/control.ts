// `nixfleet control ...`: the operator's signed controls (pause / resume a channel, resume a halted
// rollout, retry a host, clear quarantines), and `control show`. Each command verifies CI's tree
// against the pinned root (names and rollout ids come from the signed release), signs the next
// controls-<n>.json with the operator key(s) and writes it into the tree; CI's next `nixfleet refresh`
// (or publish) binds it into timestamp.json, and agents apply it at their next poll after that.
import {
  EXIT_OK,
  EXIT_REFUSED,
  UsageError,
  output,
  parseCommandArgs,
  type Command,
} from './command.ts';
import { reportPublisherError } from './publish.ts';
import { parseNow } from './command.ts';
import {
  readPrivateKey,
  StorePath,
  ChannelName,
  Digest,
  type Controls,
} from '../protocol/index.ts';
import { currentTreeControls, writeControls, type ControlsBody } from '../publisher/index.ts';
import type { VerifiedRelease } from '../read-side/index.ts';
import { hostOf, treeOption } from './tree-option.ts';

/** Quarantine clears kept in the document (newest first): quarantines last a day by default, so older clears are inert. */
const MAX_QUARANTINE_CLEARS = 256;

type Sub = 'pause' | 'resume' | 'resume-halted' | 'retry' | 'clear-quarantine';

const COMMON_HELP = `  --tree DIR           CI's published tree (controls-<n>.json is written here)
  --root FILE          the pinned trust root (root/1.json): the tree is verified against it
  --operator-key FILE  operator private key (repeat to meet the root's operator threshold)
  --reason TEXT        why (kept in the signed document, shown to every host; up to 512 characters)
  --now ISO            signing time (default: the clock)
  --json               print {ok, version, file, controls, boundVersion} as JSON

The control takes effect when CI's next \`nixfleet refresh\` (or publish) binds it into timestamp.json:
at most the refresh schedule (the smallest signingIntervalSeconds of the channels), plus one agent poll.
Run \`nixfleet refresh\` right away where CI allows it. Nothing else (CI, the control plane) can sign,
alter or replay a control: agents verify the operator signatures and refuse an older version.

Exit: 0 signed, 1 refused (tree does not verify, keys below the operator threshold, no operator role,
unknown channel or host), 2 usage or I/O.`;

interface Parsed {
  tree: string;
  release: VerifiedRelease;
  now: number;
  reason: string;
  values: Record<string, string | boolean | string[] | undefined>;
}

async function loadTree(
  values: Record<string, string | boolean | string[] | undefined>,
  now: number,
): Promise<VerifiedRelease> {
  const r = await treeOption(values, now);
  if ('failure' in r) throw Object.assign(new Error(r.failure), { refused: true });
  return r.release;
}

function channelOf(release: VerifiedRelease, channel: string): string {
  if (!ChannelName.safeParse(channel).success || !release.plans[channel])
    throw new UsageError(
      `--channel: release ${release.index.version} has no channel "${channel}" (channels: ${Object.keys(release.plans).join(', ')})`,
    );
  return channel;
}

function rolloutIdOf(values: Parsed['values'], release: VerifiedRelease, channel: string): string {
  const given = values['rollout-id'] as string | undefined;
  if (given === undefined) return release.plans[channel]!.rolloutId;
  if (!Digest.safeParse(given).success)
    throw new UsageError(`--rollout-id: expected sha256:<64 hex>, got ${JSON.stringify(given)}`);
  return given;
}

/** Entries naming rollouts that are no longer current in their channel can no longer act: drop them. */
function prune(c: ControlsBody, release: VerifiedRelease): ControlsBody {
  const current = (channel: string | undefined, id: string) =>
    channel !== undefined && release.plans[channel]?.rolloutId === id;
  return {
    paused: c.paused,
    resumedHalts: c.resumedHalts.filter((r) => current(r.channel, r.rolloutId)),
    retries: c.retries.filter((r) => current(release.index.hosts[r.host]?.channel, r.rolloutId)),
    quarantineClears: c.quarantineClears.slice(-MAX_QUARANTINE_CLEARS),
  };
}

/** The edit each subcommand makes, and a one-line description of it. */
function editFor(
  sub: Sub,
  p: Parsed,
): { edit: (c: ControlsBody, at: string) => ControlsBody; what: string } {
  const v = p.values;
  const reason = p.reason;
  switch (sub) {
    case 'pause': {
      const channel = channelOf(p.release, (v['channel'] as string | undefined) ?? '');
      return {
        what: `channel ${channel} paused`,
        edit: (c, at) => ({
          ...c,
          paused: [
            ...c.paused.filter((x) => x.channel !== channel),
            { channel, since: at, reason },
          ],
        }),
      };
    }
    case 'resume': {
      const channel = channelOf(p.release, (v['channel'] as string | undefined) ?? '');
      return {
        what: `channel ${channel} resumed`,
        edit: (c) => ({ ...c, paused: c.paused.filter((x) => x.channel !== channel) }),
      };
    }
    case 'resume-halted': {
      const channel = channelOf(p.release, (v['channel'] as string | undefined) ?? '');
      const rolloutId = rolloutIdOf(v, p.release, channel);
      return {
        what: `rollout ${rolloutId.slice(0, 19)} of channel ${channel} resumed: its failures so far are accepted`,
        edit: (c, at) => ({
          ...c,
          resumedHalts: [
            ...c.resumedHalts.filter((x) => !(x.channel === channel && x.rolloutId === rolloutId)),
            { channel, rolloutId, acceptedAt: at, reason },
          ],
        }),
      };
    }
    case 'retry': {
      const { host, channel } = hostOf(p.release, (v['host'] as string | undefined) ?? '');
      const rolloutId = rolloutIdOf(v, p.release, channel);
      return {
        what:
          `host ${host} may retry rollout ${rolloutId.slice(0, 19)} of ` +
          `channel ${channel} (its failure no longer counts, its quarantine of the ` +
          `target is lifted)`,
        edit: (c, at) => ({
          ...c,
          retries: [
            ...c.retries.filter((x) => !(x.host === host && x.rolloutId === rolloutId)),
            { host, rolloutId, at, reason },
          ],
        }),
      };
    }
    case 'clear-quarantine': {
      const host = v['host'] === undefined ? null : hostOf(p.release, v['host'] as string).host;
      const target = (v['target'] as string | undefined) ?? null;
      if (target !== null && !StorePath.safeParse(target).success)
        throw new UsageError(`--target: not a Nix store path: ${JSON.stringify(target)}`);
      return {
        what: `quarantine cleared for ${host ?? 'every host'}, ${target ?? 'every target'} (entries begun before now)`,
        edit: (c, at) => ({
          ...c,
          quarantineClears: [...c.quarantineClears, { host, target, at, reason }],
        }),
      };
    }
  }
}

const SUB_HELP: Record<Sub, { usage: string; summary: string; text: string }> = {
  pause: {
    usage: '--channel C',
    summary:
      'pause a channel: its hosts start nothing new (confirmations and rollbacks in flight continue)',
    text: 'Hosts of the channel wait at the `paused` gate; the release and its rollout are unchanged.',
  },
  resume: {
    usage: '--channel C',
    summary: 'resume a paused channel',
    text: "Removes the channel's pause.",
  },
  'resume-halted': {
    usage: '--channel C [--rollout-id ID]',
    summary: 'resume a halted rollout without a new release, accepting its failures so far',
    text:
      'Failures signed (or starts presumed failed) up to now no longer count towards the halt; a later failure\n' +
      "counts again. The rollout id defaults to the channel's current one. Failed hosts stay quarantined (see retry).",
  },
  retry: {
    usage: '--host H [--rollout-id ID]',
    summary: 'let a failed host try its target again in the same rollout',
    text:
      "The host's signed failure in this rollout (up to now) no longer counts, and its agent drops its\n" +
      'quarantine of the target; it then starts again when its gates allow.',
  },
  'clear-quarantine': {
    usage: '[--host H] [--target /nix/store/...]',
    summary: 'clear quarantines fleet-wide or for one host (optionally one target)',
    text: 'Agents drop matching local quarantine entries that began before now; later quarantines stand.',
  },
};

/** The help lines of the options `sub` takes besides the common ones. */
function optionsHelp(sub: Sub): string {
  const takes = (...subs: Sub[]) => subs.includes(sub);
  return [
    takes('pause', 'resume', 'resume-halted') ? '  --channel C          the channel\n' : '',
    takes('retry', 'clear-quarantine') ? '  --host H             the host\n' : '',
    takes('resume-halted', 'retry')
      ? '  --rollout-id ID      the rollout (default: the current one of the channel)\n'
      : '',
    takes('clear-quarantine') ? '  --target PATH        only this closure\n' : '',
  ].join('');
}

function subCommand(sub: Sub): Command {
  const h = SUB_HELP[sub];
  return {
    name: `control ${sub}`,
    summary: h.summary,
    help: `Usage: nixfleet control ${sub} ${h.usage} --tree DIR --root FILE --operator-key FILE...
                    [--reason TEXT] [--now ISO] [--json]

${h.text}

Options:
${optionsHelp(sub)}${COMMON_HELP}`,
    async run(argv) {
      const { values } = parseCommandArgs(argv, {
        tree: { type: 'string' },
        root: { type: 'string' },
        'operator-key': { type: 'string', multiple: true },
        reason: { type: 'string' },
        now: { type: 'string' },
        json: { type: 'boolean', default: false },
        ...(sub === 'pause' || sub === 'resume' || sub === 'resume-halted'
          ? { channel: { type: 'string' as const } }
          : {}),
        ...(sub === 'retry' || sub === 'clear-quarantine'
          ? { host: { type: 'string' as const } }
          : {}),
        ...(sub === 'resume-halted' || sub === 'retry'
          ? { 'rollout-id': { type: 'string' as const } }
          : {}),
        ...(sub === 'clear-quarantine' ? { target: { type: 'string' as const } } : {}),
      });
      if ((sub === 'pause' || sub === 'resume' || sub === 'resume-halted') && !values['channel'])
        throw new UsageError('--channel C is required');
      if (sub === 'retry' && !values['host']) throw new UsageError('--host H is required');
      const keyFiles = values['operator-key'] ?? [];
      if (keyFiles.length === 0)
        throw new UsageError(
          '--operator-key FILE is required (repeat it to meet the operator threshold)',
        );
      const reason = values.reason ?? '';
      if (reason.length > 512) throw new UsageError('--reason: at most 512 characters');
      const now = parseNow(values.now);
      const json = values.json === true;
      try {
        const release = await loadTree(values, now);
        const keys = keyFiles.map((f) => readPrivateKey(f));
        const { edit, what } = editFor(sub, { tree: values.tree!, release, now, reason, values });
        const r = writeControls({
          treeDir: values.tree!,
          root: release.root,
          keys,
          now,
          edit: (c, at) => prune(edit(c, at), release),
        });
        const boundVersion = release.timestamp.controls?.version ?? null;
        output(
          json,
          { ok: true, version: r.version, file: r.file, controls: r.controls, boundVersion },
          () =>
            [
              `signed controls v${r.version} (${r.file}): ${what}`,
              `  timestamp.json binds ${boundVersion === null ? 'no controls' : `controls v${boundVersion}`} ` +
                `now; v${r.version} takes effect at CI's next \`nixfleet refresh\` (or ` +
                `publish), then at each agent's next poll`,
            ].join('\n'),
        );
        return EXIT_OK;
      } catch (e) {
        return report(`control ${sub}`, e, json);
      }
    },
  };
}

function report(cmd: string, e: unknown, json: boolean): number {
  if (e instanceof Error && (e as { refused?: boolean }).refused) {
    if (json) output(true, { ok: false, errors: [e.message] }, () => '');
    process.stderr.write(`nixfleet ${cmd}: refused: ${e.message}\n`);
    return EXIT_REFUSED;
  }
  return reportPublisherError(cmd, e, json);
}

export const controlPause = subCommand('pause');
export const controlResume = subCommand('resume');
export const controlResumeHalted = subCommand('resume-halted');
export const controlRetry = subCommand('retry');
export const controlClearQuarantine = subCommand('clear-quarantine');

function describeControls(c: Controls | null): string[] {
  if (c === null) return ['  (no controls)'];
  const lines: string[] = [];
  for (const p of c.paused)
    lines.push(
      `  paused: channel ${p.channel} since ${p.since}${p.reason ? ` (${p.reason})` : ''}`,
    );
  for (const r of c.resumedHalts)
    lines.push(
      `  resumed halt: channel ${r.channel} rollout ${r.rolloutId.slice(0, 19)}, failures up to ${r.acceptedAt} accepted${r.reason ? ` (${r.reason})` : ''}`,
    );
  for (const r of c.retries)
    lines.push(
      `  retry: host ${r.host} rollout ${r.rolloutId.slice(0, 19)}, failure up to ${r.at}${r.reason ? ` (${r.reason})` : ''}`,
    );
  for (const q of c.quarantineClears)
    lines.push(
      `  quarantine cleared: ${q.host ?? 'every host'}, ${q.target ?? 'every target'}, entries before ${q.at}${q.reason ? ` (${q.reason})` : ''}`,
    );
  return lines.length ? lines : ['  (no control in force)'];
}

export const controlShow: Command = {
  name: 'control show',
  summary: 'show the operator controls in force (bound by the timestamp) and any not yet bound',
  help: `Usage: nixfleet control show --tree DIR --root FILE [--now ISO] [--json]

Verifies the tree against the pinned root and prints the controls timestamp.json binds (what agents
apply) and, when CI has not refreshed since, the newer controls-<n>.json waiting to be bound.

Exit: 0 shown, 1 the tree or a controls file does not verify, 2 usage or I/O.`,
  async run(argv) {
    const { values } = parseCommandArgs(argv, {
      tree: { type: 'string' },
      root: { type: 'string' },
      now: { type: 'string' },
      json: { type: 'boolean', default: false },
    });
    const now = parseNow(values.now);
    const json = values.json === true;
    try {
      const release = await loadTree(values, now);
      const bound = release.controls;
      const newest = currentTreeControls(values.tree!, release.root);
      const pending = newest.version > (bound?.version ?? 0) ? newest.controls : null;
      output(
        json,
        {
          ok: true,
          bound,
          pending,
          operatorRole: release.root.operatorKeys
            ? {
                threshold: release.root.operatorThreshold,
                keys: release.root.operatorKeys.map((k) => ({
                  name: k.name,
                  keyid: k.keyid,
                  validFrom: k.validFrom,
                  validUntil: k.validUntil,
                })),
              }
            : null,
        },
        () =>
          [
            `controls in force (timestamp.json of release ${release.index.version}): ${bound ? `v${bound.version}, signed ${bound.issuedAt}` : 'none'}`,
            ...describeControls(bound),
            ...(pending
              ? [
                  `not yet bound (waiting for CI's next refresh): v${pending.version}, signed ${pending.issuedAt}`,
                  ...describeControls(pending),
                ]
              : []),
            release.root.operatorKeys
              ? `operator role: ${release.root.operatorThreshold} of ${release.root.operatorKeys.map((k) => k.name).join(', ')}`
              : 'operator role: none in trust root (no controls are accepted)',
          ].join('\n'),
      );
      return EXIT_OK;
    } catch (e) {
      return report('control show', e, json);
    }
  },
};

export default controlShow;
