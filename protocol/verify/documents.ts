// Readers for each release-signed document (size cap, strict JSON, schema) and the checks every one of
// them shares: release-key signature, fleet, and the release version it binds.
import { z } from 'zod';
import { readEnvelope } from '../document.ts';
import { FutureDated, MixAndMatch, RollbackAttempt } from '../errors.ts';
import { LIMITS } from '../limits.ts';
import { sha256Digest } from '../canonical.ts';
import {
  Timestamp,
  Revocations,
  ReleaseIndex,
  HostManifest,
  ChannelPlan,
  DisruptionBudgets,
  isoTime,
  parseIsoTime,
  type FileRef,
  type SignedDocument,
  type TrustRoot,
} from '../schemas/index.ts';
import { verifyReleaseSigned } from '../trust-root.ts';

export const readTimestamp = (b: Uint8Array, file: string) =>
  readEnvelope(b, Timestamp, { file, maxBytes: LIMITS.timestamp, expectType: 'timestamp' });
export const readRevocations = (b: Uint8Array, file: string) =>
  readEnvelope(b, Revocations, { file, maxBytes: LIMITS.revocations, expectType: 'revocations' });
export const readReleaseIndex = (b: Uint8Array, file: string) =>
  readEnvelope(b, ReleaseIndex, { file, maxBytes: LIMITS.releaseIndex, expectType: 'release' });
export const readHostManifest = (b: Uint8Array, file: string) =>
  readEnvelope(b, HostManifest, {
    file,
    maxBytes: LIMITS.hostManifest,
    expectType: 'host-manifest',
  });
export const readChannelPlan = (b: Uint8Array, file: string) =>
  readEnvelope(b, ChannelPlan, { file, maxBytes: LIMITS.channelPlan, expectType: 'channel-plan' });
export const readBudgets = (b: Uint8Array, file: string) =>
  readEnvelope(b, DisruptionBudgets, {
    file,
    maxBytes: LIMITS.budgets,
    expectType: 'disruption-budgets',
  });

// ---- Heads: the publisher's previous release, per-host parts without their patterns ---------------
// The publisher reads its tree's current release (index, plans, budgets) for the host keys it vouches
// for and for the diff. Their per-host parts (10,000 names, keys, store paths and references at 10,000
// hosts) cost ~0.2 s of schema in a fresh process; these readers check them for their JSON types only,
// everything else in full, and the documents still go through the same signature and binding checks.
// Why that is safe there: publisher/vouched-keys.ts. Not for anything that relies on the patterns.

/**
 * A release index whose `hosts` entries (~0.1 s of schema) are taken in as strict JSON but not checked
 * at all: for a reader that uses no host entry (verifyReleaseIndexHead).
 */
export type ReleaseIndexHead = Omit<ReleaseIndex, 'hosts'> & { hosts: Record<string, unknown> };
const ReleaseIndexHead = ReleaseIndex.extend({
  hosts: z.custom<Record<string, unknown>>(isObject, 'must be an object'),
});
export const readReleaseIndexHead = (b: Uint8Array, file: string) =>
  readEnvelope(b, ReleaseIndexHead, {
    file,
    maxBytes: LIMITS.releaseIndex,
    expectType: 'release',
  }) as SignedDocument<ReleaseIndexHead>;

/** A channel plan whose `hosts` entries and wave host lists are checked for their JSON types only. */
const ChannelPlanHead = ChannelPlan.extend({
  hosts: z.custom<ChannelPlan['hosts']>(
    (v) => isObject(v) && Object.values(v).every(isPlanHost),
    'must be an object of { target, hostKey, wave } entries',
  ),
  waves: z.array(
    ChannelPlan.shape.waves.element.extend({
      hosts: z.custom<string[]>(isStringList, 'must be a list of host names'),
    }),
  ),
});
function isStringList(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((h) => typeof h === 'string');
}
function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function isPlanHost(v: unknown): boolean {
  return (
    isObject(v) &&
    Object.keys(v).length === 3 &&
    typeof v['target'] === 'string' &&
    typeof v['hostKey'] === 'string' &&
    Number.isSafeInteger(v['wave']) &&
    (v['wave'] as number) >= 0
  );
}
export const readChannelPlanHead = (b: Uint8Array, file: string) =>
  readEnvelope(b, ChannelPlanHead, {
    file,
    maxBytes: LIMITS.channelPlan,
    expectType: 'channel-plan',
  }) as SignedDocument<ChannelPlan>;

