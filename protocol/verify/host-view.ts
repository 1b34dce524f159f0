// The client workflow's second half: everything one host needs from the current release (its manifest,
// its channel's plan, the plans of gating channels, the disruption budgets), each verified and bound to
// the release the timestamp names, to this host, and to one another.
import { MixAndMatch, Revoked, WrongHost } from '../errors.ts';
import { LIMITS } from '../limits.ts';
import { hostManifestPath } from '../layout.ts';
import type { FileRef } from '../schemas/common.ts';
import type { HostManifest, ChannelPlan, DisruptionBudgets } from '../schemas/release.ts';
import type { Revocations } from '../schemas/revocations.ts';
import type { TrustRoot } from '../schemas/root.ts';
import type { Fetch } from './fetcher.ts';
import type { TrustedSnapshot } from './update-trust.ts';
import { readBudgets, readChannelPlan, readHostManifest, requireFileRef, verifyReleaseDocument } from './documents.ts';

export interface HostView {
  manifest: HostManifest;
  plan: ChannelPlan;
  gatingPlans: ChannelPlan[];
  budgets: DisruptionBudgets;
}

/** The manifest must be this host's, in this release; its plan must list it with the same target. */
export function checkManifestIdentity(manifest: HostManifest, host: string, file: string): void {
  if (manifest.host !== host) throw new WrongHost(file, `is the manifest of host "${manifest.host}", requested for "${host}"`);
}

export function checkManifestAgainstPlan(manifest: HostManifest, plan: ChannelPlan, file: string): void {
  if (plan.channel !== manifest.channel) throw new MixAndMatch(file, `is in channel "${manifest.channel}" but its plan is for "${plan.channel}"`);
  if (plan.rolloutId !== manifest.rolloutId) throw new MixAndMatch(file, `rolloutId ${manifest.rolloutId} differs from its plan's ${plan.rolloutId}`);
  const entry = plan.hosts[manifest.host];
  if (!entry) throw new MixAndMatch(file, `host "${manifest.host}" is not listed in the plan of channel "${plan.channel}"`);
  if (entry.target !== manifest.target || entry.wave !== manifest.wave || entry.hostKey !== manifest.hostKey) {
    throw new MixAndMatch(file, `target/wave/hostKey differ from the plan of channel "${plan.channel}"`);
  }
}

export function checkGatingPlan(expectedChannel: string, plan: ChannelPlan, file: string): void {
  if (plan.channel !== expectedChannel) throw new MixAndMatch(file, `is the plan of "${plan.channel}", bound as the gating plan of "${expectedChannel}"`);
}

export function checkNotRevoked(manifest: HostManifest, revocations: Revocations, file: string): void {
  const host = revocations.hosts.find((h) => h.host === manifest.host);
  if (host) throw new Revoked(file, `host "${manifest.host}" is revoked since ${host.revokedAt}: ${host.reason}`);
  const closure = revocations.closures.find((c) => c.storePath === manifest.target);
  if (closure) throw new Revoked(file, `target ${manifest.target} is revoked since ${closure.revokedAt}: ${closure.reason}`);
}

async function fetchBound(fetch: Fetch, ref: FileRef, maxBytes: number, boundBy: string): Promise<Uint8Array> {
  const bytes = await fetch(ref.path, maxBytes);
  if (bytes === undefined) throw new MixAndMatch(ref.path, `is missing, but ${boundBy} binds it`);
  return bytes;
}

export interface FetchHostViewOptions {
  fetch: Fetch;
  trusted: TrustedSnapshot;
  host: string;
}

export async function fetchHostView(o: FetchHostViewOptions): Promise<HostView> {
  const root: TrustRoot = o.trusted.root.signed;
  const version = o.trusted.timestamp.signed.release.version;
  const file = hostManifestPath(version, o.host);
  const bytes = await o.fetch(file, LIMITS.hostManifest);
  // The release has nothing for this host: it must not act on anything else's manifest.
  if (bytes === undefined) throw new WrongHost(file, `release ${version} has no manifest for host "${o.host}"`);
  const manifest = verifyReleaseDocument(readHostManifest(bytes, file), root, file, version, bytes);
  checkManifestIdentity(manifest, o.host, file);
  checkNotRevoked(manifest, o.trusted.revocations.signed, file);

  const plan = await fetchPlan(o.fetch, manifest.plan, root, version, file);
  checkManifestAgainstPlan(manifest, plan, file);
  const gatingPlans: ChannelPlan[] = [];
  for (const g of manifest.gatingPlans) {
    const gp = await fetchPlan(o.fetch, g.plan, root, version, file);
    checkGatingPlan(g.channel, gp, g.plan.path);
    gatingPlans.push(gp);
  }
  const budgetsBytes = await fetchBound(o.fetch, manifest.budgets, LIMITS.budgets, file);
  const budgets = verifyReleaseDocument(readBudgets(budgetsBytes, manifest.budgets.path), root, manifest.budgets.path, version, budgetsBytes);
  requireFileRef(budgetsBytes, manifest.budgets, manifest.budgets.path, file);
  return { manifest, plan, gatingPlans, budgets };
}

async function fetchPlan(fetch: Fetch, ref: FileRef, root: TrustRoot, version: number, boundBy: string): Promise<ChannelPlan> {
  const bytes = await fetchBound(fetch, ref, LIMITS.channelPlan, boundBy);
  const plan = verifyReleaseDocument(readChannelPlan(bytes, ref.path), root, ref.path, version, bytes);
  requireFileRef(bytes, ref, ref.path, boundBy);
  return plan;
}
