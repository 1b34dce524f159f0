// The one release walk (TUF's "refresh"): root chain -> timestamp -> revocations -> release index ->
// budgets -> channel plans -> host manifests, each verified from the very bytes fetched once, and
// returned as the verified documents. Every reader builds on it: the auditor (verifyTree, every
// manifest), the operator's read side (every plan), the control plane's release view and the agent
// (its own manifest, its plans and the plans its disruption budgets reach). Pure except the injected fetch.
import { MixAndMatch, WrongHost, isVerificationError } from '../errors.ts';
import { LIMITS } from '../limits.ts';
import { TIMESTAMP_PATH, hostManifestPath, rootPath } from '../layout.ts';
import { parseIsoTime, type FileRef, type ChannelPlan, type DisruptionBudgets, type HostManifest, type ReleaseIndex, type Timestamp, type SignedDocument, type TrustRoot } from '../schemas/index.ts';
import { signedTextOf } from '../envelope.ts';
import { unb64, type PublicKey } from '../keys.ts';
import { releaseKeysValidAt, verifyReleaseSigned } from '../trust-root.ts';
import type { Fetch } from './fetcher.ts';
import { readBudgets, readChannelPlan, readHostManifest, readReleaseIndex, requireFileRef, requireFleet, verifyReleaseDocument } from './documents.ts';
import { checkGatingPlan, checkManifestAgainstPlan, checkManifestIdentity, checkNotRevoked } from './host-view.ts';
import { NONE_SEEN, verifySnapshot, type SeenVersions, type TrustedSnapshot, type VerifiedSnapshot } from './update-trust.ts';
import type { SignedRoot } from '../trust-root.ts';
import { verifyBatch, type SignatureJob } from './batch-verify.ts';

/** The index the timestamp binds: signature, fleet, exact bytes, the release it names, its root version. */
export function verifyReleaseIndex(bytes: Uint8Array, ts: Timestamp, root: TrustRoot, file = ts.release.index.path): SignedDocument<ReleaseIndex> {
  const env = readReleaseIndex(bytes, file);
  verifyReleaseSigned(env, root, file, undefined, bytes);
  const index = env.signed;
  requireFleet(index, root, file);
  requireFileRef(bytes, ts.release.index, file, TIMESTAMP_PATH);
  if (index.version !== ts.release.version) throw new MixAndMatch(file, `is release ${index.version}, the timestamp names release ${ts.release.version}`);
  if (index.rootVersion > root.version) throw new MixAndMatch(file, `was signed under trust root v${index.rootVersion}, newer than v${root.version}`);
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
}

export interface VerifiedManifest {
  manifest: HostManifest;
  /** Set when the revocations name the host or its target: an agent refuses it, an auditor reports it. */
  revoked?: string;
}

export interface VerifiedRelease extends VerifiedSnapshot {
  index: ReleaseIndex;
  budgets: DisruptionBudgets;
  /** Channel -> plan, sorted by channel (every reader of one tree lists channels in one order). */
  plans: Record<string, ChannelPlan>;
  /** Host -> manifest, in index order, for the hosts asked for. */
  manifests: Map<string, VerifiedManifest>;
  /** Every file verified, in the order verified (with the root files walked). */
  files: { file: string; type: 'root' | 'timestamp' | 'revocations' | 'controls' | 'release' | 'channel-plan' | 'disruption-budgets' | 'host-manifest' }[];
}

function sameRef(a: FileRef, b: FileRef): boolean {
  return a.path === b.path && a.digest === b.digest && a.length === b.length;
}

export async function verifyRelease(o: VerifyReleaseOptions): Promise<VerifiedRelease> {
  const snapshot = await verifySnapshot({ fetch: o.fetch, trusted: o.trusted, seen: o.seen ?? NONE_SEEN, now: o.now, ...(o.clockSkewSeconds === undefined ? {} : { clockSkewSeconds: o.clockSkewSeconds }) });
  return { ...snapshot, ...(await verifyReleaseDocuments(o.fetch, snapshot, o)) };
}

export type ReleaseSelection = Pick<VerifyReleaseOptions, 'manifests' | 'plans'>;
export type VerifiedReleaseDocuments = Omit<VerifiedRelease, keyof VerifiedSnapshot>;

