// The one release walk (TUF's "refresh"): root chain -> timestamp -> revocations -> release index ->
// budgets -> channel plans -> host manifests, each verified from the very bytes fetched once, and
// returned as the verified documents. Every reader builds on it: the auditor (verifyTree, every
// manifest), the operator's read side (every plan), the control plane's release view and the agent
// (its own manifest, its plans and the plans its disruption budgets reach). Pure except the injected fetch.
import { MixAndMatch, WrongHost, isVerificationError } from '../errors.ts';
import { LIMITS } from '../limits.ts';
import { TIMESTAMP_PATH, hostManifestPath, rootPath } from '../layout.ts';
import {
  parseIsoTime,
  type FileRef,
  type ChannelPlan,
  type DisruptionBudgets,
  type HostManifest,
  type ReleaseIndex,
  type Timestamp,
  type SignedDocument,
  type TrustRoot,
} from '../schemas/index.ts';
import { signedTextOf } from '../envelope.ts';
import { canonicalString, sha256Digest } from '../canonical.ts';
import { intakeText } from '../strict-json.ts';
import { unb64, type PublicKey } from '../keys.ts';
import { releaseKeysValidAt, verifyReleaseSigned } from '../trust-root.ts';
import type { Fetch } from './fetcher.ts';
import {
  readBudgets,
  readChannelPlan,
  readHostManifest,
  readReleaseIndex,
  readReleaseIndexHead,
  requireFileRef,
  requireFleet,
  requireRelease,
  verifyReleaseDocument,
  type ReleaseIndexHead,
} from './documents.ts';
import {
  checkGatingPlan,
  checkManifestAgainstPlan,
  checkManifestIdentity,
  checkNotRevoked,
} from './host-view.ts';
import {
  NONE_SEEN,
  verifySnapshot,
  type SeenVersions,
  type TrustedSnapshot,
  type VerifiedSnapshot,
} from './update-trust.ts';
import type { SignedRoot } from '../trust-root.ts';
import { verifyBatch, type SignatureJob } from './batch-verify.ts';

/** The index the timestamp binds: signature, fleet, exact bytes, the release it names, its root version. */
export function verifyReleaseIndex(
  bytes: Uint8Array,
  ts: Timestamp,
  root: TrustRoot,
  file = ts.release.index.path,
  memo?: MemoFor,
): SignedDocument<ReleaseIndex> {
  return requireIndexBinding(
    releaseSigned(bytes, file, readReleaseIndex, 'release', root, memo),
    bytes,
    ts,
    root,
    file,
  );
}

/**
 * verifyReleaseIndex without the schema of the index's `hosts` entries (readReleaseIndexHead): every
 * check above, the same signature over the same bytes, the other members schema-checked. For a reader
 * that uses no host entry: the publisher, which reads its tree's current release for the channel plans
 * and budgets it binds. Safe because the entries are still strict JSON (no duplicate keys, no
 * "__proto__"), are covered by the release signature (only a release key could have written them, and
 * the publisher writes them from typed values), and nothing reads them. No memo: an entry would be
 * handed to readers that expect checked host entries.
 */
export function verifyReleaseIndexHead(
  bytes: Uint8Array,
  ts: Timestamp,
  root: TrustRoot,
  file = ts.release.index.path,
): SignedDocument<ReleaseIndexHead> {
  return requireIndexBinding(
    releaseSigned(bytes, file, readReleaseIndexHead, 'release', root, undefined),
    bytes,
    ts,
    root,
    file,
  );
}

/** Fleet, exact bytes, the release the timestamp names, a root version not newer than `root`. */
function requireIndexBinding<T extends Omit<ReleaseIndex, 'hosts'>>(
  env: SignedDocument<T>,
  bytes: Uint8Array,
  ts: Timestamp,
  root: TrustRoot,
  file: string,
): SignedDocument<T> {
  const index = env.signed;
  requireFleet(index, root, file);
  requireFileRef(bytes, ts.release.index, file, TIMESTAMP_PATH);
  if (index.version !== ts.release.version)
    throw new MixAndMatch(
      file,
      `is release ${index.version}, the timestamp names release ${ts.release.version}`,
    );
  if (index.rootVersion > root.version)
    throw new MixAndMatch(
      file,
      `was signed under trust root v${index.rootVersion}, newer than v${root.version}`,
    );
  return env;
}

