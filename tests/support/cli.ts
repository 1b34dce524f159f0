// Runs `nixfleet` commands in-process (fast: no process start), capturing what they write.
import { main } from '../../cli/main.ts';

export interface CapturedRun {
  code: number;
  out: string;
  err: string;
}

/** Runs `fn` with stdout and stderr captured; restores both even when it throws. */
export async function captureOutput(fn: () => Promise<number>): Promise<CapturedRun> {
  let out = '';
  let err = '';
  const stdout = process.stdout.write.bind(process.stdout);
  const stderr = process.stderr.write.bind(process.stderr);
  const text = (c: string | Uint8Array) => (typeof c === 'string' ? c : Buffer.from(c).toString());
  process.stdout.write = ((c: string | Uint8Array) => (
    (out += text(c)),
    true
  )) as typeof process.stdout.write;
  process.stderr.write = ((c: string | Uint8Array) => (
    (err += text(c)),
    true
  )) as typeof process.stderr.write;
  try {
    return { code: await fn(), out, err };
  } finally {
    process.stdout.write = stdout;
    process.stderr.write = stderr;
  }
}

/** `nixfleet ARGV`, in-process, through the same dispatcher as the binary. */
export function runCli(...argv: string[]): Promise<CapturedRun> {
  return captureOutput(() => main(argv));
}
