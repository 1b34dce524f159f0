// The agent's one state directory. Every file is written atomically (temp + fsync + rename) and read
// through strict JSON + a zod schema, so a corrupted or hand-edited file is refused with its name and
// field rather than half-trusted.
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { z } from 'zod';
import { writeFileAtomic, parseStrictJson, parseWith } from '../protocol/index.ts';

/** Local state files are small; anything bigger is corruption, not data. */
const STATE_FILE_LIMIT = 4 * 1024 * 1024;

export class StateDir {
  constructor(readonly root: string) {
    mkdirSync(root, { recursive: true, mode: 0o700 });
  }

  path(name: string): string {
    return join(this.root, name);
  }

  /**
   * Returns undefined when the file does not exist; throws LocalStateError (`damaged`) naming the file
   * when it cannot be read or is invalid (the parse error, with the field, is in the message).
   */
  read<S extends z.ZodType>(
    name: string,
    schema: S,
    maxBytes = STATE_FILE_LIMIT,
  ): z.infer<S> | undefined {
    const file = this.path(name);
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new LocalStateError(file, 'damaged', (e as Error).message);
    }
    try {
      return parseWith(schema, parseStrictJson(bytes, { file, maxBytes }), file);
    } catch (e) {
      throw new LocalStateError(file, 'damaged', (e as Error).message);
    }
  }

  write<S extends z.ZodType>(name: string, schema: S, value: z.infer<S>): void {
    // Validate on the way out too: a bug must never persist a file the next run would refuse.
    const checked = schema.parse(value);
    localWrite(this.path(name), () =>
      writeFileAtomic(this.path(name), JSON.stringify(checked, null, 2) + '\n', { mode: 0o600 }),
    );
  }

  /**
   * Atomic (rename) but not durable: for files whose loss after a power cut only costs a little
   * repeated work (caches, the ack endpoint's confirmed seq). Spares the fsyncs a steady-state cycle
   * would otherwise pay on every poll.
   */
  writeVolatile<S extends z.ZodType>(name: string, schema: S, value: z.infer<S>): void {
    const checked = schema.parse(value);
    localWrite(this.path(name), () =>
      writeVolatileFile(this.path(name), JSON.stringify(checked) + '\n'),
    );
  }

  remove(name: string): void {
    rmSync(this.path(name), { force: true });
  }
}

/**
 * A file of the agent's own state directory is damaged (unreadable, not valid) or cannot be written
 * (disk full, read-only): a local problem, never "the served tree was refused" and never "control plane
 * unreachable", and not worth a retry. `nixfleet agent` exits 4 with this message.
 */
export class LocalStateError extends Error {
  constructor(
    readonly file: string,
    readonly problem: 'damaged' | 'unwritable',
    readonly detail: string,
  ) {
    super(
      problem === 'damaged'
        ? `local state file ${file} is damaged: ${detail}; check the disk, then restore ` +
            `the file or move it aside (a missing file means empty state; for ` +
            `trust-state.json: start again from the pinned root)`
        : `cannot write local state file ${file}: ${detail}; free space on (or fix) that file system; the agent keeps the current generation meanwhile`,
    );
    this.name = 'LocalStateError';
  }
}

export function isLocalStateError(e: unknown): e is LocalStateError {
  return e instanceof LocalStateError;
}

/** Runs a write of `file`; a failing file system comes out as LocalStateError naming it. */
export function localWrite<T>(file: string, write: () => T): T {
  try {
    return write();
  } catch (e) {
    if (e instanceof LocalStateError || !(e as NodeJS.ErrnoException).code) throw e;
    throw new LocalStateError(file, 'unwritable', (e as Error).message);
  }
}

export function writeVolatileFile(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    writeFileSync(tmp, data, { mode: 0o600 });
    renameSync(tmp, path);
  } catch (e) {
    // A full disk must not also keep the partial temp file.
    rmSync(tmp, { force: true });
    throw e;
  }
}