export interface VerifyReleaseOptions {
  fetch: Fetch;
  /** The root to walk forward from: the pinned root, or the client's last trusted root. */
  trusted: SignedRoot;
  /** ms since the epoch; time is an input, never read here. */
  now: number;
  clockSkewSeconds?: number;
  /** What this client has already seen (rollback defence); default: nothing (an auditor has no state). */
  seen?: SeenVersions;
  /**
   * Which host manifests to fetch: 'all' (the auditor: every host the index lists; a listed file that
   * is missing is MixAndMatch) or these hosts (an agent: its own; a missing one is WrongHost).
   */
  manifests: 'all' | readonly string[];
  /**
   * Which channel plans: 'all', or 'needed' = the channels of the requested manifests, the channels
   * that gate them and the channels of every disruption-budget member (the reconciler counts them).
   */
  plans: 'all' | 'needed';
  /** Documents earlier walks verified (protocol/memo-file.ts persists one: the operator views' and the agent's). */
  memo?: VerifiedDocumentMemo;
  /**
   * How a host manifest's own release signatures are established. 'each' (default: the auditor, the
   * agent): every manifest's signatures are verified. 'bound-by-index' (read-only views: the
   * dashboard): a manifest whose bytes are exactly the file the verified release index binds (path,
   * length, SHA-256) is authenticated by the index's signatures (TUF's targets by hash), so its own
   * Ed25519 checks are skipped; its signature entries must still name release keys valid at its
   * issuedAt to the threshold, after the root's rejectBefore. Any other manifest is verified as in 'each'.
   * docs/architecture.md "Readers that verify less" has the argument.
   */
  manifestSignatures?: ManifestSignatures;
}

export type ManifestSignatures = 'each' | 'bound-by-index';

/**
 * Release documents an earlier walk verified, keyed by the digest of the root they were verified under,
 * the digest of their bytes and the document type. An entry is the envelope intake built from exactly those bytes after the
 * release signatures checked out under exactly that root; both are pure functions of (root, bytes), so a
 * hit spares strict JSON, the schema and Ed25519 (most of a 10,000-host view's second). Everything that
 * relates a document to the rest of the release (the digest its parent binds, fleet, release version,
 * rollout, hosts, revocations) is checked on every walk, hit or miss. The store is as trusted as the
 * caller's own files (the operator's private cache directory, the agent's state directory); audits pass none.
 */
export interface VerifiedDocumentMemo {
  get(key: string): SignedDocument<unknown> | undefined;
  set(key: string, env: SignedDocument<unknown>): void;
  /**
   * Optional, for 'bound-by-index' manifests only (BOUND_MANIFEST keys): whether the bytes of `key` were
   * taken in strictly under its root (setTakenIn), without keeping what intake made of them. The walk
   * then decodes the bytes it just read (`JSON.parse`): for bytes that passed the strict intake of a
   * host manifest (strict JSON: no duplicate keys; strict objects: no unknown keys; no schema defaults
   * or transforms) that is the same document, as the ack cache decodes acks it verified before.
   */
  takenIn?(key: string): boolean;
  setTakenIn?(key: string): void;
}

/** A memo and the digest of the root in force: what keys its entries. */
interface MemoFor {
  memo: VerifiedDocumentMemo;
  rootDigest: string;
}

/**
 * A host manifest taken in by a 'bound-by-index' walk without its own signatures checked: kept apart
 * from 'host-manifest', whose entries say the signatures were verified, and used only by such a walk
 * and only while the verified index binds exactly those bytes.
 */
export const BOUND_MANIFEST = 'host-manifest-bound-by-index';

