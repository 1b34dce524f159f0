// The client workflow's first half (TUF-like): walk the root chain forward, then verify the short-lived
// timestamp (the only mutable entry point) and the revocations it binds, refusing anything older than
// what this client has already seen. Pure except for the injected fetch.
import { MixAndMatch, RollbackAttempt, Stale, FutureDated } from '../errors.ts';
import { LIMITS } from '../limits.ts';
import { REVOCATIONS_PATH, TIMESTAMP_PATH, rootPath } from '../layout.ts';
import {
  isoTime,
  parseIsoTime,
  type SignedDocument,
  type Timestamp,
  type Revocations,
  type Controls,
  type EnrolmentNonces,
  type TrustRoot,
} from '../schemas/index.ts';
import {
  MAX_ROOT_CHAIN_STEPS,
  verifyReleaseSigned,
  verifyRootChain,
  type SignedRoot,
} from '../trust-root.ts';
import type { Fetch } from './fetcher.ts';
import type { ClientState } from './state.ts';
import {
  readRevocations,
  readTimestamp,
  requireFileRef,
  requireFleet,
  requireNotFutureDated,
} from './documents.ts';
import { verifyControls } from './controls.ts';
import { verifyEnrolmentNonces } from './enrolment.ts';

export const DEFAULT_CLOCK_SKEW_SECONDS = 300;

/** What a verified update yields: the documents the host view and the reconciler build on. */
export interface TrustedSnapshot {
  root: SignedRoot;
  timestamp: SignedDocument<Timestamp>;
  revocations: SignedDocument<Revocations>;
  /** The operator controls the timestamp binds; null when it binds none (no control signed yet). */
  controls: SignedDocument<Controls> | null;
  /** The enrolment nonces the timestamp binds; null when it binds none (no token minted yet). */
  enrolment: SignedDocument<EnrolmentNonces> | null;
}

export interface UpdateTrustResult extends TrustedSnapshot {
  /** The state to persist (only after success). */
  state: ClientState;
  /** Root versions walked in this update (empty when the root did not change). */
  rootsAdded: number[];
}

/**
 * Freshness failures (Stale, FutureDated) mean "no new activations": the client keeps running what it
 * runs. They never justify a rollback, unlike a forged or mixed document.
 */
export function isFreshnessFailure(e: unknown): e is Stale | FutureDated {
  return e instanceof Stale || e instanceof FutureDated;
}

async function fetchOrStale(fetch: Fetch, path: string, maxBytes: number): Promise<Uint8Array> {
  const b = await fetch(path, maxBytes);
  // A withheld timestamp is a freeze attack or an outage: either way, nothing new may activate.
  if (b === undefined) throw new Stale(path, 'not found: no fresh timestamp is available');
  return b;
}

/**
 * Fetches root/<n+1>.json, root/<n+2>.json, ... until one is missing (at most one past the step limit, so
 * the walker can refuse an endless chain), then hands them to the one root-chain walker.
 */
export async function walkRootChain(
  fetch: Fetch,
  trusted: SignedRoot,
  now: number | null,
  trustedFile?: string,
): Promise<{ root: SignedRoot; chain: SignedRoot[]; added: number[] }> {
  const fetched = new Map<number, Uint8Array>();
  for (let v = trusted.signed.version + 1; fetched.size <= MAX_ROOT_CHAIN_STEPS; v++) {
    const bytes = await fetch(rootPath(v), LIMITS.root);
    if (bytes === undefined) break;
    fetched.set(v, bytes);
  }
  const { root, chain } = verifyRootChain(trusted, (v) => fetched.get(v), now, trustedFile);
  return { root, chain, added: chain.slice(1).map((r) => r.signed.version) };
}

export interface SeenVersions {
  highestReleaseVersion: number;
  highestTimestampIssuedAt: string | null;
  highestRevocationsVersion: number;
  /** 0 = no controls seen. */
  highestControlsVersion: number;
  /** 0 = no enrolment nonces seen. */
  highestEnrolmentVersion: number;
}

