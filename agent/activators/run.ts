// The one way activators run a command: an argv array through execFile (never a shell), bounded in
// time (SIGKILL, so a hung child cannot outlive its bound) and in output, the result as plain data.
import { execFile } from 'node:child_process';

export interface RunResult {
  /** Exit code; null when a signal ended it or it could not be started (see `stderr`). */
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface RunOptions {
  timeoutMs: number;
  /** The whole environment of the child; omitted = the agent's own. */
  env?: NodeJS.ProcessEnv;
  /** Bound on buffered stdout/stderr each; a child that prints more is killed. */
  maxBuffer?: number;
}

/** Runs argv and resolves with what happened; it never rejects (a start failure is code null). */
export function runArgv(argv: readonly string[], opts: RunOptions): Promise<RunResult> {
  const [cmd, ...args] = argv as [string, ...string[]];
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      {
        timeout: opts.timeoutMs,
        maxBuffer: opts.maxBuffer ?? 1024 * 1024,
        killSignal: 'SIGKILL',
        encoding: 'utf8',
        ...(opts.env ? { env: opts.env } : {}),
      },
      (err, stdout, stderr) => {
        const e = err as (NodeJS.ErrnoException & { killed?: boolean; signal?: string }) | null;
        const code = e === null ? 0 : typeof e.code === 'number' ? e.code : null;
        resolve({
          code,
          signal: e?.signal ?? null,
          stdout,
          // A string code (ENOENT, EACCES, ERR_CHILD_PROCESS_STDIO_MAXBUFFER) is Node's, not the child's.
          stderr: e && typeof e.code === 'string' ? `${e.message}\n${stderr}` : stderr,
          // Killed by execFile itself (`killed`) and not for too much output (a string code): the bound.
          timedOut: !!e?.killed && typeof e.code !== 'string',
        });
      },
    );
  });
}

/** Why a run failed, for an error message: "timed out after N ms" or "exited with <code|signal>". */
export function failureReason(r: RunResult, timeoutMs: number): string {
  if (r.timedOut) return `timed out after ${timeoutMs} ms`;
  return `exited with ${r.code ?? r.signal ?? 'an error'}`;
}
