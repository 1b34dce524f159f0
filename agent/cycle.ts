// One agent cycle (DESIGN.md section 6), as named steps: recover -> sync acks -> fetch verified ->
// local state -> fetch peers when the decision can read them (+ the ack loss check) -> decide -> act ->
// post acks. Every decision is logged with its reason as one JSON line.
import {
  isVerificationError,
  isoTime,
  type HostManifest,
  type ChannelPlan,
  type Ack,
  type SignedAck,
  type SignedRoot,
  readPinnedRoot,
  fetchHostView,
  type HostView,
  type Revocations,
  type Timestamp,
  ClientState,
  initialClientState,
  isFreshnessFailure,
  updateTrust,
  type UpdateTrustResult,
  channelFreshness,
  readTimestamp,
  Stale,
  TIMESTAMP_PATH,
  LIMITS,
  type Controls,
  type Fetch,
  type ControlEvidence,
  type VerifiedDocumentMemo,
} from '../protocol/index.ts';
import {
  decide,
  decisionReadsPeerAcks,
  type AckRecord,
  type Decision,
  type Freshness,
  type LocalState,
} from '../reconciler/index.ts';
import {
  activate,
  activateViaReboot,
  confirmPending,
  fetchTarget,
  recover,
  rollbackConfirmed,
  rollbackPending,
  type AgentContext,
  type FetchOutcome,
} from './activation.ts';
import { canReboot, type Generation } from './activators/index.ts';
import { readAgentState, updateAgentState, type AgentState } from './agent-state.ts';
import { enforcedFailure, runRuntimeControls, runtimeComplianceOf } from './compliance.ts';
import { isBootPhase, readPending, type PendingRecord as Pending } from './pending.ts';
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
  /** Release documents earlier cycles verified (state dir `verified-docs`), passed to the release walk. */
  memo?: VerifiedDocumentMemo;
  pinnedRoot: SignedRoot;
  clockSkewSeconds: number;
}

/** The agent's trustRootFile, through the one pinned-root loader (regular file, size cap, threshold). */
export function loadPinnedRoot(file: string): SignedRoot {
  return readPinnedRoot(file);
}

function loadClientState(state: StateDir, pinned: SignedRoot): ClientState {
  return clientStateFrom(state.read(TRUST_STATE_FILE, ClientState, 256 * 1024), pinned);
}

function clientStateFrom(stored: ClientState | undefined, pinned: SignedRoot): ClientState {
  // A pin newer than what the state knows (re-installed agent) wins; an older pin never rolls it back.
  if (!stored || stored.trustedRoot.signed.version < pinned.signed.version)
    return initialClientState(pinned);
  return stored;
}

/**
 * Peers see only a host's latest ack. Once this host reported the failure of this very target in this
 * rollout, that report must stay its latest: it counts against the wave's failure threshold and keeps
 * the rollout halted. A later presence heartbeat or "blocked" ack would silently erase it.
 */
function ownFailureStands(last: Ack | undefined, m: HostManifest): boolean {
  return (
    !!last &&
    (last.kind === 'rolled-back' || last.kind === 'failed') &&
    last.target === m.target &&
    last.rolloutId === m.rolloutId
  );
}

/** Heartbeat or first healthy ack for a host that runs its target, when one is due. */
async function convergedAck(
  deps: CycleDeps,
  m: HostManifest,
  plan: ChannelPlan,
  confirmed: AgentState['confirmed'],
): Promise<void> {
  const now = deps.now();
  const last = deps.journal.last()?.signed;
  const onTarget = confirmed?.target === m.target ? confirmed : null;
  const healthySince = onTarget?.healthySince ?? isoTime(now);
  if (!onTarget)
    updateAgentState(deps.state, {
      confirmed: { target: m.target, rolloutId: m.rolloutId, healthySince, previous: null },
    });
  const evidence = await convergedEvidence(deps, m, onTarget);
  const sameSubject =
    last &&
    last.target === m.target &&
    last.rolloutId === m.rolloutId &&
    (last.kind === 'healthy' || last.kind === 'heartbeat');
  const due =
    !sameSubject ||
    now - Date.parse(last.time) >= plan.heartbeatSeconds * 1000 ||
    soakProofDue(plan, m, last, healthySince, now);
  if (!due) return;
  deps.journal.append(
    {
      kind: sameSubject ? 'heartbeat' : 'healthy',
      releaseVersion: m.releaseVersion,
      rolloutId: m.rolloutId,
      target: m.target,
      current: m.target,
      healthySince,
      probes: [],
      reason: null,
      ...(evidence ? { evidence } : {}),
    },
    now,
  );
}