/** The type is part of the key: bytes taken in as one document type are never handed out as another. */
function memoKey(
  memo: MemoFor,
  bytes: Uint8Array,
  type: VerifiedFileType | typeof BOUND_MANIFEST,
  digest = sha256Digest(bytes),
): string {
  return `${memo.rootDigest} ${digest} ${type}`;
}

/** Intake and release signatures of one document, through the memo when there is one. */
function releaseSigned<T extends { issuedAt: string }>(
  bytes: Uint8Array,
  file: string,
  read: (bytes: Uint8Array, file: string) => SignedDocument<T>,
  type: VerifiedFileType,
  root: TrustRoot,
  memo: MemoFor | undefined,
): SignedDocument<T> {
  const key = memo && memoKey(memo, bytes, type);
  const hit = key === undefined ? undefined : memo!.memo.get(key);
  if (hit !== undefined) return hit as SignedDocument<T>;
  const env = read(bytes, file);
  verifyReleaseSigned(env, root, file, undefined, bytes);
  if (key !== undefined) memo!.memo.set(key, env as SignedDocument<unknown>);
  return env;
}

export interface VerifiedManifest {
  manifest: HostManifest;
  /** Set when the revocations name the host or its target: an agent refuses it, an auditor reports it. */
  revoked?: string;
}

/** The kinds of signed file the walk verifies (the auditor's report names each file by one). */
export type VerifiedFileType =
  | 'root'
  | 'timestamp'
  | 'revocations'
  | 'controls'
  | 'enrolment'
  | 'release'
  | 'channel-plan'
  | 'disruption-budgets'
  | 'host-manifest';

export interface VerifiedRelease extends VerifiedSnapshot {
  index: ReleaseIndex;
  budgets: DisruptionBudgets;
  /** Channel -> plan, sorted by channel (every reader of one tree lists channels in one order). */
  plans: Record<string, ChannelPlan>;
  /** Host -> manifest, in index order, for the hosts asked for. */
  manifests: Map<string, VerifiedManifest>;
  /** Every file verified, in the order verified (with the root files walked). */
  files: { file: string; type: VerifiedFileType }[];
}

/** requireFileRef's test, as a question: `bytes` (whose SHA-256 is `digest`) are exactly the file `ref` binds. */
function isBoundBy(ref: FileRef, bytes: Uint8Array, digest: string): boolean {
  return bytes.byteLength === ref.length && digest === ref.digest;
}

function sameRef(a: FileRef, b: FileRef): boolean {
  return a.path === b.path && a.digest === b.digest && a.length === b.length;
}

export async function verifyRelease(o: VerifyReleaseOptions): Promise<VerifiedRelease> {
  const snapshot = await verifySnapshot({
    fetch: o.fetch,
    trusted: o.trusted,
    seen: o.seen ?? NONE_SEEN,
    now: o.now,
    clockSkewSeconds: o.clockSkewSeconds,
  });
  return { ...snapshot, ...(await verifyReleaseDocuments(o.fetch, snapshot, o)) };
}

export type ReleaseSelection = Pick<
  VerifyReleaseOptions,
  'manifests' | 'plans' | 'memo' | 'manifestSignatures'
>;
export type VerifiedReleaseDocuments = Omit<VerifiedRelease, keyof VerifiedSnapshot>;

/** The second half of the walk: what the verified timestamp binds, from the index down, as selected. */
export async function verifyReleaseDocuments(
  fetch: Fetch,
  snapshot: TrustedSnapshot & { chain?: SignedRoot[] },
  select: ReleaseSelection,
): Promise<VerifiedReleaseDocuments> {
  const w = startWalk(fetch, snapshot, select.memo);
  const index = await verifyIndex(w);
  const budgets = await verifyBudgets(w, index);
  const hosts = select.manifests === 'all' ? Object.keys(index.hosts) : [...select.manifests];
  // Manifests are the bulk of an audit: fetch and parse all and verify their signatures as one batch
  // on every core (before the plans: a forged manifest is named as such, whatever else is wrong), then
  // check each one's bindings in order once the plans are verified.
  const boundByIndex = select.manifestSignatures === 'bound-by-index';
  const loaded = await fetchManifests(w, index, hosts, select.manifests === 'all', boundByIndex);
  const signed = verifyManifestSignatures(w, loaded);
  const plans = await verifyPlans(w, index, plannedChannels(select, index, budgets, hosts));
  const manifests = checkManifestBindings(w, index, loaded, signed, plans);
  return { index, budgets, plans: byChannel(plans), manifests, files: w.files };
}

