// One agent cycle (DESIGN.md section 6): recover -> fetch + verify the chain -> fetch peers' acks ->
// reconcile -> act -> post acks. Every decision is logged with its reason as one JSON line.
import { isVerificationError } from '../protocol/errors.ts';
import { isoTime } from '../protocol/schemas/common.ts';
import type { HostManifest, ChannelPlan } from '../protocol/schemas/release.ts';
import type { Ack } from '../protocol/schemas/ack.ts';
import type { SignedRoot } from '../protocol/trust-root.ts';
import { readPinnedRoot } from '../protocol/pinned-root.ts';
import { fetchHostView } from '../protocol/verify/host-view.ts';
import { ClientState, initialClientState } from '../protocol/verify/state.ts';
import { isFreshnessFailure, updateTrust } from '../protocol/verify/update-trust.ts';
import { decide, type Decision, type LocalState } from '../reconciler/index.ts';
import { activate, activateViaReboot, confirmPending, fetchTarget, recover, rollbackConfirmed, rollbackPending, type AgentContext, type FetchOutcome } from './activation.ts';
import { canReboot } from './activators/index.ts';
import { readAgentState, updateAgentState } from './agent-state.ts';
import { isBootPhase, readPending } from './pending.ts';
import { fetchPeerAcks } from './peer-acks.ts';
import type { HttpCache } from './http-cache.ts';
import { Unreachable, type HttpClient } from './http-client.ts';
import { openTreeFetch } from './tree-fetch.ts';
import type { StateDir } from './state-dir.ts';

export const TRUST_STATE_FILE = 'trust-state.json';

export type CycleOutcome =
  | { kind: 'decided'; decision: Decision['kind']; reason: string; acted: string | null }
  | { kind: 'unreachable'; reason: string }
  | { kind: 'refused'; code: string; file: string; reason: string }
  | { kind: 'not-fresh'; reason: string }
  /** Recovery asked the host to reboot (back into the previous generation): nothing else this run. */
  | { kind: 'rebooting'; reason: string };

export interface CycleDeps extends AgentContext {
  client: HttpClient;
  cache: HttpCache;
  pinnedRoot: SignedRoot;
  clockSkewSeconds: number;
}

/** The agent's trustRootFile, through the one pinned-root loader (regular file, size cap, threshold). */
export function loadPinnedRoot(file: string): SignedRoot {
  return readPinnedRoot(file);
}

function loadClientState(state: StateDir, pinned: SignedRoot): ClientState {
  const stored = state.read(TRUST_STATE_FILE, ClientState, 256 * 1024);
  // A pin newer than what the state knows (re-installed agent) wins; an older pin never rolls it back.
  if (!stored || stored.trustedRoot.signed.version < pinned.signed.version) return initialClientState(pinned);
  return stored;
}

/**
 * Peers see only a host's latest ack. Once this host reported the failure of this very target in this
 * rollout, that report must stay its latest: it counts against the wave's failure threshold and keeps
 * the rollout halted. A later presence heartbeat or "blocked" ack would silently erase it.
 */
function ownFailureStands(last: Ack | undefined, m: HostManifest): boolean {
  return !!last && (last.kind === 'rolled-back' || last.kind === 'failed') && last.target === m.target && last.rolloutId === m.rolloutId;
}

/** Heartbeat or first healthy ack for a host that runs its target, when one is due. */
function convergedAck(deps: CycleDeps, m: HostManifest, plan: ChannelPlan): void {
  const now = deps.now();
  const last = deps.journal.last()?.signed;
  const confirmed = readAgentState(deps.state).confirmed;
  const onTarget = confirmed?.target === m.target ? confirmed : null;
  const healthySince = onTarget?.healthySince ?? isoTime(now);
  if (!onTarget) updateAgentState(deps.state, { confirmed: { target: m.target, rolloutId: m.rolloutId, healthySince, previous: null } });
  const sameSubject = last && last.target === m.target && last.rolloutId === m.rolloutId && (last.kind === 'healthy' || last.kind === 'heartbeat');
  const due = !sameSubject || now - Date.parse(last.time) >= plan.heartbeatSeconds * 1000;
  if (!due) return;
  deps.journal.append(
    { kind: sameSubject ? 'heartbeat' : 'healthy', releaseVersion: m.releaseVersion, rolloutId: m.rolloutId, target: m.target, current: m.target, healthySince, probes: [], reason: null },
    now,
  );
}

/**
 * A waiting host has nothing to report about the rollout, but without any ack the reconciler (every
 * peer's) counts it as offline. A heartbeat about what it currently runs (no rollout id) marks it as
 * present and pending; it is repeated well inside the offline window, not at every poll.
 */