/**
 * The ack that proves this host's soak: peers count a host soaked once one of its acks shows
 * `time - healthySince >= soakSeconds` of its wave (reconciler/phase.ts healthPhase), so the wave waits
 * for that ack, not for the soak itself. Due at the first run after the soak elapsed while the latest ack
 * still shows less: one ack per host and rollout, so a heartbeat far longer than the soak (300 s, for a
 * 100,000-host box: docs/architecture.md "Timer mode") does not hold the next wave back.
 */
function soakProofDue(
  plan: ChannelPlan,
  m: HostManifest,
  last: Ack,
  healthySince: string,
  now: number,
): boolean {
  const at = soakProofAt(plan, m, healthySince);
  return Date.parse(last.time) < at && now >= at;
}

/**
 * The earliest time a soak proof may carry: `healthySince` + the wave's soak, and at least one clock
 * second (ack times are whole seconds) after it, since peers take only an ack signed after the one that
 * started the health as the proof (reconciler/phase.ts healthPhase), a soak of 0 included.
 */
function soakProofAt(plan: ChannelPlan, m: HostManifest, healthySince: string): number {
  const soakMs = (plan.waves.find((w) => w.index === m.wave)?.soakSeconds ?? 0) * 1000;
  return Date.parse(healthySince) + Math.max(soakMs, 1000);
}

/**
 * A wave with a soak of 0 should not wait a whole agent run for its proof: once this run's healthy ack
 * stands (confirmed through the control plane, or the first ack of a host already on its target), the
 * proof is due a second later, so the run waits for it and signs it (convergedAck).
 */
async function soakProofThisRun(
  deps: CycleDeps,
  m: HostManifest,
  plan: ChannelPlan,
): Promise<void> {
  // The journal's last ack says whether a proof is wanted (a steady run reads nothing more).
  const last = deps.journal.last()?.signed;
  if (last?.target !== m.target || last.rolloutId !== m.rolloutId || !last.healthySince) return;
  if (last.kind !== 'healthy' && last.kind !== 'heartbeat') return;
  const at = soakProofAt(plan, m, last.healthySince);
  const wait = at - deps.now();
  if (Date.parse(last.time) >= at || wait > PROOF_WAIT_MAX_MS) return;
  const confirmed = readAgentState(deps.state).confirmed;
  if (confirmed?.target !== m.target || confirmed.healthySince !== last.healthySince) return;
  if (wait > 0) await deps.sleep(wait);
  await convergedAck(deps, m, plan, confirmed);
}
/** How long a run waits to sign a soak proof itself (a soak of 0: until the clock's next second). */
const PROOF_WAIT_MAX_MS = 1000;

/**
 * The runtime compliance evidence a converged host repeats in its acks (peers judge its soak from its
 * latest ack alone): the results of its activation, or, when it runs the target without having run this
 * rollout's controls (a new rollout with the same target, or controls that changed), run now, once.
 */
async function convergedEvidence(
  deps: CycleDeps,
  m: HostManifest,
  onTarget: AgentState['confirmed'],
): Promise<ControlEvidence[] | undefined> {
  const c = runtimeComplianceOf(m);
  if (!c) return undefined;
  const kept = onTarget?.evidence;
  if (kept && kept.rolloutId === m.rolloutId) return kept.results;
  const results = await runRuntimeControls(c.runtime);
  deps.log.info('compliance', {
    target: m.target,
    mode: c.mode,
    converged: true,
    results: results.map((e) => ({ control: `${e.framework}/${e.control}`, ok: e.ok })),
  });
  const failed = enforcedFailure(c, results);
  if (failed) deps.log.warn('compliance-failed', { target: m.target, reason: failed });
  const state = readAgentState(deps.state).confirmed;
  if (state?.target === m.target)
    updateAgentState(deps.state, {
      confirmed: { ...state, evidence: { rolloutId: m.rolloutId, results } },
    });
  return results;
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
  if (last && last.releaseVersion === m.releaseVersion && now - Date.parse(last.time) < every)
    return;
  deps.journal.append(
    {
      kind: 'heartbeat',
      releaseVersion: m.releaseVersion,
      rolloutId: null,
      target: current,
      current,
      healthySince: null,
      probes: [],
      reason: 'waiting for its turn',
    },
    now,
  );
}

