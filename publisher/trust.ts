// The publisher's view of the trust root: the chain as `nixfleet trust init/rotate` wrote it (root/<n>.json
// in the trust directory), verified from version 1, and the check that the release keys we were handed
// are the ones the newest root allows at `now`. Publishing with a key the agents will refuse would only
// produce a tree that every host ignores.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  readRoot,
  verifyRootChain,
  releaseKeysValidAt,
  type SignedRoot,
  envelopeBytes,
  rootPath,
  b64,
  type SigningKey,
  parseIsoTime,
} from '../protocol/index.ts';
import { PublishRefused } from './errors.ts';

export interface TrustChain {
  /** Newest root, verified. */
  root: SignedRoot;
  /** Versions 1..n, each with the exact bytes to copy into the tree. */
  chain: { version: number; bytes: Buffer; root: SignedRoot }[];
}

function rootVersionsIn(dir: string): number[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((f) => /^([1-9][0-9]*)\.json$/.exec(f)?.[1])
    .filter((v): v is string => v !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
}

/** Reads <dir>/root/<n>.json (or <dir>/<n>.json when <dir> has no root/ folder). */
export function loadTrustDir(trustDir: string, now: number): TrustChain {
  const rootDir = existsSync(join(trustDir, 'root')) ? join(trustDir, 'root') : trustDir;
  const versions = rootVersionsIn(rootDir);
  if (versions.length === 0)
    throw new PublishRefused(
      `${trustDir}: no trust root found (expected root/1.json; create one with: nixfleet trust init)`,
    );
  const bytes = new Map(versions.map((v) => [v, readFileSync(join(rootDir, `${v}.json`))]));
  return loadTrustChain(
    versions.map((v) => bytes.get(v)!),
    now,
  );
}

/** Verifies root 1..n given as envelope bytes or parsed envelopes (in any order). */
export function loadTrustChain(
  roots: readonly (Uint8Array | SignedRoot)[],
  now: number,
): TrustChain {
  const parsed = roots.map((r) => {
    if (r instanceof Uint8Array) {
      const env = readRoot(r, 'trust root');
      return {
        version: env.signed.version,
        root: readRoot(r, rootPath(env.signed.version)),
        bytes: Buffer.from(r),
      };
    }
    return { version: r.signed.version, root: r, bytes: envelopeBytes(r) };
  });
  parsed.sort((a, b) => a.version - b.version);
  parsed.forEach((p, i) => {
    if (p.version !== i + 1)
      throw new PublishRefused(
        `trust root chain must be versions 1..n without gaps; found version ${p.version} at position ${i + 1}`,
      );
  });
  const first = parsed[0];
  if (!first) throw new PublishRefused('no trust root given');
  const byVersion = new Map(parsed.map((p) => [p.version, p.bytes]));
  const { root } = verifyRootChain(first.root, (v) => byVersion.get(v), now);
  return { root, chain: parsed };
}

/** Refuses unless every key is a release key of `root` valid at `now`, and together they meet the threshold. */
export function checkReleaseKeys(root: SignedRoot, keys: readonly SigningKey[], now: number): void {
  const r = root.signed;
  if (keys.length === 0) throw new PublishRefused('no release key given (--release-key FILE)');
  if (r.rejectBefore !== null && now < parseIsoTime(r.rejectBefore)) {
    throw new PublishRefused(
      `the trust root v${r.version} rejects documents issued before ${r.rejectBefore}; the publish time is earlier`,
    );
  }
  const valid = releaseKeysValidAt(r, now);
  for (const k of keys) {
    const listed = r.releaseKeys.find((x) => x.keyid === k.keyid);
    if (!listed)
      throw new PublishRefused(
        `release key "${k.name}" (${k.keyid.slice(0, 16)}) is not listed in trust root v${r.version}`,
      );
    if (listed.publicKey !== b64(k.publicKey))
      throw new PublishRefused(
        `release key "${k.name}": public key differs from trust root v${r.version}`,
      );
    if (!valid.has(k.keyid)) {
      throw new PublishRefused(
        `release key "${k.name}" (${k.keyid.slice(0, 16)}) is valid from ${listed.validFrom} until ${listed.validUntil}, not at ${new Date(now).toISOString()}`,
      );
    }
  }
  const distinct = new Set(keys.map((k) => k.keyid)).size;
  if (distinct < r.releaseThreshold)
    throw new PublishRefused(
      `trust root v${r.version} needs ${r.releaseThreshold} release keys, ${distinct} given`,
    );
}
