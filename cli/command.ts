// The contract every `nixfleet` subcommand module follows, and the shared exit-code conventions:
// 0 = ok, 1 = refused / verification failed, 2 = usage or I/O error.
import { parseArgs, type ParseArgsConfig } from 'node:util';

export const EXIT_OK = 0;
export const EXIT_REFUSED = 1;
export const EXIT_USAGE = 2;

export interface Command {
  /** e.g. "publish" or "trust rotate" */
  name: string;
  summary: string;
  /** Full help text printed by `nixfleet <name> --help`. */
  help: string;
  run(argv: string[]): Promise<number>;
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** node:util parseArgs with usage errors turned into UsageError (exit 2). */
export function parseCommandArgs<O extends Options>(argv: string[], options: O, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** Prints a result as JSON (for scripts) or as human text. */
export function output(json: boolean, value: unknown, human: () => string): void {
  if (json) process.stdout.write(JSON.stringify(value, null, 2) + '\n');
  else process.stdout.write(human().replace(/\n?$/, '\n'));
}
