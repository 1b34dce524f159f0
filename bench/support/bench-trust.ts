// The deterministic trust set-up every tree-publishing benchmark starts from: one root key, one release
// key valid for a year around `now`, a 1-of-1 root.
import { createHash } from 'node:crypto';
import { signingKeyFromSeed, type SigningKey } from '../../protocol/keys.ts';
import { createRoot, signRoot, type SignedRoot } from '../../protocol/trust-root.ts';
import { isoTime } from '../../protocol/schemas/common.ts';

const DAY = 86_400_000;

export const benchKey = (label: string): SigningKey =>
  signingKeyFromSeed(label, new Uint8Array(createHash('sha256').update(`bench/${label}`).digest()));

export function benchTrust(now: number): {
  rootKey: SigningKey;
  releaseKey: SigningKey;
  root: SignedRoot;
} {
  const rootKey = benchKey('root');
  const releaseKey = benchKey('release');
  const root = signRoot(
    createRoot({
      fleet: 'generated',
      version: 1,
      issuedAt: isoTime(now - DAY),
      expires: isoTime(now + 365 * DAY),
      rootKeys: [rootKey],
      rootThreshold: 1,
      releaseKeys: [
        { key: releaseKey, validFrom: isoTime(now - DAY), validUntil: isoTime(now + 365 * DAY) },
      ],
      releaseThreshold: 1,
      cacheKeys: [],
      rejectBefore: null,
    }),
    [rootKey],
  );
  return { rootKey, releaseKey, root };
}
