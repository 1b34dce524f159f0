// Host keys the previous release already carried. Checking that a host key is a curve point costs ~75 us
// (a point decompression: protocol/ed25519.ts isValidPublicKey), 0.75 s for 10,000 hosts, and a CI
// publisher is a fresh process every time. A key that the tree's current release signed into a channel
// plan was checked by the publisher that signed it, and being a curve point is a property of the bytes:
// such a key need not be decoded again. New or changed keys are still checked in full.
// The previous release is trusted only as far as it verifies: timestamp signed by a release key of the
// current trust root, index bound by the timestamp, each plan bound by the index and signed. Anything
// short of that (no tree yet, a rotated-out key, a torn or tampered file) vouches for nothing, and every
// key is checked: this is an optimisation, never a reason to refuse a publish.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  readChannelPlan,
  readTimestamp,
  requireFileRef,
  verifyReleaseDocument,
  requireFleet,
  verifyReleaseIndex,
  verifyReleaseSigned,
  TIMESTAMP_PATH,
  type TrustRoot,
} from '../protocol/index.ts';

export interface VouchedKeys {
  /** Raw host keys (base64 of 32 bytes) the current release signed into its channel plans. */
  keys: Set<string>;
  /** The release they come from, or why none could be used. */
  from: { releaseVersion: number } | { none: string };
}

/** The host keys of the tree's current release, if it verifies against `root`. Never throws. */
export function vouchedHostKeys(treeDir: string, root: TrustRoot): VouchedKeys {
  const keys = new Set<string>();
  try {
    const tsPath = join(treeDir, TIMESTAMP_PATH);
    if (!existsSync(tsPath)) return { keys, from: { none: 'no release in the tree yet' } };
    const tsEnv = readTimestamp(readFileSync(tsPath), TIMESTAMP_PATH);
    verifyReleaseSigned(tsEnv, root, TIMESTAMP_PATH);
    requireFleet(tsEnv.signed, root, TIMESTAMP_PATH);
    const ts = tsEnv.signed;
    const index = verifyReleaseIndex(
      readFileSync(join(treeDir, ts.release.index.path)),
      ts,
      root,
    ).signed;
    for (const channel of Object.values(index.channels)) {
      const bytes = readFileSync(join(treeDir, channel.plan.path));
      requireFileRef(bytes, channel.plan, channel.plan.path, ts.release.index.path);
      const plan = verifyReleaseDocument(
        readChannelPlan(bytes, channel.plan.path),
        root,
        channel.plan.path,
        index.version,
        bytes,
      );
      for (const h of Object.values(plan.hosts)) keys.add(h.hostKey);
    }
    return { keys, from: { releaseVersion: index.version } };
  } catch (e) {
    keys.clear();
    return { keys, from: { none: (e as Error).message } };
  }
}