/** The second half of the walk: what the verified timestamp binds, from the index down, as selected. */
export async function verifyReleaseDocuments(fetch: Fetch, snapshot: TrustedSnapshot & { chain?: SignedRoot[] }, select: ReleaseSelection): Promise<VerifiedReleaseDocuments> {
  const o = { fetch, ...select };
  const root = snapshot.root.signed;
  const ts = snapshot.timestamp.signed;
  const revocations = snapshot.revocations.signed;
  const files: VerifiedRelease['files'] = (snapshot.chain ?? []).slice(1).map((r) => ({ file: rootPath(r.signed.version), type: 'root' as const }));
  files.push({ file: TIMESTAMP_PATH, type: 'timestamp' }, { file: ts.revocations.file.path, type: 'revocations' });
  if (ts.controls) files.push({ file: ts.controls.file.path, type: 'controls' });
  const need = async (ref: FileRef, max: number, boundBy: string): Promise<Uint8Array> => {
    const b = await o.fetch(ref.path, max);
    if (b === undefined) throw new MixAndMatch(ref.path, `is missing, but ${boundBy} binds it`);
    return b;
  };

  const version = ts.release.version;
  const indexRef = ts.release.index;
  const index = verifyReleaseIndex(await need(indexRef, LIMITS.releaseIndex, TIMESTAMP_PATH), ts, root).signed;
  files.push({ file: indexRef.path, type: 'release' });

  const budgetsBytes = await need(index.budgets, LIMITS.budgets, indexRef.path);
  const budgets = verifyReleaseDocument(readBudgets(budgetsBytes, index.budgets.path), root, index.budgets.path, version, budgetsBytes);
  requireFileRef(budgetsBytes, index.budgets, index.budgets.path, indexRef.path);
  files.push({ file: index.budgets.path, type: 'disruption-budgets' });

  const hosts = o.manifests === 'all' ? Object.keys(index.hosts) : [...o.manifests];
  // Manifests are the bulk of an audit: fetch and parse all and verify their signatures as one batch
  // on every core (before the plans: a forged manifest is named as such, whatever else is wrong), then
  // check each one's bindings in order once the plans are verified.
  const loaded: { host: string; file: string; ref: FileRef; channel: string; bytes: Uint8Array; env: SignedDocument<HostManifest> }[] = [];
  for (const host of hosts) {
    const file = hostManifestPath(version, host);
    const entry = index.hosts[host];
    // The release has nothing for this host: it must not act on anything else's manifest.
    if (!entry) throw new WrongHost(file, `release ${version} has no manifest for host "${host}"`);
    // Agents fetch their manifest by this path: the index must bind exactly the file they read.
    if (entry.manifest.path !== file) throw new MixAndMatch(indexRef.path, `binds ${entry.manifest.path} for host "${host}", agents read ${file}`);
    const bytes = await o.fetch(file, LIMITS.hostManifest);
    if (bytes === undefined) {
      if (o.manifests === 'all') throw new MixAndMatch(file, `is missing, but ${indexRef.path} binds it`);
      throw new WrongHost(file, `release ${version} has no manifest for host "${host}"`);
    }
    loaded.push({ host, file, ref: entry.manifest, channel: entry.channel, bytes, env: readHostManifest(bytes, file) });
  }
  const preverified = preverifySignatures(loaded, root);

  const signedManifests = loaded.map(({ host, file, bytes, env }, i) => {
    const manifest = preverified[i] ? env.signed : verifyReleaseDocument(env, root, file, version, bytes);
    requireFleet(manifest, root, file);
    if (manifest.releaseVersion !== version) throw new MixAndMatch(file, `belongs to release ${manifest.releaseVersion}, the timestamp names release ${version}`);
    checkManifestIdentity(manifest, host, file);
    return manifest;
  });

  const plans: Record<string, ChannelPlan> = {};
  const verifyPlan = async (channel: string): Promise<ChannelPlan> => {
    const entry = index.channels[channel];
    if (!entry) throw new MixAndMatch(indexRef.path, `host of channel "${channel}" is listed but the channel is not`);
    const file = entry.plan.path;
    const bytes = await need(entry.plan, LIMITS.channelPlan, indexRef.path);
    const plan = verifyReleaseDocument(readChannelPlan(bytes, file), root, file, version, bytes);
    requireFileRef(bytes, entry.plan, file, indexRef.path);
    checkGatingPlan(channel, plan, file);
    if (plan.rolloutId !== entry.rolloutId) throw new MixAndMatch(file, `rolloutId ${plan.rolloutId} differs from the index's ${entry.rolloutId}`);
    const planHosts = Object.keys(plan.hosts);
    if (planHosts.length !== entry.hostCount) throw new MixAndMatch(file, `lists ${planHosts.length} hosts, the index says ${entry.hostCount}`);
    for (const h of planHosts) {
      if (index.hosts[h]?.channel !== channel) throw new MixAndMatch(file, `lists host "${h}", which the index does not place in channel "${channel}"`);
    }
    for (const g of plan.gatedBy) if (!index.channels[g]) throw new MixAndMatch(file, `is gated by channel "${g}", which the index does not list`);
    files.push({ file, type: 'channel-plan' });
    return plan;
  };
  const hostChannels = plannedChannels(o, index, budgets, hosts);
  for (const channel of hostChannels) plans[channel] = await verifyPlan(channel);
  // The channels that gate the requested hosts' channels (all of them already, with plans: 'all').
  const gating = [...new Set(hostChannels.flatMap((c) => plans[c]!.gatedBy))].filter((c) => !plans[c]).sort();
  for (const channel of gating) plans[channel] = await verifyPlan(channel);
  const sortedPlans = Object.fromEntries(Object.entries(plans).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)));

  const manifests = new Map<string, VerifiedManifest>();
  for (const [i, { host, file, ref, channel, bytes }] of loaded.entries()) {
    const manifest = signedManifests[i]!;
    requireFileRef(bytes, ref, file, indexRef.path);
    const channelEntry = index.channels[manifest.channel];
    const plan = plans[manifest.channel];
    if (manifest.channel !== channel || !channelEntry || !plan) throw new MixAndMatch(file, `channel "${manifest.channel}" differs from the index ("${channel}")`);
    if (!sameRef(manifest.plan, channelEntry.plan)) throw new MixAndMatch(file, `binds a plan other than the index's for channel "${manifest.channel}"`);
    if (!sameRef(manifest.budgets, index.budgets)) throw new MixAndMatch(file, 'binds a budgets file other than the index\'s');
    checkManifestAgainstPlan(manifest, plan, file);
    const gated = new Set(plan.gatedBy);
    if (manifest.gatingPlans.length !== gated.size) throw new MixAndMatch(file, `binds ${manifest.gatingPlans.length} gating plans, its channel is gated by ${gated.size}`);
    for (const g of manifest.gatingPlans) {
      const ge = index.channels[g.channel];
      if (!gated.has(g.channel) || !ge || !sameRef(g.plan, ge.plan)) throw new MixAndMatch(file, `binds a gating plan for "${g.channel}" other than the index's`);
    }
    manifests.set(host, { manifest, ...revokedDetail(manifest, revocations, file) });
    files.push({ file, type: 'host-manifest' });
  }
  return { index, budgets, plans: sortedPlans, manifests, files };
}

