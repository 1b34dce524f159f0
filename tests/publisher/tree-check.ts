// Independent check of a published tree for the publisher's own tests (the project-wide verifier lives in
// protocol/verify/): from timestamp.json, every bound file exists, matches digest and length, parses
// with its schema, and carries a valid signature by the release key.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { sha256Digest } from '../../protocol/canonical.ts';
import { readEnvelope } from '../../protocol/document.ts';
import { verifyEnvelope } from '../../protocol/envelope.ts';
import { publicPart, type SigningKey } from '../../protocol/keys.ts';
import type { FileRef } from '../../protocol/schemas/common.ts';
import {
  ChannelPlan,
  DisruptionBudgets,
  HostManifest,
  ReleaseIndex,
} from '../../protocol/schemas/release.ts';
import { Revocations } from '../../protocol/schemas/revocations.ts';
import { Timestamp } from '../../protocol/schemas/timestamp.ts';
import type { z } from 'zod';

export function checkTree(
  treeDir: string,
  releaseKey: SigningKey,
): { version: number; index: z.infer<typeof ReleaseIndex>; timestamp: z.infer<typeof Timestamp> } {
  const keys = new Map([[releaseKey.keyid, publicPart(releaseKey)]]);
  const read = <S extends z.ZodType>(ref: FileRef | { path: string }, schema: S, type: string) => {
    const bytes = readFileSync(join(treeDir, ref.path));
    if ('digest' in ref) {
      if (bytes.length !== ref.length)
        throw new Error(`${ref.path}: length ${bytes.length} != ${ref.length}`);
      if (sha256Digest(bytes) !== ref.digest) throw new Error(`${ref.path}: digest mismatch`);
    }
    const env = readEnvelope(bytes, schema, {
      file: ref.path,
      maxBytes: 64 * 1024 * 1024,
      expectType: type,
    });
    verifyEnvelope(env, { file: ref.path, keys, threshold: 1, role: 'release' });
    return env.signed as z.infer<S>;
  };
  const ts = read({ path: 'timestamp.json' }, Timestamp, 'timestamp');
  const index = read(ts.release.index, ReleaseIndex, 'release');
  if (index.version !== ts.release.version)
    throw new Error('index version != timestamp release version');
  const revocations = read(ts.revocations.file, Revocations, 'revocations');
  if (revocations.version !== ts.revocations.version)
    throw new Error('revocations version mismatch');
  read(index.budgets, DisruptionBudgets, 'disruption-budgets');
  for (const [name, c] of Object.entries(index.channels)) {
    const plan = read(c.plan, ChannelPlan, 'channel-plan');
    if (
      plan.channel !== name ||
      plan.rolloutId !== c.rolloutId ||
      plan.releaseVersion !== index.version
    )
      throw new Error(`plan ${name} binding mismatch`);
  }
  for (const [name, h] of Object.entries(index.hosts)) {
    const m = read(h.manifest, HostManifest, 'host-manifest');
    if (m.host !== name || m.releaseVersion !== index.version || m.channel !== h.channel)
      throw new Error(`manifest ${name} binding mismatch`);
  }
  return { version: index.version, index, timestamp: ts };
}

/** Every regular file under dir (relative path -> bytes), skipping the publisher's lock. */
export function snapshotFiles(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const full = join(d, name);
      if (statSync(full).isDirectory()) walk(full);
      else if (name !== '.publish.lock') out.set(relative(dir, full), readFileSync(full));
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}
