// Host keys the previous release already carried. Checking that a host key is a curve point costs ~75 us
// (a point decompression: protocol/ed25519.ts isValidPublicKey), 0.75 s for 10,000 hosts, and a CI
// publisher is a fresh process every time. A key that the tree's current release signed into a channel
// plan was checked by the publisher that signed it, and being a curve point is a property of the bytes:
// such a key need not be decoded again. New or changed keys are still checked in full.
// The previous release is trusted only as far as it verifies: timestamp signed by a release key of the
// current trust root, index bound by the timestamp, each plan bound by the index and signed. Anything
// short of that (no tree yet, a rotated-out key, a torn or tampered file) vouches for nothing, and every
// key is checked: this is an optimisation, never a reason to refuse a publish.
// The documents read for this (index, plans, and the budgets beside them) are the ones the publish
// diffs the new release against: they are handed on, so a publish reads and parses them once
// (~0.2 s of a fresh 10,000-host publish).
// Their per-host parts are taken in without their schema patterns (verifyReleaseIndexHead: index host
// entries not at all; readChannelPlanHead and readBudgetsHead: plan host entries, wave and budget host
// lists by JSON type only), ~0.2 s of zod for 10,000 hosts. Safe because every byte of them is still strict JSON, is covered by a release
// signature of the current trust root and bound by digest from the timestamp (only a release key
// holder, i.e. this publisher, could have written them, from typed values), and of those parts the
// publisher uses only plan host keys, which noteValidHostKeys takes only in their one canonical form
// (so never as anything but 32 bytes), and targets, which the diff compares and prints as text.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  readBudgetsHead,
  readChannelPlanHead,
  readTimestamp,
  requireFileRef,
  verifyReleaseDocument,
  requireFleet,
  verifyReleaseIndexHead,
  verifyReleaseSigned,
  TIMESTAMP_PATH,
  type ChannelPlan,
  type FileRef,
  type SignedDocument,
  type TrustRoot,
} from '../protocol/index.ts';
import type { ReleaseDocuments } from './diff.ts';

export interface VouchedKeys {
  /** Raw host keys (base64 of 32 bytes) the current release signed into its channel plans. */
  keys: Set<string>;
  /** The release they come from, or why none could be used. */
  from: { releaseVersion: number } | { none: string };
  /**
   * That release's documents, verified, with the index reference of the timestamp that named it (a
   * publish reuses them only while the tree's timestamp still names that index). Absent with `none`.
   */
  release?: { index: FileRef; documents: ReleaseDocuments };
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
    // Without the schema of its 10,000 host entries, which nothing here reads (~0.1 s; why that is
    // safe: verifyReleaseIndexHead).
    const index = verifyReleaseIndexHead(
      readFileSync(join(treeDir, ts.release.index.path)),
      ts,
      root,
    ).signed;
    // A document the index binds: exact bytes, release signature, this fleet and release.
    const boundDocument = <T extends { fleet: string; releaseVersion: number; issuedAt: string }>(
      ref: FileRef,
      read: (bytes: Uint8Array, file: string) => SignedDocument<T>,
    ): T => {
      const bytes = readFileSync(join(treeDir, ref.path));
      requireFileRef(bytes, ref, ref.path, ts.release.index.path);
      return verifyReleaseDocument(read(bytes, ref.path), root, ref.path, index.version, bytes);
    };
    const plans = new Map<string, ChannelPlan>();
    for (const [name, channel] of Object.entries(index.channels)) {
      const plan = boundDocument(channel.plan, readChannelPlanHead);
      for (const h of Object.values(plan.hosts)) keys.add(h.hostKey);
      plans.set(name, plan);
    }
    const budgets = boundDocument(index.budgets, readBudgetsHead);
    return {
      keys,
      from: { releaseVersion: index.version },
      release: { index: ts.release.index, documents: { index, plans, budgets } },
    };
  } catch (e) {
    keys.clear();
    return { keys, from: { none: (e as Error).message } };
  }
}