/** Disruption budgets whose member lists are checked for their JSON types only. */
const DisruptionBudgetsHead = DisruptionBudgets.extend({
  budgets: z.array(
    DisruptionBudgets.shape.budgets.element.extend({
      hosts: z.custom<string[]>(isStringList, 'must be a list of host names'),
    }),
  ),
});
export const readBudgetsHead = (b: Uint8Array, file: string) =>
  readEnvelope(b, DisruptionBudgetsHead, {
    file,
    maxBytes: LIMITS.budgets,
    expectType: 'disruption-budgets',
  }) as SignedDocument<DisruptionBudgets>;

/** The file's exact bytes must be the ones the referencing document signed for. */
export function requireFileRef(
  bytes: Uint8Array,
  ref: FileRef,
  file: string,
  boundBy: string,
): void {
  if (bytes.byteLength !== ref.length)
    throw new MixAndMatch(file, `is ${bytes.byteLength} bytes but ${boundBy} binds ${ref.length}`);
  const digest = sha256Digest(bytes);
  if (digest !== ref.digest)
    throw new MixAndMatch(file, `digest ${digest} differs from ${ref.digest} bound by ${boundBy}`);
}

/**
 * A versioned document the timestamp binds (controls, enrolment nonces): exact bytes, the version the
 * timestamp names, and never older than a version this client has already seen.
 */
export function requireBoundVersion(
  bytes: Uint8Array,
  doc: { version: number },
  ref: { version: number; file: FileRef },
  highestSeen: number,
  file: string,
  boundBy: string,
): void {
  requireFileRef(bytes, ref.file, file, boundBy);
  if (doc.version !== ref.version)
    throw new MixAndMatch(file, `is version ${doc.version}, the timestamp names v${ref.version}`);
  if (doc.version < highestSeen)
    throw new RollbackAttempt(
      file,
      `is version ${doc.version}, but v${highestSeen} was already seen`,
    );
}

export function requireFleet(doc: { fleet: string }, root: TrustRoot, file: string): void {
  if (doc.fleet !== root.fleet)
    throw new MixAndMatch(
      file,
      `belongs to fleet "${doc.fleet}", the trust root is for "${root.fleet}"`,
    );
}

/**
 * A signed document dated more than the clock skew after `now` is refused (FutureDated): whatever is
 * counted from its date (a timestamp's freshness, a nonce's or control's order) would start at a time
 * that has not come, so a document signed ahead would stay current longer than its signer meant.
 */
export function requireNotFutureDated(
  issuedAt: string,
  now: number,
  clockSkewSeconds: number,
  file: string,
): void {
  if (parseIsoTime(issuedAt) > now + clockSkewSeconds * 1000)
    throw new FutureDated(
      file,
      `issued at ${issuedAt}, more than ${clockSkewSeconds} s after now (${isoTime(now)})`,
    );
}

type ReleaseDoc = { fleet: string; releaseVersion: number; issuedAt: string };

/**
 * Signature first, binding second: a tampered file is reported as BadSignature (forged), a genuine file
 * from another release as MixAndMatch.
 */
export function verifyReleaseDocument<T extends ReleaseDoc>(
  env: SignedDocument<T>,
  root: TrustRoot,
  file: string,
  releaseVersion: number,
  fileBytes?: Uint8Array,
): T {
  verifyReleaseSigned(env, root, file, undefined, fileBytes);
  return requireRelease(env.signed, root, file, releaseVersion);
}

/** A release document's place: this root's fleet, the release the timestamp names. */
export function requireRelease<T extends ReleaseDoc>(
  doc: T,
  root: TrustRoot,
  file: string,
  releaseVersion: number,
): T {
  requireFleet(doc, root, file);
  if (doc.releaseVersion !== releaseVersion) {
    throw new MixAndMatch(
      file,
      `belongs to release ${doc.releaseVersion}, the timestamp names release ${releaseVersion}`,
    );
  }
  return doc;
}