/** The walk below a verified snapshot: what it trusts, and every file verified so far (in order). */
interface ReleaseWalk {
  fetch: Fetch;
  root: TrustRoot;
  ts: Timestamp;
  revocations: TrustedSnapshot['revocations']['signed'];
  version: number;
  files: VerifiedRelease['files'];
  memo: MemoFor | undefined;
}

interface LoadedManifest {
  host: string;
  file: string;
  /** The index's reference to the manifest. */
  ref: FileRef;
  /** The channel the index places the host in. */
  channel: string;
  bytes: Uint8Array;
  env: SignedDocument<HostManifest>;
  /** The memo's key for these bytes (a walk with a memo), and whether the memo already verified them. */
  memoKey?: string;
  fromMemo: boolean;
  /**
   * A 'bound-by-index' walk, and the bytes are exactly the file the index binds: the index's
   * signatures authenticate them (no Ed25519 check of their own; memoKey is then the bound key).
   */
  boundByIndex: boolean;
}

function startWalk(
  fetch: Fetch,
  snapshot: TrustedSnapshot & { chain?: SignedRoot[] },
  memo: VerifiedDocumentMemo | undefined,
): ReleaseWalk {
  const ts = snapshot.timestamp.signed;
  const files: VerifiedRelease['files'] = (snapshot.chain ?? [])
    .slice(1)
    .map((r) => ({ file: rootPath(r.signed.version), type: 'root' as const }));
  files.push(
    { file: TIMESTAMP_PATH, type: 'timestamp' },
    { file: ts.revocations.file.path, type: 'revocations' },
  );
  if (ts.controls) files.push({ file: ts.controls.file.path, type: 'controls' });
  if (ts.enrolment) files.push({ file: ts.enrolment.file.path, type: 'enrolment' });
  return {
    fetch,
    root: snapshot.root.signed,
    ts,
    revocations: snapshot.revocations.signed,
    version: ts.release.version,
    files,
    memo: memo && { memo, rootDigest: sha256Digest(canonicalString(snapshot.root.signed)) },
  };
}

/** The bytes of a file another verified document binds: missing is a mix-and-match, not "no such release". */
async function need(
  w: ReleaseWalk,
  ref: FileRef,
  max: number,
  boundBy: string,
): Promise<Uint8Array> {
  const b = await w.fetch(ref.path, max);
  if (b === undefined) throw new MixAndMatch(ref.path, `is missing, but ${boundBy} binds it`);
  return b;
}

async function verifyIndex(w: ReleaseWalk): Promise<ReleaseIndex> {
  const indexRef = w.ts.release.index;
  const index = verifyReleaseIndex(
    await need(w, indexRef, LIMITS.releaseIndex, TIMESTAMP_PATH),
    w.ts,
    w.root,
    indexRef.path,
    w.memo,
  ).signed;
  w.files.push({ file: indexRef.path, type: 'release' });
  return index;
}

async function verifyBudgets(w: ReleaseWalk, index: ReleaseIndex): Promise<DisruptionBudgets> {
  const indexPath = w.ts.release.index.path;
  const budgetsBytes = await need(w, index.budgets, LIMITS.budgets, indexPath);
  const budgets = requireRelease(
    releaseSigned(
      budgetsBytes,
      index.budgets.path,
      readBudgets,
      'disruption-budgets',
      w.root,
      w.memo,
    ).signed,
    w.root,
    index.budgets.path,
    w.version,
  );
  requireFileRef(budgetsBytes, index.budgets, index.budgets.path, indexPath);
  w.files.push({ file: index.budgets.path, type: 'disruption-budgets' });
  return budgets;
}