/** A locally blocked host says so once per reason, so budgets and waves do not wait for it forever. */
function blockedAck(
  deps: CycleDeps,
  m: HostManifest,
  kind: 'blocked' | 'deferred',
  reason: string,
  current: string | null,
): void {
  const last = deps.journal.last()?.signed;
  if (
    last &&
    last.kind === kind &&
    last.rolloutId === m.rolloutId &&
    last.reason === reason.slice(0, 512)
  )
    return;
  if (ownFailureStands(last, m)) return;
  deps.journal.append(
    {
      kind,
      releaseVersion: m.releaseVersion,
      rolloutId: m.rolloutId,
      target: m.target,
      current,
      healthySince: null,
      probes: [],
      reason,
    },
    deps.now(),
  );
}

/**
 * The timestamp expired (the whole tree is stale). A stale host still heartbeats what it runs, so peers
 * do not count it offline, and starts nothing new. Re-verify the same tree as of the timestamp's last
 * valid second: every signature and binding must still hold (only freshness failed), and the rollback
 * state is checked as ever but not advanced. Anything else wrong at that instant is thrown as usual.
 */
async function verifyAsOfExpiry(
  deps: CycleDeps,
  fetch: Fetch,
  stale: Stale,
): Promise<UpdateTrustResult | null> {
  if (stale.file !== TIMESTAMP_PATH) return null;
  const bytes = await fetch(TIMESTAMP_PATH, LIMITS.timestamp);
  if (bytes === undefined) return null; // withheld: nothing to heartbeat about
  const asOf = Date.parse(readTimestamp(bytes, TIMESTAMP_PATH).signed.expires) - 1000;
  if (asOf >= deps.now()) return null;
  return updateTrust({
    fetch,
    state: loadClientState(deps.state, deps.pinnedRoot),
    now: asOf,
    clockSkewSeconds: deps.clockSkewSeconds,
  });
}

/**
 * Operator controls that act on this host's local state: clear-quarantine (fleet-wide or for this host)
 * and retry (this host, this rollout) drop quarantine entries that began before the control was signed;
 * a quarantine that starts later (a new failure) stands.
 */
function applyQuarantineControls(
  deps: CycleDeps,
  controls: Controls | null,
  m: HostManifest,
  now: number,
): void {
  if (controls === null) return;
  const clears = controls.quarantineClears.filter((c) => c.host === null || c.host === deps.host);
  const retries = controls.retries.filter(
    (r) => r.host === deps.host && r.rolloutId === m.rolloutId,
  );
  if (clears.length === 0 && retries.length === 0) return;
  const removed = deps.quarantine.clearWhere(
    (e) =>
      clears.some(
        (c) =>
          (c.target === null || c.target === e.target) && Date.parse(e.since) <= Date.parse(c.at),
      ) || retries.some((r) => e.target === m.target && Date.parse(e.since) <= Date.parse(r.at)),
    now,
  );
  for (const e of removed)
    deps.log.info('quarantine-cleared-by-control', {
      target: e.target,
      since: e.since,
      controls: controls.version,
    });
}

/** What the verified tree says for this host (step 3). */
interface Verified {
  manifest: HostManifest;
  plan: ChannelPlan;
  /** Every plan the reconciler needs: own channel, gating channels, channels the budgets reach. */
  plans: Record<string, ChannelPlan>;
  budgets: HostView['budgets'];
  revocations: Revocations;
  cacheKeys: readonly string[];
  controls: Controls | null;
  timestamp: Timestamp;
  /** The tree verified only as of the timestamp's expiry (why), or null when fresh. */
  treeStale: string | null;
  fetch: Fetch;
  /** Digest of the timestamp bytes verified, to remember once the cycle verified everything. */
  timestampDigest: string | undefined;
}