/** Sorted channel names whose plans the walk fetches. */
function plannedChannels(o: ReleaseSelection, index: ReleaseIndex, budgets: DisruptionBudgets, hosts: readonly string[]): string[] {
  if (o.plans === 'all') return Object.keys(index.channels).sort();
  const wanted = new Set<string>();
  for (const h of hosts) {
    const channel = index.hosts[h]?.channel;
    if (channel === undefined) continue; // refused as WrongHost when its manifest is looked up
    wanted.add(channel);
  }
  // Disruption budgets span channels, and the reconciler counts every member's flight status.
  for (const b of budgets.budgets) for (const h of b.hosts) {
    const channel = index.hosts[h]?.channel;
    if (channel !== undefined) wanted.add(channel);
  }
  return [...wanted].sort();
}

function revokedDetail(manifest: HostManifest, revocations: Parameters<typeof checkNotRevoked>[1], file: string): { revoked?: string } {
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
 * verifyReleaseSigned would accept it. False sends it through verifyReleaseDocument, which decides
 * the remaining cases and throws the typed error.
 */
function preverifySignatures(loaded: readonly { bytes: Uint8Array; env: SignedDocument<HostManifest> }[], root: TrustRoot): boolean[] {
  const keysAt = new Map<string, Map<string, PublicKey>>();
  const rejectBefore = root.rejectBefore === null ? -Infinity : parseIsoTime(root.rejectBefore);
  const jobs: SignatureJob[] = [];
  const plan = loaded.map(({ bytes, env }) => {
    const issuedAt = parseIsoTime(env.signed.issuedAt);
    if (issuedAt < rejectBefore) return undefined;
    let keys = keysAt.get(env.signed.issuedAt);
    if (!keys) keysAt.set(env.signed.issuedAt, (keys = releaseKeysValidAt(root, issuedAt)));
    const text = signedTextOf(bytes, env.signatures);
    if (!text) return undefined;
    const first = jobs.length;
    const signers = new Set<string>();
    for (const s of env.signatures) {
      const key = keys.get(s.keyid);
      if (!key) continue;
      signers.add(s.keyid);
      jobs.push({ publicKey: key.publicKey, message: text, signature: unb64(s.sig) });
    }
    if (signers.size < root.releaseThreshold) return undefined;
    return { first, count: jobs.length - first };
  });
  const results = verifyBatch(jobs);
  return plan.map((p) => p !== undefined && results.slice(p.first, p.first + p.count).every(Boolean));
}