function presenceAck(deps: CycleDeps, m: HostManifest, plan: ChannelPlan, current: string): void {
  const now = deps.now();
  const last = deps.journal.last()?.signed;
  const every = Math.max(plan.heartbeatSeconds, Math.floor(plan.offlineWindowSeconds / 3)) * 1000;
  if (ownFailureStands(last, m)) return;
  if (last && last.releaseVersion === m.releaseVersion && now - Date.parse(last.time) < every) return;
  deps.journal.append({ kind: 'heartbeat', releaseVersion: m.releaseVersion, rolloutId: null, target: current, current, healthySince: null, probes: [], reason: 'waiting for its turn' }, now);
}

/** A locally blocked host says so once per reason, so budgets and waves do not wait for it forever. */
function blockedAck(deps: CycleDeps, m: HostManifest, kind: 'blocked' | 'deferred', reason: string, current: string | null): void {
  const last = deps.journal.last()?.signed;
  if (last && last.kind === kind && last.rolloutId === m.rolloutId && last.reason === reason.slice(0, 512)) return;
  if (ownFailureStands(last, m)) return;
  deps.journal.append({ kind, releaseVersion: m.releaseVersion, rolloutId: m.rolloutId, target: m.target, current, healthySince: null, probes: [], reason }, deps.now());
}

