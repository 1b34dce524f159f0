// `nixfleet refresh`: the scheduled CI job that keeps the tree fresh. Re-signs only timestamp.json, with
// the same release index and revocations (checked to still match their digests and to verify against the
// newest trust root, so a refresh never vouches for files that changed on disk or that agents would
// refuse) and a new issuedAt/expires.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  writeFileAtomic,
  sha256Digest,
  readEnvelope,
  type SigningKey,
  LIMITS,
  TIMESTAMP_PATH,
  isoTime,
  parseIsoTime,
  type FileRef,
  ChannelPlan,
  ReleaseIndex,
  MixAndMatch,
  verifyReleaseSigned,
  Revocations,
  type SignedDocument,
  type Timestamp,
} from '../protocol/index.ts';
import { PublishRefused, writingFile } from './errors.ts';
import { signTimestamp, timestampLifetimeSeconds } from './publish.ts';
import { acquireLock, readCurrentTimestamp, removeStaleTemps } from './tree.ts';
import { checkReleaseKeys, loadTrustChain, type TrustChain } from './trust.ts';
import { controlsBinding } from './controls.ts';
import { enrolmentBinding } from './enrolment.ts';

export interface RefreshOptions {
  treeDir: string;
  releaseKeys: readonly SigningKey[];
  now: number;
}

export interface RefreshResult {
  releaseVersion: number;
  issuedAt: string;
  expires: string;
  previousIssuedAt: string;
  /** Controls version the new timestamp binds (null: none). */
  controlsVersion: number | null;
}

function readBound(treeDir: string, ref: FileRef): Buffer {
  const path = join(treeDir, ref.path);
  if (!existsSync(path)) throw new MixAndMatch(ref.path, 'named by timestamp.json but missing');
  const bytes = readFileSync(path);
  if (bytes.length !== ref.length || sha256Digest(bytes) !== ref.digest)
    throw new MixAndMatch(
      ref.path,
      'does not match the digest in timestamp.json; refusing to re-sign',
    );
  return bytes;
}

/** The trust chain the tree carries (root/<n>.json), and the release keys checked against its newest root. */
function treeTrust(opts: RefreshOptions): TrustChain {
  const rootDir = join(opts.treeDir, 'root');
  const roots = existsSync(rootDir)
    ? readdirSync(rootDir)
        .filter((f) => /^[1-9][0-9]*\.json$/.test(f))
        .map((f) => new Uint8Array(readFileSync(join(rootDir, f))))
    : [];
  if (roots.length === 0) throw new PublishRefused(`${opts.treeDir}: no root/<n>.json in the tree`);
  const trust = loadTrustChain(roots, opts.now);
  checkReleaseKeys(trust.root, opts.releaseKeys, opts.now);
  return trust;
}

/**
 * The current release's index, once it and the revocations still verify against the newest root: after
 * a trust root rotation the current release may be signed by keys the newest root no longer accepts, and
 * a fresh timestamp over it would only produce a tree every agent refuses.
 */
function currentReleaseIndex(
  treeDir: string,
  ts: Timestamp,
  root: TrustChain['root']['signed'],
): SignedDocument<ReleaseIndex> {
  const index = readEnvelope(readBound(treeDir, ts.release.index), ReleaseIndex, {
    file: ts.release.index.path,
    maxBytes: LIMITS.releaseIndex,
    expectType: 'release',
  });
  const revocations = readEnvelope(readBound(treeDir, ts.revocations.file), Revocations, {
    file: ts.revocations.file.path,
    maxBytes: LIMITS.revocations,
    expectType: 'revocations',
  });
  for (const [env, file] of [
    [index, ts.release.index.path],
    [revocations, ts.revocations.file.path],
  ] as const) {
    try {
      verifyReleaseSigned(env, root, file);
    } catch (e) {
      throw new PublishRefused(
        `${file} does not verify against trust root v${root.version} ` +
          `(${(e as Error).message}); publish a new release instead of refreshing`,
      );
    }
  }
  return index;
}

export function refreshTimestamp(opts: RefreshOptions): RefreshResult {
  const unlock = acquireLock(opts.treeDir);
  try {
    // A publisher killed mid-write leaves its partial release behind; on a full disk that copy is what
    // keeps this small write from succeeding.
    removeStaleTemps(opts.treeDir);
    const current = readCurrentTimestamp(opts.treeDir);
    if (!current)
      throw new PublishRefused(`${opts.treeDir}: no ${TIMESTAMP_PATH}; publish a release first`);
    const ts = current.signed;
    if (opts.now < parseIsoTime(ts.issuedAt)) {
      throw new PublishRefused(
        `refresh time ${isoTime(opts.now)} is before the current timestamp's issuedAt ${ts.issuedAt}; is the clock wrong?`,
      );
    }
    const trust = treeTrust(opts);
    const index = currentReleaseIndex(opts.treeDir, ts, trust.root.signed);
    const freshness = Object.values(index.signed.channels).map(
      (c) =>
        readEnvelope(readBound(opts.treeDir, c.plan), ChannelPlan, {
          file: c.plan.path,
          maxBytes: LIMITS.channelPlan,
          expectType: 'channel-plan',
        }).signed.freshnessSeconds,
    );
    const controls = controlsBinding(opts.treeDir, trust.root.signed, ts);
    const bytes = signTimestamp({
      fleet: ts.fleet,
      now: opts.now,
      lifetimeSeconds: timestampLifetimeSeconds(freshness),
      rootVersion: trust.root.signed.version,
      release: ts.release,
      revocations: ts.revocations,
      // The latency of an operator control: it is bound here, at the next scheduled refresh.
      controls,
      // Enrolment nonces likewise: a minted or withdrawn token acts from the next refresh.
      enrolment: enrolmentBinding(opts.treeDir, trust.root.signed, ts),
      keys: opts.releaseKeys,
    });
    writingFile(
      join(opts.treeDir, TIMESTAMP_PATH),
      `the tree still serves the previous timestamp (expires ${ts.expires})`,
      () => writeFileAtomic(join(opts.treeDir, TIMESTAMP_PATH), bytes, { advanceMtime: true }),
    );
    const signed = (
      JSON.parse(bytes.toString('utf8')) as { signed: { issuedAt: string; expires: string } }
    ).signed;
    return {
      releaseVersion: ts.release.version,
      issuedAt: signed.issuedAt,
      expires: signed.expires,
      previousIssuedAt: ts.issuedAt,
      controlsVersion: controls?.version ?? null,
    };
  } finally {
    unlock();
  }
}
