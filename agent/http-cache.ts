// ETag cache for conditional GETs: per tree path, the last body and its ETag. The body is stored with
// its SHA-256 so a damaged cache entry is treated as missing (refetched), never served to the verifier
// as if the server had sent it. Entries are only a bandwidth optimisation: everything is verified anyway.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { localWrite, writeVolatileFile } from './state-dir.ts';
import { sha256Hex } from '../protocol/index.ts';

const Meta = z.strictObject({
  path: z.string(),
  etag: z.string().max(512),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  length: z.number().int().min(0),
});

export interface CachedBody {
  etag: string;
  body: Uint8Array;
}

export class HttpCache {
  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  private base(path: string): string {
    return join(this.dir, sha256Hex(path).slice(0, 32));
  }

  get(path: string): CachedBody | undefined {
    try {
      const meta = Meta.parse(JSON.parse(readFileSync(this.base(path) + '.meta', 'utf8')));
      if (meta.path !== path) return undefined;
      const body = readFileSync(this.base(path) + '.body');
      if (body.length !== meta.length || sha256Hex(body) !== meta.sha256) return undefined;
      return { etag: meta.etag, body: new Uint8Array(body) };
    } catch {
      return undefined;
    }
  }

  put(path: string, etag: string, body: Uint8Array): void {
    // Body first, then the meta that vouches for it: a crash in between leaves a mismatch, i.e. a miss.
    // No fsync: a cache entry lost or torn by a power cut is a miss, never a wrong answer.
    localWrite(this.base(path) + '.body', () => writeVolatileFile(this.base(path) + '.body', body));
    localWrite(this.base(path) + '.meta', () =>
      writeVolatileFile(
        this.base(path) + '.meta',
        JSON.stringify({ path, etag, sha256: sha256Hex(body), length: body.length }),
      ),
    );
  }
}
