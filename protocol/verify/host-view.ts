// The client workflow's second half: everything one host needs from the current release (its manifest,
// its channel's plan, the plans of gating channels and of the channels its disruption budgets reach,
// the budgets), through the release walk (verifyReleaseDocuments), plus the checks that walk applies.
import { MixAndMatch, Revoked, WrongHost } from '../errors.ts';
import { hostManifestPath } from '../layout.ts';
import type {
  HostManifest,
  ChannelPlan,
  DisruptionBudgets,
  Revocations,
} from '../schemas/index.ts';
import type { Fetch } from './fetcher.ts';
import type { TrustedSnapshot } from './update-trust.ts';
import {
  verifyReleaseDocuments,
  type VerifiedDocumentMemo,
  type VerifiedReleaseDocuments,
} from './release.ts';

export interface HostView {
  manifest: HostManifest;
  plan: ChannelPlan;
  gatingPlans: ChannelPlan[];
  budgets: DisruptionBudgets;
}

/** The manifest must be this host's, in this release; its plan must list it with the same target. */
export function checkManifestIdentity(manifest: HostManifest, host: string, file: string): void {
  if (manifest.host !== host)
    throw new WrongHost(
      file,
      `is the manifest of host "${manifest.host}", requested for "${host}"`,
    );
}

export function checkManifestAgainstPlan(
  manifest: HostManifest,
  plan: ChannelPlan,
  file: string,
): void {
  if (plan.channel !== manifest.channel)
    throw new MixAndMatch(
      file,
      `is in channel "${manifest.channel}" but its plan is for "${plan.channel}"`,
    );
  if (plan.rolloutId !== manifest.rolloutId)
    throw new MixAndMatch(
      file,
      `rolloutId ${manifest.rolloutId} differs from its plan's ${plan.rolloutId}`,
    );
  const entry = plan.hosts[manifest.host];
  if (!entry)
    throw new MixAndMatch(
      file,
      `host "${manifest.host}" is not listed in the plan of channel "${plan.channel}"`,
    );
  if (
    entry.target !== manifest.target ||
    entry.wave !== manifest.wave ||
    entry.hostKey !== manifest.hostKey
  ) {
    throw new MixAndMatch(
      file,
      `target/wave/hostKey differ from the plan of channel "${plan.channel}"`,
    );
  }
}

export function checkGatingPlan(expectedChannel: string, plan: ChannelPlan, file: string): void {
  if (plan.channel !== expectedChannel)
    throw new MixAndMatch(
      file,
      `is the plan of "${plan.channel}", bound as the gating plan of "${expectedChannel}"`,
    );
}

export function checkNotRevoked(
  manifest: Pick<HostManifest, 'host' | 'target'>,
  revocations: Revocations,
  file: string,
): void {
  const host = revocations.hosts.find((h) => h.host === manifest.host);
  if (host)
    throw new Revoked(
      file,
      `host "${manifest.host}" is revoked since ${host.revokedAt}: ${host.reason}`,
    );
  const closure = revocations.closures.find((c) => c.storePath === manifest.target);
  if (closure)
    throw new Revoked(
      file,
      `target ${manifest.target} is revoked since ${closure.revokedAt}: ${closure.reason}`,
    );
}

export interface FetchHostViewOptions {
  fetch: Fetch;
  trusted: TrustedSnapshot;
  host: string;
  /** Documents earlier cycles verified (the agent keeps one in its state directory: agent/agent.ts). */
  memo?: VerifiedDocumentMemo;
}

/**
 * The agent's half of the release walk: its own manifest, its plans and the plans its disruption
 * budgets reach (verifyReleaseDocuments with manifests [host], plans 'needed'), as a HostView.
 */
export async function fetchHostView(
  o: FetchHostViewOptions,
): Promise<HostView & { budgetPlans: ChannelPlan[] }> {
  return hostViewOf(
    await verifyReleaseDocuments(o.fetch, o.trusted, {
      manifests: [o.host],
      plans: 'needed',
      memo: o.memo,
    }),
    o.host,
  );
}

/** One host's view of a walked release; a revoked host or target is refused (Revoked). */
export function hostViewOf(
  release: Pick<VerifiedReleaseDocuments, 'manifests' | 'plans' | 'budgets'>,
  host: string,
): HostView & { budgetPlans: ChannelPlan[] } {
  const entry = release.manifests.get(host);
  if (!entry) throw new Error(`hostViewOf: host "${host}" was not among the manifests walked`);
  const { manifest, revoked } = entry;
  if (revoked !== undefined)
    throw new Revoked(hostManifestPath(manifest.releaseVersion, host), revoked);
  const plan = release.plans[manifest.channel]!;
  const gatingPlans = manifest.gatingPlans.map((g) => release.plans[g.channel]!);
  // The other plans walked are those of channels the disruption budgets reach.
  const own = new Set([plan.channel, ...gatingPlans.map((g) => g.channel)]);
  const budgetPlans = Object.values(release.plans).filter((p) => !own.has(p.channel));
  return { manifest, plan, gatingPlans, budgets: release.budgets, budgetPlans };
}