/** Step 1: finish or undo what an earlier run left (offline). A roll back across a reboot ends the run. */
async function recoverStep(deps: CycleDeps): Promise<CycleOutcome | null> {
  const recovered = await recover(deps);
  if (recovered !== 'none') deps.log.info('recovery', { result: recovered });
  if (recovered !== 'rebooting') return null;
  // The host is going down into the previous generation; deciding anything now could only ask for a
  // second reboot. The run after the boot reports the rollback.
  if (deps.sync) await deps.sync.flush();
  return {
    kind: 'rebooting',
    reason:
      'rolling back across a reboot: the previous generation is the boot default and a reboot was requested',
  };
}

/**
 * Step 2 (and the loss check in step 5): make the control plane's copy of our ack chain complete.
 * `checkLoss`: compare what it publishes with what it confirmed, using our own ack from the wave bundle
 * when the cycle read it (`published`, see AckSync.detectLoss), else one GET of our head.
 */
async function syncAcks(
  deps: CycleDeps,
  o: { checkLoss: boolean; published?: SignedAck },
): Promise<void> {
  if (!deps.sync) return;
  if (o.checkLoss) {
    try {
      await deps.sync.detectLoss(deps.now(), o.published);
    } catch (e) {
      deps.log.warn('ack-head-check-failed', { reason: (e as Error).message });
    }
  }
  const r = await deps.sync.flush();
  if (r.reposted > 0)
    deps.log.info('acks-reposted', { count: r.reposted, confirmedSeq: r.serverSeq });
}

/** Step 3: the trust root chain, timestamp, controls, revocations and this host's release documents. */
async function fetchVerified(
  deps: CycleDeps,
  lastVerifiedTimestamp: string | null,
): Promise<Verified> {
  const treeFetch = await openTreeFetch(
    deps.client,
    deps.cache,
    lastVerifiedTimestamp ?? undefined,
  );
  let trust: UpdateTrustResult | null;
  let treeStale: string | null = null;
  const stored = deps.state.read(TRUST_STATE_FILE, ClientState, 256 * 1024);
  try {
    trust = await updateTrust({
      fetch: treeFetch.fetch,
      state: clientStateFrom(stored, deps.pinnedRoot),
      now: deps.now(),
      clockSkewSeconds: deps.clockSkewSeconds,
    });
    // Steady state changes nothing here: skip the fsync unless the remembered versions moved.
    if (!stored || JSON.stringify(stored) !== JSON.stringify(trust.state))
      deps.state.write(TRUST_STATE_FILE, ClientState, trust.state);
  } catch (e) {
    if (!(e instanceof Stale)) throw e;
    trust = await verifyAsOfExpiry(deps, treeFetch.fetch, e);
    if (trust === null) throw e;
    treeStale = e.message;
  }
  if (trust.rootsAdded.length) deps.log.info('trust-root-updated', { versions: trust.rootsAdded });
  const view = await fetchHostView({
    fetch: treeFetch.fetch,
    trusted: trust,
    host: deps.host,
    ...(deps.memo === undefined ? {} : { memo: deps.memo }),
  });
  const plans: Record<string, ChannelPlan> = { [view.plan.channel]: view.plan };
  for (const g of view.gatingPlans) plans[g.channel] = g;
  for (const b of view.budgetPlans) plans[b.channel] = b;
  return {
    manifest: view.manifest,
    plan: view.plan,
    plans,
    budgets: view.budgets,
    revocations: trust.revocations.signed,
    cacheKeys: trust.root.signed.cacheKeys,
    controls: trust.controls?.signed ?? null,
    timestamp: trust.timestamp.signed,
    treeStale,
    fetch: treeFetch.fetch,
    timestampDigest: treeFetch.timestampDigest,
  };
}

/**
 * Step 3 with several control plane boxes: a box whose tree is refused (older than this host has seen,
 * i.e. a lagging mirror: RollbackAttempt; or one that does not verify) is left for the next box in the
 * same cycle. Safe because nothing is believed from any box without verification and the remembered
 * versions (trust-state.json) only ever rise, whatever box served them; skipping a bad box only avoids
 * waiting on it. When every box is refused, the last refusal is the cycle's (keep the generation).
 */
