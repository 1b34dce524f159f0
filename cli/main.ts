// `nixfleet` entry point: dispatches to one module per subcommand (listed in ./commands.ts).
import { COMMANDS, type CommandEntry } from './commands.ts';
import {
  EXIT_OK,
  EXIT_USAGE,
  UsageError,
  processIo,
  type Command,
  type CommandContext,
} from './command.ts';
import { isVerificationError } from '../protocol/index.ts';
import { withTerminalGuard } from './terminal.ts';

export { endQuietlyWhenOutputCloses } from './terminal.ts';

function topHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'nixfleet: signed GitOps for fleets of NixOS hosts',
    '',
    'Usage: nixfleet <command> [options]    (nixfleet <command> --help for details)',
    '',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Exit codes: 0 ok, 1 refused / verification failed, 2 usage or I/O error, 3 status/trace shown but stale, 4 agent: damaged local state.',
  ].join('\n');
}

function findCommand(argv: string[]): { entry: CommandEntry; rest: string[] } | undefined {
  // Longest match first, so "trust rotate" wins over a hypothetical "trust".
  const sorted = [...COMMANDS].sort((a, b) => b.name.split(' ').length - a.name.split(' ').length);
  for (const cmd of sorted) {
    const words = cmd.name.split(' ');
    if (words.every((w, i) => argv[i] === w)) return { entry: cmd, rest: argv.slice(words.length) };
  }
  return undefined;
}

/** Runs one command; everything it prints passes the terminal guard (cli/terminal.ts). */
export function main(argv: string[]): Promise<number> {
  return withTerminalGuard(() => dispatch(argv));
}

async function dispatch(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    process.stdout.write(topHelp() + '\n');
    return argv.length === 0 ? EXIT_USAGE : EXIT_OK;
  }
  const found = findCommand(argv);
  if (!found) {
    const group = COMMANDS.filter((c) => c.name.startsWith(argv[0] + ' '));
    if (group.length) {
      process.stderr.write(
        `nixfleet ${argv[0]}: expected one of: ${group.map((c) => c.name.split(' ').slice(1).join(' ')).join(', ')}\n`,
      );
    } else {
      process.stderr.write(`nixfleet: unknown command '${argv[0]}'\n\n${topHelp()}\n`);
    }
    return EXIT_USAGE;
  }
  const { entry, rest } = found;
  const cmd = (await entry.load()).default;
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`nixfleet ${cmd.name}: ${cmd.summary}\n\n${cmd.help.trim()}\n`);
    return EXIT_OK;
  }
  return runCommand(cmd, rest);
}

/**
 * Runs one command and turns what it throws into the exit codes of cli/command.ts and a message on its
 * stderr. A command that runs others (the view server: cli/view-server.ts) gets `runCommand`, this
 * function over the registry, in its context: it need not import the dispatcher (which would put the
 * dispatcher's modules in chunks shared with its own heavy ones, loaded at every start).
 */
async function runCommand(
  cmd: Command,
  argv: string[],
  context: CommandContext = { io: processIo, runCommand: runNamed },
): Promise<number> {
  const { io } = context;
  try {
    return await cmd.run(argv, context);
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr(`nixfleet ${cmd.name}: ${e.message}\n(see: nixfleet ${cmd.name} --help)\n`);
      return EXIT_USAGE;
    }
    if (isVerificationError(e)) {
      io.stderr(`nixfleet ${cmd.name}: refused: ${e.message}\n`);
      return 1;
    }
    io.stderr(`nixfleet ${cmd.name}: error: ${(e as Error).message}\n`);
    if (process.env.NIXFLEET_DEBUG) io.stderr(`${(e as Error).stack}\n`);
    return EXIT_USAGE;
  }
}

/** The command named `name` (as registered) run with `context`, as runCommand runs any. */
async function runNamed(name: string, argv: string[], context: CommandContext): Promise<number> {
  const entry = COMMANDS.find((c) => c.name === name);
  if (entry === undefined) throw new Error(`no command ${name}`);
  return runCommand((await entry.load()).default, argv, { runCommand: runNamed, ...context });
}
