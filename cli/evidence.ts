// `nixfleet evidence export` / `nixfleet evidence verify`: a self-contained bundle for an auditor (the
// trust root chain, the signed release documents, the hosts' signed acks with their compliance
// evidence, a digest manifest), and its offline verification against a pinned root, printed as a
// per-host, per-control table. Exit codes: 0 ok, 1 refused (what and why, naming the file/host/ack),
// 2 usage or I/O.
import { readFileSync, statSync } from 'node:fs';
import {
  EXIT_OK,
  EXIT_REFUSED,
  UsageError,
  directoryOption,
  fileOption,
  optionIoError,
  output,
  parseCommandArgs,
  parseNow,
  parseTimeOption,
  printRefused,
  secondsOption,
  type Command,
} from './command.ts';
import { pinnedRootOption } from './root-option.ts';
import {
  EVIDENCE_BUNDLE_MAX_BYTES,
  isVerificationError,
  TooLarge,
  UnknownScopeChannel,
  verifyEvidenceBundle,
  writeFileAtomic,
} from '../protocol/index.ts';
import { exportEvidence, renderEvidenceReport } from '../read-side/index.ts';

export const evidenceExport: Command = {
  name: 'evidence export',
  summary: 'write a self-contained, offline-verifiable evidence bundle for an auditor',
  help: `Usage: nixfleet evidence export --tree DIR --root PINNED_ROOT.json --out FILE [--channel C] [--since ISO]
                                [--ack-log FILE]... [--now ISO] [--clock-skew S] [--json]

Verifies the tree against the pinned root (the release walk \`nixfleet verify\` runs) and writes one
JSON file holding exactly the documents that walk verified: the trust root chain (root/1..n), the
timestamp, the revocations and controls it binds, the release index, the budgets, the channel plans
and the host manifests (with their signed compliance results), then every signed ack of those hosts
(with the runtime evidence they carry) and a manifest of the sha256 digest of each entry.

Acks come from the ack endpoint's log (DIR/.ack-log/acks.log, or --ack-log) and the tree's acks/;
each is verified against the host key the release names. Each host's acks must form one unbroken hash
chain from seq 1 (with --since: from the last ack before that instant), else the export is refused
naming the host and the missing seq: a bundle with a hole in it would be refused by the auditor too.

Exit codes: 0 written, 1 refused (the tree does not verify, or a host's ack chain has a gap), 2 usage/I/O
(also an unknown --channel).

Options:
  --tree DIR       the published tree or control plane directory
  --root FILE      the pinned trust root
  --out FILE       where to write the bundle (atomically)
  --channel C      only this channel's hosts (with the plans they depend on); default the whole fleet
  --since ISO      only acks from this instant on (plus one anchor ack before it per host)
  --ack-log FILE   ack log(s) to read (repeatable: replicas are read as their union)
  --now ISO        verify the tree as of this instant (default: the clock)
  --clock-skew S   tolerated clock skew for a future-dated timestamp (default 300)
  --json           print a summary as JSON`,
  async run(argv) {
    const { values } = parseCommandArgs(argv, {
      tree: { type: 'string' },
      root: { type: 'string' },
      out: { type: 'string' },
      channel: { type: 'string' },
      since: { type: 'string' },
      'ack-log': { type: 'string', multiple: true },
      now: { type: 'string' },
      'clock-skew': { type: 'string' },
      json: { type: 'boolean', default: false },
    });
    if (!values.tree) throw new UsageError('--tree is required');
    if (!values.root) throw new UsageError('--root is required');
    if (!values.out) throw new UsageError('--out is required');
    const dir = directoryOption('--tree', values.tree);
    const now = parseNow(values.now);
    const since = values.since === undefined ? null : parseTimeOption('--since', values.since);
    const ackLogs = values['ack-log']?.map((f) => fileOption('--ack-log', f));
    const clockSkewSeconds = secondsOption('--clock-skew', values['clock-skew']);
    try {
      const pinnedRoot = pinnedRootOption(values.root);
      const result = await exportEvidence({
        dir,
        pinnedRoot,
        scope: { channel: values.channel ?? null, since },
        now,
        ...(clockSkewSeconds === undefined ? {} : { clockSkewSeconds }),
        ...(ackLogs ? { ackLogs } : {}),
      });
      const text = JSON.stringify(result.bundle) + '\n';
      try {
        writeFileAtomic(values.out, text);
      } catch (e) {
        throw optionIoError('--out', values.out, e);
      }
      const b = result.bundle;
      const summary = {
        ok: true,
        out: values.out,
        bytes: Buffer.byteLength(text),
        fleet: b.fleet,
        scope: b.scope,
        documents: Object.keys(b.documents).length,
        hosts: Object.keys(b.acks).length,
        acks: Object.values(b.acks).reduce((n, l) => n + l.length, 0),
        logs: result.logs,
        rejected: result.rejected,
      };
      output(values.json, summary, () =>
        [
          `wrote ${summary.out}: fleet "${b.fleet}", ${summary.documents} signed documents, ${summary.acks} acks of ${summary.hosts} hosts (${summary.bytes} bytes)`,
          summary.logs.length === 0
            ? '  no ack log read: only the acks in the tree'
            : `  ack log(s): ${summary.logs.join(', ')}`,
          ...result.rejected.map(
            (r) =>
              `  NOT INCLUDED ${r.source}${r.host ? ` (${r.host})` : ''}: ${r.code}: ${r.reason}`,
          ),
        ].join('\n'),
      );
      return EXIT_OK;
    } catch (e) {
      if (e instanceof UnknownScopeChannel) throw new UsageError(`--channel: ${e.message}`);
      if (!isVerificationError(e)) throw e;
      printRefused('evidence export', e, values.json);
      return EXIT_REFUSED;
    }
  },
};

