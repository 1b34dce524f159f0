// End-to-end test helper: child processes of `node bin/nixfleet.js ...` (agents, the ack endpoint) with
// their output in a file, stopped by PID (SIGTERM, then SIGKILL), and killed with SIGKILL at process
// exit if a failing test never reached its cleanup.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = fileURLToPath(new URL('../../bin/nixfleet.js', import.meta.url));

const alive = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of alive)
    if (c.pid)
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
});

export interface CliProcess {
  pid: number;
  /** The file stdout and stderr go to. */
  logFile: string;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  running(): boolean;
  output(): string;
  /** SIGTERM, SIGKILL after graceMs; resolves once the process is gone. */
  stop(graceMs?: number): Promise<void>;
  /** kill -9, no grace. */
  kill9(): Promise<void>;
}

/**
 * How a process is started besides its own argv: `wrap` is an argv prefix that must end by exec'ing the
 * rest (e.g. `unshare -m ... sh -c '...; exec "$@"'`, so the PID stays the command's), `env` replaces the
 * environment.
 */
export interface ProcessWrap {
  wrap: string[];
  env: NodeJS.ProcessEnv;
}

/**
 * Starts `nixfleet ARGS...` with stdout + stderr appended to logFile; with `netns`, inside that network
 * namespace (`ip netns exec` execs node, so the PID is node's); with `wrap`/`env`, as ProcessWrap says;
 * with `cli`, another checkout's bin/nixfleet.js (a benchmark's "before").
 */
export function startCli(
  args: string[],
  logFile: string,
  opts: { netns?: string; cli?: string } & Partial<ProcessWrap> = {},
): CliProcess {
  const fd = openSync(logFile, 'a');
  let child: ChildProcess;
  const argv = [process.execPath, opts.cli ?? CLI, ...args];
  if (opts.netns) argv.unshift('ip', 'netns', 'exec', opts.netns);
  if (opts.wrap) argv.unshift(...opts.wrap);
  try {
    child = spawn(argv[0]!, argv.slice(1), {
      cwd: REPO_ROOT,
      stdio: ['ignore', fd, fd],
      env: { ...(opts.env ?? process.env), FORCE_COLOR: '0' },
    });
  } finally {
    closeSync(fd);
  }
  if (!child.pid) throw new Error(`could not start nixfleet ${args.join(' ')}`);
  alive.add(child);
  let done = false;
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      done = true;
      alive.delete(child);
      resolve(code);
    }),
  );
  const pid = child.pid;
  const signal = (s: NodeJS.Signals) => {
    if (!done)
      try {
        process.kill(pid, s);
      } catch {
        /* exited meanwhile */
      }
  };
  return {
    pid,
    logFile,
    exited,
    running: () => !done,
    output: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
    async stop(graceMs = 2000) {
      if (done) return;
      signal('SIGTERM');
      const timer = setTimeout(() => signal('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
    async kill9() {
      signal('SIGKILL');
      await exited;
    },
  };
}

/** JSON lines of a log file (other lines, e.g. a runtime warning, are skipped). */
export function jsonLines(text: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      /* a line being written right now */
    }
  }
  return out;
}

export async function until<T>(
  what: string,
  ms: number,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  everyMs = 100,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