async function fetchVerifiedFromABox(
  deps: CycleDeps,
  lastVerifiedTimestamp: string | null,
): Promise<Verified> {
  const boxes = deps.client.urls.length;
  // A box whose timestamp expired (its sync stopped before ours did) is verified as of its expiry and
  // would hold every new activation: another box may serve a fresh one. Its stale view is kept for
  // when no other box does better.
  let stale: Verified | undefined;
  for (let tried = 1; ; tried++) {
    try {
      const v = await fetchVerified(deps, lastVerifiedTimestamp);
      if (v.treeStale === null || tried >= boxes) return v;
      stale ??= v;
      deps.log.warn('control-plane-tree-stale', {
        url: deps.client.currentUrl,
        reason: `the tree this box serves is stale (${v.treeStale}); trying the next box`,
      });
      deps.client.failover('its tree is stale');
    } catch (e) {
      if (stale && (e instanceof Unreachable || isVerificationError(e))) return stale;
      if (tried >= boxes || !isVerificationError(e)) throw e;
      deps.log.warn('control-plane-tree-refused', {
        url: deps.client.currentUrl,
        code: e.code,
        file: e.file,
        reason: `the tree this box serves is refused (${e.message}); trying the next box`,
      });
      deps.client.failover(`its tree was refused: ${e.code}`);
    }
  }
}

/** A failed fetch or verification as the cycle's outcome (logged); anything else is rethrown. */
async function fetchFailure(deps: CycleDeps, e: unknown): Promise<CycleOutcome> {
  const log = deps.log;
  if (e instanceof Unreachable) {
    log.warn('control-plane-unreachable', { reason: e.message });
    return { kind: 'unreachable', reason: e.message };
  }
  if (isFreshnessFailure(e)) {
    log.warn('decision', {
      decision: 'wait',
      gate: 'not-fresh',
      reason: `no new activations: ${e.message}`,
      code: e.code,
      file: e.file,
    });
    return { kind: 'not-fresh', reason: e.message };
  }
  if (isVerificationError(e)) {
    const current = await deps.activator.currentGeneration();
    log.error('decision', {
      decision: 'refuse',
      code: e.code,
      file: e.file,
      reason: `refusing the served tree, keeping generation ${current.number} (${current.path}): ${e.message}`,
    });
    return { kind: 'refused', code: e.code, file: e.file, reason: e.message };
  }
  throw e;
}

/**
 * Step 5: peers' acks, from the wave bundles, then the ack loss check against our own ack in them.
 *
 * Skipped (no bundle requested: a steady run is the timestamp's 304 alone) when the reconciler says the
 * decision cannot read them (decisionReadsPeerAcks: a host on its target under `halt`, or with nothing
 * to roll back to, and no pending activation; a pending activation is resumed or undone by gates that
 * read no acks). Why that is safe:
 *   - the decision: decide() gives the same answer with any ack set as with none
 *     (tests/reconciler/reads-peer-acks.test.ts); the acts of `converged` (a heartbeat when due) read
 *     only our own journal;
 *   - the peer-ack memory (the replay defence) does not advance meanwhile: the next run that reads the
 *     bundles judges them against the highest acks seen before, exactly as a host that was switched off
 *     for the same time would; a control plane serving older acks then can show no more than it could
 *     by having frozen the bundles, and stale evidence counts against progress, never for it;
 *   - the loss check (a control plane that lost our newest acks): the bundles were only its free proof.
 *     It still runs, as one GET of our head, whenever AckSync.lossCheckDue says so: at least every
 *     LOSS_CHECK_INTERVAL_MS, on another box, or with unconfirmed acks in the journal; a heartbeat
 *     posted meanwhile finds a loss sooner.
 */
async function peerAcksStep(
  deps: CycleDeps,
  v: Verified,
  local: LocalState,
  now: number,
): Promise<{ acks: Record<string, AckRecord> } | CycleOutcome> {
  if (!decisionReadsPeerAcks(v.plan, local, v.manifest)) {
    const due = deps.sync?.lossCheckDue(now) ?? null;
    if (due !== null) {
      deps.log.info('ack-loss-check', { reason: due });
      await syncAcks(deps, { checkLoss: true });
    }
    return { acks: {} };
  }
  let peers;
  try {
    peers = await fetchPeerAcks({
      fetch: v.fetch,
      plans: Object.values(v.plans),
      budgets: v.budgets,
      self: deps.host,
      fleet: v.manifest.fleet,
      state: deps.state,
      log: deps.log,
    });
  } catch (e) {
    // Bundles are not verified documents: only an unreachable control plane ends the cycle here.
    if (!(e instanceof Unreachable)) throw e;
    return fetchFailure(deps, e);
  }
  await syncAcks(deps, { checkLoss: true, published: peers.own });
  return peers;
}

