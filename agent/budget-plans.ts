// Disruption budgets span channels, and the reconciler counts every member's flight status, so a host
// needs the plans of every channel its budgets reach, not only its own and its gating channels'. They
// are found through the release index (bound by the timestamp) and each verified like any other plan:
// release-key signature, this release's version, and the exact bytes the index binds.
import { MixAndMatch } from '../protocol/errors.ts';
import { LIMITS } from '../protocol/limits.ts';
import type { ChannelPlan, DisruptionBudgets } from '../protocol/schemas/release.ts';
import { verifyReleaseSigned } from '../protocol/trust-root.ts';
import { readChannelPlan, readReleaseIndex, requireFileRef, requireFleet, verifyReleaseDocument } from '../protocol/verify/documents.ts';
import type { Fetch } from '../protocol/verify/fetcher.ts';
import type { TrustedSnapshot } from '../protocol/verify/update-trust.ts';
import { TIMESTAMP_PATH } from '../protocol/layout.ts';

export async function fetchBudgetPlans(fetch: Fetch, trusted: TrustedSnapshot, budgets: DisruptionBudgets, have: ReadonlySet<string>): Promise<ChannelPlan[]> {
  const members = new Set<string>();
  for (const b of budgets.budgets) for (const h of b.hosts) members.add(h);
  if (members.size === 0) return [];
  const root = trusted.root.signed;
  const ref = trusted.timestamp.signed.release.index;
  const version = trusted.timestamp.signed.release.version;
  const bytes = await fetch(ref.path, LIMITS.releaseIndex);
  if (bytes === undefined) throw new MixAndMatch(ref.path, `is missing, but ${TIMESTAMP_PATH} binds it`);
  requireFileRef(bytes, ref, ref.path, TIMESTAMP_PATH);
  const env = readReleaseIndex(bytes, ref.path);
  verifyReleaseSigned(env, root, ref.path);
  requireFleet(env.signed, root, ref.path);
  if (env.signed.version !== version) throw new MixAndMatch(ref.path, `is release ${env.signed.version}, the timestamp names ${version}`);
  const index = env.signed;
  const channels = new Set<string>();
  for (const h of members) {
    const entry = index.hosts[h];
    if (entry && !have.has(entry.channel)) channels.add(entry.channel);
  }
  const plans: ChannelPlan[] = [];
  for (const ch of [...channels].sort()) {
    const planRef = index.channels[ch]?.plan;
    if (!planRef) throw new MixAndMatch(ref.path, `host of channel "${ch}" is listed but the channel is not`);
    const planBytes = await fetch(planRef.path, LIMITS.channelPlan);
    if (planBytes === undefined) throw new MixAndMatch(planRef.path, `is missing, but ${ref.path} binds it`);
    requireFileRef(planBytes, planRef, planRef.path, ref.path);
    const plan = verifyReleaseDocument(readChannelPlan(planBytes, planRef.path), root, planRef.path, version);
    if (plan.channel !== ch) throw new MixAndMatch(planRef.path, `is the plan of "${plan.channel}", bound as "${ch}"`);
    plans.push(plan);
  }
  return plans;
}