/** Signature, binding to the root, freshness, rollback. Shared by the agent and the offline verifier. */
export function verifyTimestamp(
  env: SignedDocument<Timestamp>,
  root: TrustRoot,
  seen: SeenVersions,
  now: number,
  clockSkewSeconds: number,
  file = TIMESTAMP_PATH,
): Timestamp {
  verifyReleaseSigned(env, root, file, now);
  const ts = env.signed;
  requireFleet(ts, root, file);
  if (ts.rootVersion > root.version) {
    throw new MixAndMatch(
      file,
      `was signed under trust root v${ts.rootVersion}, but the newest verifiable root is v${root.version}`,
    );
  }
  requireNotFutureDated(ts.issuedAt, now, clockSkewSeconds, file);
  if (ts.release.version < seen.highestReleaseVersion) {
    throw new RollbackAttempt(
      file,
      `names release ${ts.release.version}, but release ${seen.highestReleaseVersion} was already seen`,
    );
  }
  if (
    seen.highestTimestampIssuedAt !== null &&
    parseIsoTime(ts.issuedAt) < parseIsoTime(seen.highestTimestampIssuedAt)
  ) {
    throw new RollbackAttempt(
      file,
      `issued at ${ts.issuedAt}, older than the timestamp already seen (${seen.highestTimestampIssuedAt})`,
    );
  }
  if (ts.revocations.version < seen.highestRevocationsVersion) {
    throw new RollbackAttempt(
      file,
      `names revocations v${ts.revocations.version}, but v${seen.highestRevocationsVersion} was already seen`,
    );
  }
  // A timestamp that drops the controls, or names older ones, would un-pause a channel or re-apply a
  // control the operator replaced.
  if ((ts.controls?.version ?? 0) < seen.highestControlsVersion) {
    throw new RollbackAttempt(
      file,
      `names controls v${ts.controls?.version ?? 'none'}, but v${seen.highestControlsVersion} was already seen`,
    );
  }
  // Dropping the nonce document, or naming an older one, would allow a withdrawn token again.
  if ((ts.enrolment?.version ?? 0) < seen.highestEnrolmentVersion) {
    throw new RollbackAttempt(
      file,
      `names enrolment v${ts.enrolment?.version ?? 'none'}, but v${seen.highestEnrolmentVersion} was already seen`,
    );
  }
  if (parseIsoTime(ts.expires) <= now) {
    throw new Stale(
      file,
      `expired at ${ts.expires} (now ${isoTime(now)}): no new activations until a fresh timestamp is published`,
    );
  }
  return ts;
}

export function verifyRevocations(
  bytes: Uint8Array,
  ts: Timestamp,
  root: TrustRoot,
  seen: SeenVersions,
  file = ts.revocations.file.path,
): SignedDocument<Revocations> {
  const env = readRevocations(bytes, file);
  verifyReleaseSigned(env, root, file);
  requireFleet(env.signed, root, file);
  requireFileRef(bytes, ts.revocations.file, file, TIMESTAMP_PATH);
  if (env.signed.version !== ts.revocations.version) {
    throw new MixAndMatch(
      file,
      `is version ${env.signed.version}, the timestamp names v${ts.revocations.version}`,
    );
  }
  if (env.signed.version < seen.highestRevocationsVersion) {
    throw new RollbackAttempt(
      file,
      `is version ${env.signed.version}, but v${seen.highestRevocationsVersion} was already seen`,
    );
  }
  return env;
}

export interface UpdateTrustOptions {
  fetch: Fetch;
  state: ClientState;
  /** ms since the epoch; time is an input, never read here. */
  now: number;
  clockSkewSeconds?: number;
}

export interface VerifySnapshotOptions {
  fetch: Fetch;
  /** The root to walk forward from: the pinned root (auditor, operator) or the client's last trusted root. */
  trusted: SignedRoot;
  /** What this client has already seen (rollback defence); an auditor has seen nothing (NONE_SEEN). */
  seen: SeenVersions;
  now: number;
  clockSkewSeconds?: number;
}

export const NONE_SEEN: SeenVersions = Object.freeze({
  highestReleaseVersion: 0,
  highestTimestampIssuedAt: null,
  highestRevocationsVersion: 0,
  highestControlsVersion: 0,
  highestEnrolmentVersion: 0,
});