/** Step 4: what this host runs and remembers, read once for the decision and the acts. */
async function readLocalState(
  deps: CycleDeps,
  agentState: AgentState,
  v: Verified,
  now: number,
): Promise<{ current: Generation; pending: Pending | null; local: LocalState }> {
  const current = await deps.activator.currentGeneration();
  const pending = readPending(deps.state);
  applyQuarantineControls(deps, v.controls, v.manifest, now);
  const c = agentState.confirmed;
  const local: LocalState = {
    current: current.path,
    pending:
      pending && pending.rolloutId
        ? {
            target: pending.target,
            rolloutId: pending.rolloutId,
            previous: { generation: pending.previous.number, path: pending.previous.path },
            deadline: Date.parse(pending.deadline),
          }
        : null,
    previous:
      c?.previous && c.target === current.path
        ? { generation: c.previous.number, path: c.previous.path }
        : null,
    quarantine: deps.quarantine
      .active(now)
      .map((q) => ({ target: q.target, until: Date.parse(q.until) })),
  };
  return { current, pending: pending ?? null, local };
}

/**
 * Step 6: the reconciler's decision. The switch inhibitor is the last gate before activate and reads the
 * target's closure: fetch it (signatures checked against the trust root's cache keys) only once every
 * other gate has passed, then decide again if it inhibits.
 */
async function decideStep(
  deps: CycleDeps,
  v: Verified,
  acks: Record<string, AckRecord>,
  s: { current: Generation; pending: Pending | null; local: LocalState },
  now: number,
) {
  // Freshness is per channel: this host holds the timestamp to its own channel's signed window.
  const freshness: Freshness =
    v.treeStale !== null
      ? { status: 'stale', reason: v.treeStale }
      : channelFreshness(v.timestamp, v.plan, now);
  const input = {
    now,
    plans: v.plans,
    budgets: v.budgets,
    revocations: v.revocations,
    acks,
    manifest: v.manifest,
    freshness,
    local: s.local,
    controls: v.controls,
    tolerances: { clockSkewSeconds: deps.clockSkewSeconds },
  };
  let decision = decide({ ...input, inhibitor: null });
  let notFetched: Exclude<FetchOutcome, { kind: 'fetched' }> | null = null;
  if (decision.kind === 'activate' && !s.pending) {
    const f = await fetchTarget(deps, v.manifest, v.cacheKeys, s.current);
    if (f.kind !== 'fetched') notFetched = f;
    else {
      const inhibitor = (await deps.activator.detectInhibitors(v.manifest.target))[0] ?? null;
      // Decided again as of now: a large closure may have taken minutes to download, and the confirm
      // deadline (like the reboot policy's window) counts from the activation, not from before it.
      decision = decide({ ...input, now: deps.now(), inhibitor });
    }
  }
  deps.log.info('decision', {
    decision: decision.kind,
    reason: decision.reason,
    gate: 'gate' in decision ? decision.gate : null,
    release: v.manifest.releaseVersion,
    channel: v.manifest.channel,
    wave: v.manifest.wave,
    target: v.manifest.target,
    current: s.current.path,
  });
  return { decision, notFetched };
}

