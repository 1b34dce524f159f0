// The contract every `nixfleet` subcommand module follows, the shared exit-code conventions
// (0 = ok, 1 = refused / verification failed, 2 = usage or I/O error, 3 = shown, but stale), and the
// option helpers every command shares: one --now parser, one pinned-root loader, one REFUSED printer.
import { statSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
// Types only: the dispatcher (cli/main.ts) loads this module at every start, so it must not pull the
// protocol's schemas in (pinnedRootOption, which does, lives in ./root-option.ts).
import type { VerificationError } from '../protocol/index.ts';
import type { VerifiedAckStore } from '../read-side/index.ts';

export const EXIT_OK = 0;
export const EXIT_REFUSED = 1;
export const EXIT_USAGE = 2;
/**
 * The operator views (status, trace): every signature verifies but the timestamp has expired, so hosts
 * activate nothing new; the last verified state was shown, marked stale. Distinct from 0 (scripts must
 * not mistake a frozen fleet for a healthy one) and from 1 (the state shown is still verified).
 */
export const EXIT_STALE = 3;

export interface Command {
  /** e.g. "publish" or "trust rotate" */
  name: string;
  summary: string;
  /** Full help text printed by `nixfleet <name> --help`. */
  help: string;
  run(argv: string[], context?: CommandContext): Promise<number>;
}

/** Where a command's output goes: the process's streams, or a view server's reply (cli/view-server.ts). */
export interface CommandIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

export const processIo: CommandIo = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
};

/**
 * What a command may be given besides its argv. Only the operator views (status, trace) read more than
 * `io`: a view server runs them with its verified stores kept open across looks (`openStore`, in place
 * of read-side's openVerifiedAckStore).
 */
export interface CommandContext {
  io: CommandIo;
  openStore?: (dir: string | null, name: string) => VerifiedAckStore;
  /** Runs the registered command `name` as the dispatcher does (cli/main.ts), with this context. */
  runCommand?: (name: string, argv: string[], context: CommandContext) => Promise<number>;
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** node:util parseArgs with usage errors turned into UsageError (exit 2). */
export function parseCommandArgs<O extends Options>(
  argv: string[],
  options: O,
  allowPositionals = false,
) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** Prints a result as JSON (for scripts) or as human text. */
export function output(
  json: boolean,
  value: unknown,
  human: () => string,
  io: CommandIo = processIo,
): void {
  if (json) io.stdout(JSON.stringify(value, null, 2) + '\n');
  else io.stdout(human().replace(/\n?$/, '\n'));
}

/**
 * An instant given on the command line (--now, --from, --until, --reject-before): ISO 8601 with a date,
 * a time and a zone (2026-01-01T00:00:00Z, 2026-01-01T01:00:00+01:00). A time without a zone would mean
 * a different instant on every operator's machine, so it is refused.
 */
export function parseTimeOption(flag: string, text: string): number {
  const ms = Date.parse(text);
  if (
    !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(text) ||
    Number.isNaN(ms)
  ) {
    throw new UsageError(
      `${flag}: not an ISO 8601 time with a zone (e.g. 2026-01-01T00:00:00Z): ${text}`,
    );
  }
  return ms;
}

/** `--now`: the given instant, or the clock. */
export function parseNow(text: string | undefined): number {
  return text === undefined ? Date.now() : parseTimeOption('--now', text);
}

/** An optional seconds option such as --clock-skew. */
export function secondsOption(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^[0-9]{1,6}$/.test(text))
    throw new UsageError(`${flag}: expected seconds, got ${JSON.stringify(text)}`);
  return Number(text);
}

/** A file-system error on a path an option named: a usage/I-O error (exit 2) naming both. */
export function optionIoError(flag: string, path: string, e: unknown): Error {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new UsageError(`${flag} ${path}: no such file or directory`);
  if (code === 'ENOTDIR')
    return new UsageError(`${flag} ${path}: a path component is not a directory`);
  if (code === 'EACCES' || code === 'EPERM')
    return new UsageError(`${flag} ${path}: permission denied`);
  if (typeof code === 'string') return new UsageError(`${flag} ${path}: ${(e as Error).message}`);
  return e as Error;
}

/** A directory an option names (--tree): must exist and be a directory, else exit 2 naming both. */
export function directoryOption(flag: string, path: string): string {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (e) {
    throw optionIoError(flag, path, e);
  }
  if (!isDir) throw new UsageError(`${flag} ${path}: not a directory`);
  return path;
}

/** A regular file an option names (--acks-log): must exist, else exit 2 naming both. */
export function fileOption(flag: string, path: string): string {
  let isFile: boolean;
  try {
    isFile = statSync(path).isFile();
  } catch (e) {
    throw optionIoError(flag, path, e);
  }
  if (!isFile) throw new UsageError(`${flag} ${path}: not a regular file`);
  return path;
}

/** The one way a command reports a verification refusal: `{ok:false,error}` for --json, a line otherwise. */
export function printRefused(
  cmd: string,
  e: VerificationError,
  json: boolean,
  io: CommandIo = processIo,
): void {
  if (json) output(true, { ok: false, error: e.toJSON() }, () => '', io);
  else io.stderr(`nixfleet ${cmd}: REFUSED: ${e.code}: ${e.file}: ${e.detail}\n`);
}
