// Shared setup for publisher tests: a temp dir, a trust root (v1) with one release key, written as
// `nixfleet trust init` would (trust/root/1.json), and a small fleet.
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { signingKeyFromSeed, type SigningKey } from '../../protocol/keys.ts';
import { createRoot, signRoot, type SignedRoot } from '../../protocol/trust-root.ts';
import { envelopeBytes } from '../../protocol/envelope.ts';
import { writeFileAtomic } from '../../protocol/atomic-write.ts';
import { isoTime } from '../../protocol/schemas/common.ts';
import { publishRelease, type PublishResult } from '../../publisher/publish.ts';

export const T0 = Date.parse('2026-01-01T00:00:00Z');

export function keyFromLabel(label: string): SigningKey {
  return signingKeyFromSeed(
    label,
    new Uint8Array(createHash('sha256').update(`test-key/${label}`).digest()),
  );
}

export interface TrustSetup {
  dir: string;
  trustDir: string;
  treeDir: string;
  rootKey: SigningKey;
  releaseKey: SigningKey;
  root: SignedRoot;
  cleanup: () => void;
}

export function setupTrust(
  fleet = 'generated',
  opts: {
    releaseValidFrom?: number;
    releaseValidUntil?: number;
    releaseThreshold?: number;
    extraReleaseKeys?: SigningKey[];
    cacheKeys?: string[];
  } = {},
): TrustSetup {
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-pub-'));
  const trustDir = join(dir, 'trust');
  const treeDir = join(dir, 'tree');
  mkdirSync(join(trustDir, 'root'), { recursive: true });
  const rootKey = keyFromLabel('root');
  const releaseKey = keyFromLabel('release');
  const grant = (key: SigningKey) => ({
    key,
    validFrom: isoTime(opts.releaseValidFrom ?? T0 - 86_400_000),
    validUntil: isoTime(opts.releaseValidUntil ?? T0 + 365 * 86_400_000),
  });
  const root = signRoot(
    createRoot({
      fleet,
      version: 1,
      issuedAt: isoTime(T0 - 86_400_000),
      expires: isoTime(T0 + 2 * 365 * 86_400_000),
      rootKeys: [rootKey],
      rootThreshold: 1,
      releaseKeys: [grant(releaseKey), ...(opts.extraReleaseKeys ?? []).map(grant)],
      releaseThreshold: opts.releaseThreshold ?? 1,
      cacheKeys: opts.cacheKeys ?? [],
    }),
    [rootKey],
  );
  writeFileAtomic(join(trustDir, 'root', '1.json'), envelopeBytes(root));
  return {
    dir,
    trustDir,
    treeDir,
    rootKey,
    releaseKey,
    root,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Publishes `fleet` into the set-up's tree with its release key, the cache check skipped, at `now`. */
export function publishInto(s: TrustSetup, fleet: unknown, now = T0): PublishResult {
  return publishRelease({
    cacheCheck: 'skip',
    treeDir: s.treeDir,
    fleet,
    releaseKeys: [s.releaseKey],
    trustDir: s.trustDir,
    now,
  });
}