export const evidenceVerify: Command = {
  name: 'evidence verify',
  summary: "verify an evidence bundle offline and print each host's controls",
  help: `Usage: nixfleet evidence verify BUNDLE --root PINNED_ROOT.json [--now ISO] [--json]

Offline, with nothing but the bundle and the auditor's pinned trust root: checks the bundle's fleet,
every entry against its digest manifest, the trust root chain from the pinned root, every signature
and binding of the release documents (the release walk, as of the time its timestamp was signed, or
--now), that the bundle holds every manifest of its scope and nothing the release does not bind, and
every ack: signed by the host key the release names for that host, of this fleet, and each host's
acks one unbroken hash chain (a dropped ack is a gap and refuses the bundle).

Then prints one row per host and control: static controls as the release signed CI's result, runtime
controls with the host's latest signed result (time, ack seq, exit code, output excerpt).
A failing control is a finding shown in the table, not a refusal of the bundle.

Exit codes: 0 verified, 1 refused (the typed error naming the bundle entry, host or ack), 2 usage/I/O.

Options:
  --root FILE      the pinned trust root
  --now ISO        verify the release as of this instant instead of its timestamp's signing time
  --clock-skew S   tolerated clock skew (with --now)
  --json           print the report (or {ok:false,error:{code,file,detail}}) as JSON`,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(
      argv,
      {
        root: { type: 'string' },
        now: { type: 'string' },
        'clock-skew': { type: 'string' },
        json: { type: 'boolean', default: false },
      },
      true,
    );
    if (positionals.length !== 1) throw new UsageError('expected exactly one BUNDLE file');
    if (!values.root) throw new UsageError('--root is required');
    const file = fileOption('BUNDLE', positionals[0]!);
    const now = values.now === undefined ? undefined : parseNow(values.now);
    const clockSkewSeconds = secondsOption('--clock-skew', values['clock-skew']);
    try {
      const pinnedRoot = pinnedRootOption(values.root);
      const report = await verifyEvidenceBundle(readBundle(file), file, pinnedRoot, {
        ...(now === undefined ? {} : { now }),
        ...(clockSkewSeconds === undefined ? {} : { clockSkewSeconds }),
      });
      output(values.json, report, () => renderEvidenceReport(report));
      return EXIT_OK;
    } catch (e) {
      if (!isVerificationError(e)) throw e;
      printRefused('evidence verify', e, values.json);
      return EXIT_REFUSED;
    }
  },
};

/** The bundle's bytes, its size checked before reading. */
function readBundle(file: string): Buffer {
  let size: number;
  try {
    size = statSync(file).size;
  } catch (e) {
    throw optionIoError('BUNDLE', file, e);
  }
  if (size > EVIDENCE_BUNDLE_MAX_BYTES)
    throw new TooLarge(file, `${size} bytes exceeds the limit of ${EVIDENCE_BUNDLE_MAX_BYTES}`);
  try {
    return readFileSync(file);
  } catch (e) {
    throw optionIoError('BUNDLE', file, e);
  }
}