export async function runCycle(deps: CycleDeps): Promise<CycleOutcome> {
  const log = deps.log;
  const recovered = await recover(deps);
  if (recovered !== 'none') log.info('recovery', { result: recovered });
  if (recovered === 'rebooting') {
    // The host is going down into the previous generation; deciding anything now could only ask for a
    // second reboot. The run after the boot reports the rollback.
    if (deps.sync) await deps.sync.flush();
    return { kind: 'rebooting', reason: 'rolling back across a reboot: the previous generation is the boot default and a reboot was requested' };
  }

  if (deps.sync) {
    try {
      await deps.sync.detectLoss(deps.now());
    } catch (e) {
      log.warn('ack-head-check-failed', { reason: (e as Error).message });
    }
    const r = await deps.sync.flush();
    if (r.reposted > 0) log.info('acks-reposted', { count: r.reposted, confirmedSeq: r.serverSeq });
  }

  // Fetch and verify everything this host depends on.
  const agentState = readAgentState(deps.state);
  let view;
  let revocations;
  let treeFetch;
  let budgetPlans: ChannelPlan[] = [];
  let cacheKeys: readonly string[] = [];
  try {
    treeFetch = await openTreeFetch(deps.client, deps.cache, agentState.lastVerifiedTimestamp ?? undefined);
    const trust = await updateTrust({ fetch: treeFetch.fetch, state: loadClientState(deps.state, deps.pinnedRoot), now: deps.now(), clockSkewSeconds: deps.clockSkewSeconds });
    // Steady state changes nothing here: skip the fsync unless the remembered versions moved.
    const before = deps.state.read(TRUST_STATE_FILE, ClientState, 256 * 1024);
    if (!before || JSON.stringify(before) !== JSON.stringify(trust.state)) deps.state.write(TRUST_STATE_FILE, ClientState, trust.state);
    if (trust.rootsAdded.length) log.info('trust-root-updated', { versions: trust.rootsAdded });
    view = await fetchHostView({ fetch: treeFetch.fetch, trusted: trust, host: deps.host });
    revocations = trust.revocations.signed;
    cacheKeys = trust.root.signed.cacheKeys;
    budgetPlans = view.budgetPlans;
  } catch (e) {
    if (e instanceof Unreachable) {
      log.warn('control-plane-unreachable', { reason: e.message });
      return { kind: 'unreachable', reason: e.message };
    }
    if (isFreshnessFailure(e)) {
      log.warn('decision', { decision: 'wait', gate: 'not-fresh', reason: `no new activations: ${e.message}`, code: e.code, file: e.file });
      return { kind: 'not-fresh', reason: e.message };
    }
    if (isVerificationError(e)) {
      const current = await deps.activator.currentGeneration();
      log.error('decision', { decision: 'refuse', code: e.code, file: e.file, reason: `refusing the served tree, keeping generation ${current.number} (${current.path}): ${e.message}` });
      return { kind: 'refused', code: e.code, file: e.file, reason: e.message };
    }
    throw e;
  }

  const { manifest, plan, gatingPlans, budgets } = view;
  const plans: Record<string, ChannelPlan> = { [plan.channel]: plan };
  for (const g of gatingPlans) plans[g.channel] = g;
  for (const b of budgetPlans) plans[b.channel] = b;
  let peers;
  try {
    peers = await fetchPeerAcks({ fetch: treeFetch.fetch, plans: Object.values(plans), budgets, self: deps.host, fleet: manifest.fleet, state: deps.state, log });
  } catch (e) {
    if (e instanceof Unreachable) {
      log.warn('control-plane-unreachable', { reason: e.message });
      return { kind: 'unreachable', reason: e.message };
    }
    throw e;
  }
  if (treeFetch.timestampDigest && treeFetch.timestampDigest !== agentState.lastVerifiedTimestamp) updateAgentState(deps.state, { lastVerifiedTimestamp: treeFetch.timestampDigest });

  const current = await deps.activator.currentGeneration();
  const pending = readPending(deps.state);
  const now = deps.now();
  const local: LocalState = {
    current: current.path,
    pending: pending && pending.rolloutId ? { target: pending.target, rolloutId: pending.rolloutId, previous: { generation: pending.previous.number, path: pending.previous.path }, deadline: Date.parse(pending.deadline) } : null,
    previous: (() => {
      const c = readAgentState(deps.state).confirmed;
      return c?.previous && c.target === current.path ? { generation: c.previous.number, path: c.previous.path } : null;
    })(),
    quarantine: deps.quarantine.active(now).map((q) => ({ target: q.target, until: Date.parse(q.until) })),
  };
  const input = { now, plans, budgets, revocations, acks: peers.acks, manifest, freshness: { status: 'fresh' as const }, local, tolerances: { clockSkewSeconds: deps.clockSkewSeconds } };
  let decision = decide({ ...input, inhibitor: null });
  // The switch inhibitor is the last gate before activate and reads the target's closure: fetch it
  // (signatures checked against the trust root's cache keys) only once every other gate has passed.
  let notFetched: Exclude<FetchOutcome, { kind: 'fetched' }> | null = null;
  if (decision.kind === 'activate' && !pending) {
    const f = await fetchTarget(deps, manifest, cacheKeys, current);
    if (f.kind !== 'fetched') notFetched = f;
    else {
      const inhibitor = (await deps.activator.detectInhibitors(manifest.target))[0] ?? null;
      if (inhibitor !== null) decision = decide({ ...input, inhibitor });
    }
  }
  log.info('decision', {
    decision: decision.kind,
    reason: decision.reason,
    gate: 'gate' in decision ? decision.gate : null,
    release: manifest.releaseVersion,
    channel: manifest.channel,
    wave: manifest.wave,
    target: manifest.target,
    current: current.path,
  });

  let acted: string | null = null;
  switch (decision.kind) {
    case 'converged':
      convergedAck(deps, manifest, plan);
      break;
    case 'wait':
      if (decision.gate === 'quarantined') blockedAck(deps, manifest, 'blocked', decision.reason, current.path);
      else presenceAck(deps, manifest, plan, current.path);
      break;
    case 'defer': {
      // The decision says whether a reboot is allowed now (the channel's signed reboot policy); the
      // activator says whether it can reboot at all. Anything short of both: say so and touch nothing.
      const reboot = decision.reboot;
      if (!reboot.allowed || pending) blockedAck(deps, manifest, 'deferred', decision.reason, current.path);
      else if (!canReboot(deps.activator)) blockedAck(deps, manifest, 'deferred', `${decision.reason}; but the ${deps.activator.kind} activator cannot reboot (reboot not supported): deferred`, current.path);
      else acted = await activateViaReboot(deps, deps.activator, manifest, reboot.deadline, decision.inhibitor);
      break;
    }
    case 'refuse':
      break;
    case 'activate': {
      if (notFetched?.kind === 'unavailable') blockedAck(deps, manifest, 'blocked', notFetched.reason, current.path);
      if (notFetched) acted = notFetched.kind;
      // Staged for a boot (or rebooting back) and the host has not rebooted yet: nothing to do but wait.
      else if (pending && isBootPhase(pending.phase) && pending.phase !== 'booted') acted = 'awaiting-reboot';
      else if (pending) acted = await confirmPending(deps, pending);
      else acted = await activate(deps, manifest, decision.deadline);
      break;
    }
    case 'rollback': {
      const to = { number: decision.to.generation, path: decision.to.path };
      if (pending) await rollbackPending(deps, pending, decision.reason);
      else await rollbackConfirmed(deps, to, current.path, manifest.releaseVersion, manifest.rolloutId, decision.reason);
      acted = 'rolled-back';
      break;
    }
  }
  if (deps.sync) {
    const r = await deps.sync.flush();
    if (r.stoppedBecause) log.warn('acks-not-posted', { reason: r.stoppedBecause, confirmedSeq: r.serverSeq, journalSeq: deps.journal.lastSeq() });
  }
  return { kind: 'decided', decision: decision.kind, reason: decision.reason, acted };
}