export interface VerifiedSnapshot extends TrustedSnapshot {
  /** Every root envelope walked from `trusted` to `root`, in order. */
  chain: SignedRoot[];
  /** Root versions walked (empty when the root did not change). */
  rootsAdded: number[];
}

/** The first half of the release walk: root chain, then the timestamp, then the revocations it binds. */
export async function verifySnapshot(o: VerifySnapshotOptions): Promise<VerifiedSnapshot> {
  const skew = o.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS;
  const { root, chain, added } = await walkRootChain(o.fetch, o.trusted, o.now);

  const tsBytes = await fetchOrStale(o.fetch, TIMESTAMP_PATH, LIMITS.timestamp);
  const timestamp = readTimestamp(tsBytes, TIMESTAMP_PATH);
  const ts = verifyTimestamp(timestamp, root.signed, o.seen, o.now, skew);

  const revPath = ts.revocations.file.path;
  const revBytes = await o.fetch(revPath, LIMITS.revocations);
  if (revBytes === undefined)
    throw new MixAndMatch(revPath, `is missing, but ${TIMESTAMP_PATH} binds it`);
  const revocations = verifyRevocations(revBytes, ts, root.signed, o.seen, revPath);

  let controls: SignedDocument<Controls> | null = null;
  if (ts.controls) {
    const path = ts.controls.file.path;
    const bytes = await o.fetch(path, LIMITS.controls);
    if (bytes === undefined)
      throw new MixAndMatch(path, `is missing, but ${TIMESTAMP_PATH} binds it`);
    controls = verifyControls(bytes, ts, root.signed, o.seen.highestControlsVersion, o.now, skew);
  }
  const enrolment = await verifyBoundEnrolment(o, ts, root.signed, skew);
  return { root, chain, rootsAdded: added, timestamp, revocations, controls, enrolment };
}

async function verifyBoundEnrolment(
  o: VerifySnapshotOptions,
  ts: Timestamp,
  root: TrustRoot,
  skew: number,
): Promise<SignedDocument<EnrolmentNonces> | null> {
  if (!ts.enrolment) return null;
  const path = ts.enrolment.file.path;
  const bytes = await o.fetch(path, LIMITS.enrolment);
  if (bytes === undefined)
    throw new MixAndMatch(path, `is missing, but ${TIMESTAMP_PATH} binds it`);
  return verifyEnrolmentNonces(bytes, ts, root, o.seen.highestEnrolmentVersion, o.now, skew);
}

/** The client's step: verifySnapshot from its remembered state, and the state to remember next. */
export async function updateTrust(o: UpdateTrustOptions): Promise<UpdateTrustResult> {
  const { root, timestamp, revocations, controls, enrolment, rootsAdded } = await verifySnapshot({
    fetch: o.fetch,
    trusted: o.state.trustedRoot,
    seen: o.state,
    now: o.now,
    clockSkewSeconds: o.clockSkewSeconds,
  });
  return {
    state: nextClientState(o.state, timestamp.signed, revocations.signed, root),
    root,
    timestamp,
    revocations,
    controls,
    enrolment,
    rootsAdded,
  };
}

/** What a client remembers after a successful walk (persist only after success). */
export function nextClientState(
  prev: ClientState,
  ts: Timestamp,
  revocations: Revocations,
  root: SignedRoot,
): ClientState {
  const prevIssued = prev.highestTimestampIssuedAt;
  return {
    ...prev,
    trustedRoot: root,
    highestReleaseVersion: Math.max(prev.highestReleaseVersion, ts.release.version),
    highestTimestampIssuedAt:
      prevIssued !== null && parseIsoTime(prevIssued) > parseIsoTime(ts.issuedAt)
        ? prevIssued
        : ts.issuedAt,
    highestRevocationsVersion: Math.max(prev.highestRevocationsVersion, revocations.version),
    highestControlsVersion: Math.max(prev.highestControlsVersion, ts.controls?.version ?? 0),
    highestEnrolmentVersion: Math.max(prev.highestEnrolmentVersion, ts.enrolment?.version ?? 0),
  };
}