/** Fetches and parses the hosts' manifests (signatures not checked yet). A missing one: MixAndMatch for an audit, WrongHost for an agent. */
async function fetchManifests(
  w: ReleaseWalk,
  index: ReleaseIndex,
  hosts: readonly string[],
  audit: boolean,
  boundByIndex: boolean,
): Promise<LoadedManifest[]> {
  const indexPath = w.ts.release.index.path;
  const loaded: LoadedManifest[] = [];
  for (const host of hosts) {
    const file = hostManifestPath(w.version, host);
    const entry = index.hosts[host];
    // The release has nothing for this host: it must not act on anything else's manifest.
    if (!entry)
      throw new WrongHost(file, `release ${w.version} has no manifest for host "${host}"`);
    // Agents fetch their manifest by this path: the index must bind exactly the file they read.
    if (entry.manifest.path !== file)
      throw new MixAndMatch(
        indexPath,
        `binds ${entry.manifest.path} for host "${host}", agents read ${file}`,
      );
    const bytes = await w.fetch(file, LIMITS.hostManifest);
    if (bytes === undefined) {
      if (audit) throw new MixAndMatch(file, `is missing, but ${indexPath} binds it`);
      throw new WrongHost(file, `release ${w.version} has no manifest for host "${host}"`);
    }
    const digest = w.memo !== undefined || boundByIndex ? sha256Digest(bytes) : undefined;
    const bound = boundByIndex && isBoundBy(entry.manifest, bytes, digest!);
    let key = w.memo && memoKey(w.memo, bytes, 'host-manifest', digest);
    let hit = key === undefined ? undefined : w.memo!.memo.get(key);
    if (bound && w.memo !== undefined && hit === undefined) {
      key = memoKey(w.memo, bytes, BOUND_MANIFEST, digest);
      hit = w.memo.memo.get(key);
      if (hit === undefined && w.memo.memo.takenIn?.(key) === true) hit = decodeTakenIn(bytes);
    }
    loaded.push({
      host,
      file,
      ref: entry.manifest,
      channel: entry.channel,
      bytes,
      env: (hit as SignedDocument<HostManifest> | undefined) ?? readHostManifest(bytes, file),
      memoKey: key,
      fromMemo: hit !== undefined,
      boundByIndex: bound,
    });
  }
  return loaded;
}

/** A bound manifest whose bytes passed strict intake under this root before (VerifiedDocumentMemo.takenIn). */
function decodeTakenIn(bytes: Uint8Array): SignedDocument<HostManifest> {
  return JSON.parse(intakeText(bytes)) as SignedDocument<HostManifest>;
}

/** Each manifest's signed content, its signatures verified (in one batch where it can), its fleet, release and host checked. */
function verifyManifestSignatures(
  w: ReleaseWalk,
  loaded: readonly LoadedManifest[],
): HostManifest[] {
  // Manifests the memo holds were verified under this root from these very bytes: no batch for them.
  const preverified = preverifySignatures(
    loaded.filter((m) => !m.fromMemo),
    w.root,
  );
  let next = 0;
  return loaded.map(({ host, file, bytes, env, memoKey: key, fromMemo, boundByIndex }) => {
    const manifest =
      fromMemo || preverified[next++]
        ? env.signed
        : verifyReleaseDocument(env, w.root, file, w.version, bytes);
    if (key !== undefined && !fromMemo) {
      const memo = w.memo!.memo;
      // A bound manifest is decoded from its bytes on the next walk: only that they passed is kept.
      if (boundByIndex && memo.setTakenIn !== undefined) memo.setTakenIn(key);
      else memo.set(key, env as SignedDocument<unknown>);
    }
    requireFleet(manifest, w.root, file);
    if (manifest.releaseVersion !== w.version)
      throw new MixAndMatch(
        file,
        `belongs to release ${manifest.releaseVersion}, the timestamp names release ${w.version}`,
      );
    checkManifestIdentity(manifest, host, file);
    return manifest;
  });
}

