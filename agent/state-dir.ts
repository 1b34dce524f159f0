// The agent's one state directory. Every file is written atomically (temp + fsync + rename) and read
// through strict JSON + a zod schema, so a corrupted or hand-edited file is refused with its name and
// field rather than half-trusted.
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { z } from 'zod';
import { writeFileAtomic } from '../protocol/atomic-write.ts';
import { parseStrictJson } from '../protocol/strict-json.ts';
import { parseWith } from '../protocol/schemas/parse.ts';

/** Local state files are small; anything bigger is corruption, not data. */
const STATE_FILE_LIMIT = 4 * 1024 * 1024;

export class StateDir {
  constructor(readonly root: string) {
    mkdirSync(root, { recursive: true, mode: 0o700 });
  }

  path(name: string): string {
    return join(this.root, name);
  }

  /** Returns undefined when the file does not exist; throws Malformed naming the file when it is invalid. */
  read<S extends z.ZodType>(name: string, schema: S, maxBytes = STATE_FILE_LIMIT): z.infer<S> | undefined {
    let bytes: Buffer;
    try {
      bytes = readFileSync(this.path(name));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    const file = this.path(name);
    return parseWith(schema, parseStrictJson(bytes, { file, maxBytes }), file);
  }

  write<S extends z.ZodType>(name: string, schema: S, value: z.infer<S>): void {
    // Validate on the way out too: a bug must never persist a file the next run would refuse.
    const checked = schema.parse(value);
    writeFileAtomic(this.path(name), JSON.stringify(checked, null, 2) + '\n', { mode: 0o600 });
  }

  /**
   * Atomic (rename) but not durable: for files whose loss after a power cut only costs a little
   * repeated work (caches, the ack endpoint's confirmed seq). Spares the fsyncs a steady-state cycle
   * would otherwise pay on every poll.
   */
  writeVolatile<S extends z.ZodType>(name: string, schema: S, value: z.infer<S>): void {
    const checked = schema.parse(value);
    writeVolatileFile(this.path(name), JSON.stringify(checked) + '\n');
  }

  remove(name: string): void {
    rmSync(this.path(name), { force: true });
  }
}

export function writeVolatileFile(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, data, { mode: 0o600 });
  renameSync(tmp, path);
}
