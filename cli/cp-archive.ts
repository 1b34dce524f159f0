// `nixfleet cp archive-acks`: moves an ack log's old sealed segments out of the live log directory
// (to cheaper storage, say), leaving a floor file so `verify --acks` over the live segments knows
// where each host's history starts. control-plane/ack-log.ts archiveAckSegments does the work.
import { resolve } from 'node:path';
import {
  EXIT_OK,
  UsageError,
  directoryOption,
  output,
  parseCommandArgs,
  type Command,
} from './command.ts';
import { archiveAckSegments } from '../control-plane/index.ts';
import { ackLogDir } from '../protocol/index.ts';

const command: Command = {
  name: 'cp archive-acks',
  summary:
    "move an ack log's old sealed segments to an archive directory (history stays verifiable)",
  help: `Usage: nixfleet cp archive-acks (--tree DIR | --acks-log LOG_DIR) --before N --to ARCHIVE_DIR [--json]

The ack endpoint's log is a directory of segments (acks.log, acks-000001.log, ...; a new one starts once
the current one passes 8 MiB). This moves the segments numbered below N to ARCHIVE_DIR and first writes
acks-<N>.floor in the log directory: every host's chain head as of segment N's start. The endpoint may
keep running: it only appends to its current segment, and starts up from its snapshot, which must cover
segment N (it writes one at each roll); the current segment is never archived.

Auditing afterwards: \`nixfleet verify --acks --ack-log ARCHIVE_DIR --ack-log LOG_DIR\` reads both and is
complete from seq 1; over LOG_DIR alone each host's history starts at the floor, which is the
endpoint's own unsigned record of the archived heads (trust it as you trust the endpoint's disk).

Exit codes: 0 archived, 2 usage/I/O or refused (names the reason).

Options:
  --tree DIR         the control plane directory (its log: DIR/.ack-log)
  --acks-log LOG_DIR the ack log directory (instead of --tree)
  --before N         archive segments numbered below N
  --to ARCHIVE_DIR   where they go (created; may be on another file system)
  --json             print {moved, floor} as JSON`,
  async run(argv) {
    const { values } = parseCommandArgs(argv, {
      tree: { type: 'string' },
      'acks-log': { type: 'string' },
      before: { type: 'string' },
      to: { type: 'string' },
      json: { type: 'boolean', default: false },
    });
    if ((values.tree === undefined) === (values['acks-log'] === undefined))
      throw new UsageError('pass exactly one of --tree and --acks-log');
    if (!values.before || !/^[0-9]{1,6}$/.test(values.before))
      throw new UsageError('--before: expected a segment number');
    if (!values.to) throw new UsageError('--to is required');
    const dir =
      values['acks-log'] !== undefined
        ? directoryOption('--acks-log', values['acks-log'])
        : ackLogDir(directoryOption('--tree', values.tree!));
    let r;
    try {
      r = archiveAckSegments(dir, Number(values.before), resolve(values.to));
    } catch (e) {
      throw new UsageError(`archive-acks: ${(e as Error).message}`);
    }
    output(values.json, r, () =>
      [
        `archived ${r.moved.length} file(s) to ${values.to}`,
        ...r.moved.map((f) => `  ${f}`),
        `floor: ${r.floor}`,
      ].join('\n'),
    );
    return EXIT_OK;
  },
};
export default command;
