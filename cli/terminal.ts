// What a command writes reaches a terminal, and some of it came from outside: an unknown key of an
// unsigned timestamp.json, a host-signed ack's `reason`, a file name in a tree. Such text must never
// drive the operator's terminal (retitle it, clear it, move the cursor, hide text with bidi overrides).
// The guard sits at the sink, so no output path can forget it: while a command runs, every string it
// writes to stdout or stderr has its control characters replaced by visible `\uXXXX` escapes. The same
// escape is valid inside a JSON string, so `--json` output stays parseable and means the same.
// Newline and tab pass through; the publisher's own progress redraw uses `writeControl`.

/** C0 except \t and \n, DEL, C1 (U+0080-U+009F: 8-bit CSI/OSC), and the Unicode bidi controls. */
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

export function neutralize(text: string): string {
  return text.replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

type Write = typeof process.stdout.write;
let unguarded: { stdout: Write; stderr: Write } | undefined;

/** Runs `fn` with both output streams guarded; restores them afterwards, even when it throws. */
export async function withTerminalGuard<T>(fn: () => Promise<T>): Promise<T> {
  if (unguarded) return fn(); // nested (a command running another): already guarded
  const originals = { stdout: process.stdout.write, stderr: process.stderr.write };
  const guard = (stream: NodeJS.WriteStream, write: Write): Write =>
    ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
      return (write as (c: string, ...r: unknown[]) => boolean).call(
        stream,
        neutralize(text),
        ...rest,
      );
    }) as Write;
  unguarded = originals;
  process.stdout.write = guard(process.stdout, originals.stdout);
  process.stderr.write = guard(process.stderr, originals.stderr);
  try {
    return await fn();
  } finally {
    process.stdout.write = originals.stdout;
    process.stderr.write = originals.stderr;
    unguarded = undefined;
  }
}

/** Writes a control sequence of our own (never text from outside) past the guard. */
export function writeControl(stream: 'stdout' | 'stderr', sequence: string): void {
  const write = unguarded?.[stream] ?? process[stream].write;
  (write as (c: string) => boolean).call(process[stream], sequence);
}

/**
 * `nixfleet verify --json | head -c 50`: the reader went away. Writing on is pointless and Node would
 * die with an unhandled EPIPE stack trace; end quietly with the exit code the command had so far.
 */
export function endQuietlyWhenOutputCloses(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') throw e;
      process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
    });
  }
}