/** Step 7: act on the decision; returns what was done (null: nothing beyond acks). */
async function act(
  deps: CycleDeps,
  v: Verified,
  s: { current: Generation; pending: Pending | null; confirmed: AgentState['confirmed'] },
  d: { decision: Decision; notFetched: Exclude<FetchOutcome, { kind: 'fetched' }> | null },
): Promise<string | null> {
  const { manifest, plan } = v;
  const { current, pending } = s;
  const decision = d.decision;
  switch (decision.kind) {
    case 'converged':
      await convergedAck(deps, manifest, plan, s.confirmed);
      await soakProofThisRun(deps, manifest, plan);
      return null;
    case 'wait':
      if (decision.gate === 'quarantined')
        blockedAck(deps, manifest, 'blocked', decision.reason, current.path);
      else presenceAck(deps, manifest, plan, current.path);
      return null;
    case 'defer': {
      // The decision says whether a reboot is allowed now (the channel's signed reboot policy); the
      // activator says whether it can reboot at all. Anything short of both: say so and touch nothing.
      const reboot = decision.reboot;
      if (!reboot.allowed || pending)
        blockedAck(deps, manifest, 'deferred', decision.reason, current.path);
      else if (!canReboot(deps.activator))
        blockedAck(
          deps,
          manifest,
          'deferred',
          `${decision.reason}; but the ${deps.activator.kind} activator cannot reboot (reboot not supported): deferred`,
          current.path,
        );
      else
        return activateViaReboot(
          deps,
          deps.activator,
          manifest,
          reboot.deadline,
          decision.inhibitor,
        );
      return null;
    }
    case 'refuse':
      // Peers see why this host will not start (a revoked host's acks no longer count anyway).
      if (decision.gate === 'compliance')
        blockedAck(deps, manifest, 'blocked', decision.reason, current.path);
      return null;
    case 'activate': {
      if (d.notFetched?.kind === 'unavailable')
        blockedAck(deps, manifest, 'blocked', d.notFetched.reason, current.path);
      if (d.notFetched) return d.notFetched.kind;
      // Staged for a boot (or rebooting back) and the host has not rebooted yet: nothing to do but wait.
      if (pending && isBootPhase(pending.phase) && pending.phase !== 'booted')
        return 'awaiting-reboot';
      const outcome = pending
        ? await confirmPending(deps, pending)
        : await activate(deps, manifest, decision.deadline);
      if (outcome === 'confirmed') await soakProofThisRun(deps, manifest, plan);
      return outcome;
    }
    case 'rollback': {
      const to = { number: decision.to.generation, path: decision.to.path };
      if (pending) await rollbackPending(deps, pending, decision.reason);
      else
        await rollbackConfirmed(
          deps,
          to,
          current.path,
          manifest.releaseVersion,
          manifest.rolloutId,
          decision.reason,
        );
      return 'rolled-back';
    }
  }
}

export async function runCycle(deps: CycleDeps): Promise<CycleOutcome> {
  // 1. Recover.
  const rebooting = await recoverStep(deps);
  if (rebooting) return rebooting;

  // 2. Sync acks: post what the endpoint has not confirmed. Whether it lost some is checked in
  //    step 5, where our own ack in the wave bundle usually answers it without a request.
  await syncAcks(deps, { checkLoss: false });

  // 3. Fetch verified. The agent state is read once for the whole cycle.
  const agentState = readAgentState(deps.state);
  let v: Verified;
  try {
    v = await fetchVerifiedFromABox(deps, agentState.lastVerifiedTimestamp);
  } catch (e) {
    const outcome = await fetchFailure(deps, e);
    // No bundle to prove our acks arrived: check the head itself (as long as the control plane answers).
    if (outcome.kind !== 'unreachable') await syncAcks(deps, { checkLoss: true });
    return outcome;
  }

  // 4. Local state: the decision reads it, and it says whether the decision can read peers' acks.
  const now = deps.now();
  const local = await readLocalState(deps, agentState, v, now);

  // 5. Fetch peers' acks when the decision can read them, and the loss check.
  const peers = await peerAcksStep(deps, v, local.local, now);
  if ('kind' in peers) return peers;
  if (v.timestampDigest && v.timestampDigest !== agentState.lastVerifiedTimestamp)
    updateAgentState(deps.state, { lastVerifiedTimestamp: v.timestampDigest });

  // 6. Decide.
  const d = await decideStep(deps, v, peers.acks, local, now);

  // 7. Act, then post the acks it wrote.
  const acted = await act(deps, v, { ...local, confirmed: agentState.confirmed }, d);
  if (deps.sync) {
    const r = await deps.sync.flush();
    if (r.stoppedBecause)
      deps.log.warn('acks-not-posted', {
        reason: r.stoppedBecause,
        confirmedSeq: r.serverSeq,
        journalSeq: deps.journal.lastSeq(),
      });
  }
  return { kind: 'decided', decision: d.decision.kind, reason: d.decision.reason, acted };
}