/** The plans of `channels`, then of the channels that gate them (all of them already, with plans: 'all'). */
async function verifyPlans(
  w: ReleaseWalk,
  index: ReleaseIndex,
  channels: readonly string[],
): Promise<Record<string, ChannelPlan>> {
  const plans: Record<string, ChannelPlan> = {};
  for (const channel of channels) plans[channel] = await verifyPlan(w, index, channel);
  const gating = [...new Set(channels.flatMap((c) => plans[c]!.gatedBy))]
    .filter((c) => !plans[c])
    .sort();
  for (const channel of gating) plans[channel] = await verifyPlan(w, index, channel);
  return plans;
}

/** One channel plan: signed, the exact file the index binds, and agreeing with the index on rollout and hosts. */
async function verifyPlan(
  w: ReleaseWalk,
  index: ReleaseIndex,
  channel: string,
): Promise<ChannelPlan> {
  const indexPath = w.ts.release.index.path;
  const entry = index.channels[channel];
  if (!entry)
    throw new MixAndMatch(
      indexPath,
      `host of channel "${channel}" is listed but the channel is not`,
    );
  const file = entry.plan.path;
  const bytes = await need(w, entry.plan, LIMITS.channelPlan, indexPath);
  const plan = requireRelease(
    releaseSigned(bytes, file, readChannelPlan, 'channel-plan', w.root, w.memo).signed,
    w.root,
    file,
    w.version,
  );
  requireFileRef(bytes, entry.plan, file, indexPath);
  checkGatingPlan(channel, plan, file);
  if (plan.rolloutId !== entry.rolloutId)
    throw new MixAndMatch(
      file,
      `rolloutId ${plan.rolloutId} differs from the index's ${entry.rolloutId}`,
    );
  const planHosts = Object.keys(plan.hosts);
  if (planHosts.length !== entry.hostCount)
    throw new MixAndMatch(
      file,
      `lists ${planHosts.length} hosts, the index says ${entry.hostCount}`,
    );
  for (const h of planHosts) {
    if (index.hosts[h]?.channel !== channel)
      throw new MixAndMatch(
        file,
        `lists host "${h}", which the index does not place in channel "${channel}"`,
      );
  }
  for (const g of plan.gatedBy)
    if (!index.channels[g])
      throw new MixAndMatch(file, `is gated by channel "${g}", which the index does not list`);
  w.files.push({ file, type: 'channel-plan' });
  return plan;
}

/** Every manifest bound to exactly the index's file, channel, plan, budgets and gating plans; revocations noted, not refused. */
function checkManifestBindings(
  w: ReleaseWalk,
  index: ReleaseIndex,
  loaded: readonly LoadedManifest[],
  signed: readonly HostManifest[],
  plans: Record<string, ChannelPlan>,
): Map<string, VerifiedManifest> {
  const indexPath = w.ts.release.index.path;
  const manifests = new Map<string, VerifiedManifest>();
  for (const [i, { host, file, ref, channel, bytes, boundByIndex }] of loaded.entries()) {
    const manifest = signed[i]!;
    // A manifest bound by the index was found to be exactly its file already (fetchManifests).
    if (!boundByIndex) requireFileRef(bytes, ref, file, indexPath);
    const channelEntry = index.channels[manifest.channel];
    const plan = plans[manifest.channel];
    if (manifest.channel !== channel || !channelEntry || !plan)
      throw new MixAndMatch(
        file,
        `channel "${manifest.channel}" differs from the index ("${channel}")`,
      );
    if (!sameRef(manifest.plan, channelEntry.plan))
      throw new MixAndMatch(
        file,
        `binds a plan other than the index's for channel "${manifest.channel}"`,
      );
    if (!sameRef(manifest.budgets, index.budgets))
      throw new MixAndMatch(file, "binds a budgets file other than the index's");
    checkManifestAgainstPlan(manifest, plan, file);
    const gated = new Set(plan.gatedBy);
    if (manifest.gatingPlans.length !== gated.size)
      throw new MixAndMatch(
        file,
        `binds ${manifest.gatingPlans.length} gating plans, its channel is gated by ${gated.size}`,
      );
    for (const g of manifest.gatingPlans) {
      const ge = index.channels[g.channel];
      if (!gated.has(g.channel) || !ge || !sameRef(g.plan, ge.plan))
        throw new MixAndMatch(
          file,
          `binds a gating plan for "${g.channel}" other than the index's`,
        );
    }
    manifests.set(host, { manifest, ...revokedDetail(manifest, w.revocations, file) });
    w.files.push({ file, type: 'host-manifest' });
  }
  return manifests;
}

/** Sorted by channel: every reader of one tree lists channels in one order. */
function byChannel(plans: Record<string, ChannelPlan>): Record<string, ChannelPlan> {
  return Object.fromEntries(Object.entries(plans).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)));
}

/** Sorted channel names whose plans the walk fetches. */
function plannedChannels(
  o: ReleaseSelection,
  index: ReleaseIndex,
  budgets: DisruptionBudgets,
  hosts: readonly string[],
): string[] {
  if (o.plans === 'all') return Object.keys(index.channels).sort();
  const wanted = new Set<string>();
  for (const h of hosts) {
    const channel = index.hosts[h]?.channel;
    if (channel === undefined) continue; // refused as WrongHost when its manifest is looked up
    wanted.add(channel);
  }
  // Disruption budgets span channels, and the reconciler counts every member's flight status.
  for (const b of budgets.budgets)
    for (const h of b.hosts) {
      const channel = index.hosts[h]?.channel;
      if (channel !== undefined) wanted.add(channel);
    }
  return [...wanted].sort();
}

function revokedDetail(
  manifest: HostManifest,
  revocations: Parameters<typeof checkNotRevoked>[1],
  file: string,
): { revoked?: string } {
  try {
    checkNotRevoked(manifest, revocations, file);
    return {};
  } catch (e) {
    if (!isVerificationError(e) || e.code !== 'Revoked') throw e;
    return { revoked: e.detail };
  }
}

/**
 * Per manifest: true when its release signatures are established by the batch (rejectBefore passed,
 * every signature by a key valid at its issuedAt verified, threshold met), i.e. exactly when
 * verifyReleaseSigned would accept it, or, for a manifest bound by the index, the same without the
 * Ed25519 checks (the index's signatures vouch for its bytes). False sends it through
 * verifyReleaseDocument, which decides the remaining cases and throws the typed error.
 */
function preverifySignatures(
  loaded: readonly {
    bytes: Uint8Array;
    env: SignedDocument<HostManifest>;
    boundByIndex: boolean;
  }[],
  root: TrustRoot,
): boolean[] {
  const keysAt = new Map<string, Map<string, PublicKey>>();
  const rejectBefore = root.rejectBefore === null ? -Infinity : parseIsoTime(root.rejectBefore);
  const jobs: SignatureJob[] = [];
  const plan = loaded.map(({ bytes, env, boundByIndex }) => {
    const issuedAt = parseIsoTime(env.signed.issuedAt);
    if (issuedAt < rejectBefore) return undefined;
    let keys = keysAt.get(env.signed.issuedAt);
    if (!keys) keysAt.set(env.signed.issuedAt, (keys = releaseKeysValidAt(root, issuedAt)));
    // Bound by the verified index: the signers are counted as below, their signatures not checked
    // (so no signed text is needed).
    const text = boundByIndex ? null : signedTextOf(bytes, env.signatures);
    if (text === undefined) return undefined;
    const first = jobs.length;
    const signers = new Set<string>();
    for (const s of env.signatures) {
      const key = keys.get(s.keyid);
      if (!key) continue;
      signers.add(s.keyid);
      if (text !== null)
        jobs.push({ publicKey: key.publicKey, message: text, signature: unb64(s.sig) });
    }
    if (signers.size < root.releaseThreshold) return undefined;
    return { first, count: jobs.length - first };
  });
  const results = verifyBatch(jobs);
  return plan.map(
    (p) => p !== undefined && results.slice(p.first, p.first + p.count).every(Boolean),
  );
}
