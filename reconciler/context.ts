// One evaluation of the fleet at one instant: host phases per channel rollout, wave and channel states,
// and the shared gate chain (paused -> halted -> channel edges -> earlier waves -> host edges -> budget -> window)
// that both decide() and fleetView() use, so a host and the dashboard always give the same reason.
// Everything is computed lazily and memoised for the lifetime of one call.
import {
  type ChannelPlan,
  type DisruptionBudgets,
  type PlanWave,
  keyIdOf,
  unb64,
} from '../protocol/index.ts';
import {
  AWAITING_PROOF,
  derivePhase,
  describePhase,
  phaseParams,
  type DerivedPhase,
  type PhaseParams,
} from './phase.ts';
import { maintenanceWindowAt, type WindowVerdict } from './maintenance.ts';
import {
  DEFAULT_TOLERANCES,
  type AckRecord,
  type FleetInput,
  type Gate,
  type HostPhase,
  type Tolerances,
} from './types.ts';
import { humanDuration, soakProgress } from './time.ts';
import { complianceFailures, SOAK_NOT_COUNTED } from './compliance.ts';
import { listWithMore, waveLabel } from './words.ts';

export class ReconcilerInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReconcilerInputError';
  }
}

export interface GateHold {
  gate: Gate;
  reason: string;
  /** seconds */
  retryAfter: number;
}

export interface WaveEval {
  index: number;
  wave: PlanWave;
  phases: DerivedPhase[];
  excused: boolean[];
  /** Reported failures plus starts presumed failed (no outcome by their confirm deadline). */
  failures: number;
  failedHosts: string[];
  /** Failures the hosts themselves signed: only these trigger rollback-and-halt (missing evidence only waits). */
  failuresReported: number;
  allowedFailures: number;
  halted: boolean;
  /** Positions (in wave.hosts) of hosts that keep the wave from completing. */
  blocking: number[];
  complete: boolean;
}

export interface ChannelEval {
  plan: ChannelPlan;
  waves: WaveEval[];
  halted: boolean;
  haltedWave: number | null;
  /** Index of the first wave that is not complete (waves.length when all are). */
  firstIncomplete: number;
  complete: boolean;
  position: Map<string, { wave: number; pos: number }>;
  edgesByAfter: Map<string, string[]>;
}

interface BudgetEval {
  id: string;
  max: number;
  inFlight: string[];
  inFlightSet: Set<string>;
  order: BudgetOrder;
  /**
   * Per position in the rank order: how many hosts ranked before it are neither done nor in flight (each
   * holds a slot against every host ranked after it).
   */
  waitingBefore: Int32Array;
}

/**
 * A budget's hosts sorted by rank. The rank depends only on the plans and the budget, so the order is
 * built once per (plans, budgets) and every evaluation counts the hosts ahead of each host in one pass,
 * instead of building and sorting a rank key per host at every instant (at 100,000 hosts that sort was
 * most of a simulated second).
 */
interface BudgetOrder {
  hosts: string[];
  channels: string[];
  /** Position in b.hosts of each entry (in-flight hosts are reported in the budget's own order). */
  listed: Int32Array;
  /** First position of each host in the order. */
  index: Map<string, number>;
}
const budgetOrders = new WeakMap<
  Record<string, ChannelPlan>,
  WeakMap<DisruptionBudgets, Map<string, BudgetOrder>>
>();

/**
 * The budget rank: a total order every host computes alike from the signed plans, and one that follows
 * the gates (a host's gates only ever wait for hosts ranked before it), so waiting by rank cannot deadlock.
 * level = wave index + the levels taken by the channels gating this one; depth = position in the wave's
 * host-edge order.
 */
interface RankKey {
  level: number;
  channel: string;
  depth: number;
  pos: number;
  host: string;
}

function compareRank(a: RankKey, b: RankKey): number {
  if (a.level !== b.level) return a.level - b.level;
  if (a.channel !== b.channel) return a.channel < b.channel ? -1 : 1;
  if (a.depth !== b.depth) return a.depth - b.depth;
  return a.pos - b.pos;
}

/** Where `x` is, or would go, in the ascending `sorted`. */
function sortedIndex(sorted: readonly number[], x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function allowedFailures(wave: PlanWave): number {
  const t = wave.failureThreshold;
  return 'count' in t ? t.count : Math.floor((t.percent * wave.hosts.length) / 100);
}

const BLOCKING_ORDER: Record<HostPhase, number> = {
  offline: 0,
  blocked: 1,
  deferred: 2,
  pending: 3,
  activating: 4,
  confirming: 5,
  healthy: 6,
  failed: 7,
  soaked: 8,
  converged: 9,
};

/** What a channel evaluation needs that depends only on the plan (and tolerances): built once per plan. */
export interface PlanStatic {
  position: Map<string, { wave: number; pos: number }>;
  edgesByAfter: Map<string, string[]>;
  /** Per wave and position: longest chain of same-wave host edges ending at the host (the rank's depth). */
  edgeDepth: number[][];
  params: PhaseParams[][];
  hostKeys: string[][];
  /** Last ack seen per host position and the phase derived from it (reused while still valid). */
  seenAck: (AckRecord | undefined)[][];
  seenPhase: (DerivedPhase | undefined)[][];
}
const planStatics = new WeakMap<ChannelPlan, Map<string, PlanStatic>>();
// Indexes that depend only on the (immutable) plans and budgets documents, shared across calls.
const hostChannels = new WeakMap<Record<string, ChannelPlan>, Map<string, string>>();
const hostBudgets = new WeakMap<DisruptionBudgets, Map<string, string[]>>();
const channelLevels = new WeakMap<Record<string, ChannelPlan>, Map<string, number>>();

function planStatic(plan: ChannelPlan, tol: Tolerances): PlanStatic {
  const key = `${tol.clockSkewSeconds}/${tol.heartbeatExpiryFactor}`;
  let byTol = planStatics.get(plan);
  // Stryker disable next-line ConditionalExpression: a memo: `true` rebuilds the same index (equivalent); `false` leaves it undefined and fails every test
  if (byTol === undefined) {
    byTol = new Map();
    planStatics.set(plan, byTol);
  }
  const memo = byTol.get(key);
  // Stryker disable next-line ConditionalExpression: a memo: `false` recomputes the same value (equivalent); `true` returns undefined and fails every test
  if (memo !== undefined) return memo;
  const position = new Map<string, { wave: number; pos: number }>();
  const params: PhaseParams[][] = [];
  const hostKeys: string[][] = [];
  for (const [wi, wave] of plan.waves.entries()) {
    const wp: PhaseParams[] = [];
    const wk: string[] = [];
    for (const [pos, host] of wave.hosts.entries()) {
      const entry = plan.hosts[host];
      if (entry === undefined)
        throw new ReconcilerInputError(
          `channel plan "${plan.channel}" lists host "${host}" in wave ${wi} but not in its hosts`,
        );
      position.set(host, { wave: wi, pos });
      wp.push(phaseParams(plan, entry.target, wave.soakSeconds, tol));
      wk.push(entry.hostKey);
    }
    params.push(wp);
    hostKeys.push(wk);
  }
  const edgesByAfter = new Map<string, string[]>();
  for (const e of plan.hostEdges) {
    const list = edgesByAfter.get(e.after) ?? [];
    list.push(e.before);
    edgesByAfter.set(e.after, list);
  }
  const edgeDepth = plan.waves.map((w) => new Array<number>(w.hosts.length).fill(0));
  // Relax along the edges; an acyclic graph settles within (hosts) rounds, a cycle never does.
  for (let round = 0, changed = true; changed; round++) {
    if (round > position.size)
      throw new ReconcilerInputError(
        `channel plan "${plan.channel}" has a cycle in its host edges`,
      );
    changed = false;
    for (const e of plan.hostEdges) {
      const b = position.get(e.before),
        a = position.get(e.after);
      if (b === undefined || a === undefined || a.wave !== b.wave) continue;
      const d = edgeDepth[b.wave]![b.pos]! + 1;
      if (d > edgeDepth[a.wave]![a.pos]!) {
        edgeDepth[a.wave]![a.pos] = d;
        changed = true;
      }
    }
  }
  const st: PlanStatic = {
    position,
    edgesByAfter,
    edgeDepth,
    params,
    hostKeys,
    seenAck: plan.waves.map((w) => new Array<AckRecord | undefined>(w.hosts.length)),
    seenPhase: plan.waves.map((w) => new Array<DerivedPhase | undefined>(w.hosts.length)),
  };
  byTol.set(key, st);
  return st;
}

export class FleetContext {
  readonly now: number;
  readonly tol: Tolerances;
  private readonly channels = new Map<string, ChannelEval>();
  private readonly windows = new Map<string, WindowVerdict>();
  private readonly budgetEvals = new Map<string, BudgetEval>();
  private readonly channelEdgeHolds = new Map<string, GateHold | null>();
  private readonly waveReasons = new Map<string, { text: string; retryAfter: number }>();
  /** Hosts with any revocation entry: most hosts have none, and need no key id computed. */
  private readonly revokedHosts: Set<string>;
  /** Operator controls (verified by the caller), indexed: channel -> pause; channel+rollout -> accepted up to (ms); host+rollout -> retry at (ms). */
  private readonly paused = new Map<string, { since: string; reason: string }>();
  private readonly acceptedUntil = new Map<string, number>();
  private readonly retryAt = new Map<string, number>();

  /** True for a one-off decide(): budgets are counted for that host only instead of ranking everyone. */
  // Stryker disable next-line BooleanLiteral: both budget counts give the same answer (see budgetHold)
  singleHost = false;

  constructor(readonly input: FleetInput) {
    this.now = input.now;
    this.tol = { ...DEFAULT_TOLERANCES, ...input.tolerances };
    this.revokedHosts = new Set(input.revocations.hosts.map((r) => r.host));
    const c = input.controls;
    if (c) {
      for (const p of c.paused) this.paused.set(p.channel, { since: p.since, reason: p.reason });
      const later = (m: Map<string, number>, key: string, at: string) =>
        m.set(key, Math.max(m.get(key) ?? -Infinity, Date.parse(at)));
      for (const r of c.resumedHalts)
        later(this.acceptedUntil, `${r.channel}\u0000${r.rolloutId}`, r.acceptedAt);
      for (const r of c.retries) later(this.retryAt, `${r.host}\u0000${r.rolloutId}`, r.at);
    }
  }

  /** The operator's pause of a channel, if any. */
  pauseOf(channel: string): { since: string; reason: string } | undefined {
    return this.paused.get(channel);
  }

  plan(channel: string): ChannelPlan {
    const p = this.input.plans[channel];
    if (p === undefined)
      throw new ReconcilerInputError(
        `the channel plan of "${channel}" is needed but was not provided`,
      );
    return p;
  }

  isHostRevoked(host: string, hostKey: string): boolean {
    return this.hostRevocation(host, hostKey) !== undefined;
  }

  /** The revocation that applies to this host's key (one naming that key, or all its keys), if any. */
  hostRevocation(
    host: string,
    hostKey: string,
  ): FleetInput['revocations']['hosts'][number] | undefined {
    if (!this.revokedHosts.has(host)) return undefined;
    const keyid = keyIdOf(unb64(hostKey));
    return this.input.revocations.hosts.find(
      (r) => r.host === host && (r.keyid === null || r.keyid === keyid),
    );
  }

  channelOf(host: string): string {
    let index = hostChannels.get(this.input.plans);
    // Stryker disable next-line ConditionalExpression: a memo: `true` rebuilds the same index (equivalent); `false` leaves it undefined and fails every test
    if (index === undefined) {
      index = new Map();
      for (const [name, plan] of Object.entries(this.input.plans))
        for (const h of Object.keys(plan.hosts)) index.set(h, name);
      hostChannels.set(this.input.plans, index);
    }
    const c = index.get(host);
    if (c === undefined)
      throw new ReconcilerInputError(
        `host "${host}" is in a disruption budget but in none of the channel plans provided`,
      );
    return c;
  }

  /** A channel's waves evaluated at `now` (memoized per evaluation): phases, halts, completion. */
  channel(name: string): ChannelEval {
    const memo = this.channels.get(name);
    // Stryker disable next-line ConditionalExpression: a memo: `false` recomputes the same value (equivalent); `true` returns undefined and fails every test
    if (memo !== undefined) return memo;
    const plan = this.plan(name);
    const st = planStatic(plan, this.tol);
    // Operator controls name evidence signed up to an instant: failures at or before it are accepted
    // (resume-halted) or retried; a later failure counts again, so a control never excuses the future.
    const acceptedUntil = this.acceptedUntil.get(`${name}\u0000${plan.rolloutId}`) ?? -Infinity;
    const waves = plan.waves.map((wave, wi) => this.wave(plan, st, wi, acceptedUntil));
    const haltedAt = waves.findIndex((w) => w.halted);
    const incompleteAt = waves.findIndex((w) => !w.complete);
    const firstIncomplete = incompleteAt < 0 ? waves.length : incompleteAt;
    const halted = haltedAt >= 0;
    const ev: ChannelEval = {
      plan,
      waves,
      halted,
      haltedWave: halted ? haltedAt : null,
      firstIncomplete,
      complete: !halted && firstIncomplete === waves.length,
      position: st.position,
      edgesByAfter: st.edgesByAfter,
    };
    this.channels.set(name, ev);
    return ev;
  }

  /**
   * Wave `wi`: each host's phase, which are excused, which failed, which still block completion.
   * Protected: trace() carries a wave's evaluation between instants while it holds (reconciler/trace.ts).
   */
  protected wave(plan: ChannelPlan, st: PlanStatic, wi: number, acceptedUntil: number): WaveEval {
    const hosts = plan.waves[wi]!.hosts;
    const phases: DerivedPhase[] = new Array(hosts.length);
    for (let pos = 0; pos < hosts.length; pos++) phases[pos] = this.hostPhase(plan, st, wi, pos);
    return this.waveOf(plan, wi, phases, acceptedUntil);
  }

  /**
   * Wave `wi` from its hosts' phases (in wave order): excuses, failures, what blocks completion.
   * Protected: trace() re-derives only the phases of hosts whose ack changed (reconciler/trace.ts).
   */
  protected waveOf(
    plan: ChannelPlan,
    wi: number,
    phases: DerivedPhase[],
    acceptedUntil: number,
  ): WaveEval {
    const wave = plan.waves[wi]!;
    const excused: boolean[] = new Array(wave.hosts.length);
    const blocking: number[] = [];
    const failedHosts: string[] = [];
    let failuresReported = 0;
    let offlineSeen = 0;
    for (let pos = 0; pos < wave.hosts.length; pos++) {
      const host = wave.hosts[pos]!;
      const ph = phases[pos]!;
      let isExcused = false;
      if (ph.phase === 'offline') {
        // Excuses go in wave order, so every host computes the same excused set.
        isExcused = offlineSeen < wave.offlineExcuseLimit;
        offlineSeen++;
      } else if (ph.phase === 'deferred') {
        // The signed wave policy for hosts waiting to reboot: `hold` waits for them, `excuse` lets the
        // wave complete without them (they stay in flight for budgets: they may reboot at any time).
        isExcused = plan.deferredHosts === 'excuse';
      }
      excused[pos] = isExcused;
      if (ph.phase === 'failed') {
        const accepted = ph.lastAck !== null && ph.lastAck <= acceptedUntil;
        if (!accepted) failedHosts.push(host);
        // A presumed failure counts towards the threshold (it may halt) but never as a tolerated outcome:
        // its real outcome may still arrive, and completion must not be undone when it does. An accepted
        // one no longer halts, and still never completes a wave.
        if (ph.failure === 'reported') {
          if (!accepted) failuresReported++;
        } else blocking.push(pos);
      } else if (!ph.settled && !isExcused) blocking.push(pos);
    }
    const allowed = allowedFailures(wave);
    const halted = failedHosts.length > allowed;
    return {
      index: wi,
      wave,
      phases,
      excused,
      failures: failedHosts.length,
      failedHosts,
      failuresReported,
      allowedFailures: allowed,
      halted,
      blocking,
      complete: !halted && blocking.length === 0,
    };
  }

  /**
   * Wave `wi` again after the phases at positions `changed` did (`phases`: all of its hosts' phases now,
   * `prev`: its evaluation before, at the same acceptedUntil): its counts adjusted by those hosts' old
   * and new phases instead of redone over the wave (trace() carries a wave's evaluation while a few of
   * its ~thousands of hosts post, reconciler/trace.ts). Gives what waveOf(plan, wi, phases,
   * acceptedUntil) gives (tests/reconciler/wave-update.test.ts); a change into or out of `failed` or
   * `offline` (which move the failure list or the order-dependent offline excuses) redoes the wave.
   */
  protected waveUpdated(
    plan: ChannelPlan,
    wi: number,
    prev: WaveEval,
    phases: DerivedPhase[],
    changed: Iterable<number>,
    acceptedUntil: number,
  ): WaveEval {
    let excused = prev.excused;
    let blocking = prev.blocking;
    for (const pos of changed) {
      const was = prev.phases[pos]!;
      const now = phases[pos]!;
      if (was === now) continue;
      if (
        was.phase === 'failed' ||
        now.phase === 'failed' ||
        (was.phase === 'offline') !== (now.phase === 'offline')
      )
        return this.waveOf(plan, wi, phases, acceptedUntil);
      // Offline before and after: its excuse (its rank among the offline hosts) is unchanged.
      const isExcused =
        now.phase === 'offline'
          ? prev.excused[pos]!
          : now.phase === 'deferred' && plan.deferredHosts === 'excuse';
      if (isExcused !== prev.excused[pos]) {
        if (excused === prev.excused) excused = prev.excused.slice();
        excused[pos] = isExcused;
      }
      // Neither failed: blocking is "not settled and not excused" (waveOf).
      const wasBlocking = !was.settled && !prev.excused[pos]!;
      const isBlocking = !now.settled && !isExcused;
      if (wasBlocking === isBlocking) continue;
      // Kept in wave order (waveReason and the views read it so); a position listed twice moves once.
      const at = sortedIndex(blocking, pos);
      if ((blocking[at] === pos) === isBlocking) continue;
      if (blocking === prev.blocking) blocking = prev.blocking.slice();
      if (isBlocking) blocking.splice(at, 0, pos);
      else blocking.splice(at, 1);
    }
    return { ...prev, phases, excused, blocking, complete: !prev.halted && blocking.length === 0 };
  }

  /**
   * The phase of the host at `pos` in wave `wi`: derived from its latest ack, or reused from the last
   * evaluation while that ack and the phase's validity interval still hold; then the operator's retry.
   */
  protected hostPhase(plan: ChannelPlan, st: PlanStatic, wi: number, pos: number): DerivedPhase {
    const host = plan.waves[wi]!.hosts[pos]!;
    const ack = this.input.acks[host];
    const revoked = this.revokedHosts.size > 0 && this.isHostRevoked(host, st.hostKeys[wi]![pos]!);
    const seenAck = st.seenAck[wi]!;
    const seenPhase = st.seenPhase[wi]!;
    let ph = seenPhase[pos];
    if (
      revoked ||
      ph === undefined ||
      seenAck[pos] !== ack ||
      this.now < ph.validFrom ||
      this.now >= ph.validUntil
    ) {
      ph = derivePhase(st.params[wi]![pos]!, ack, this.now, revoked);
      if (!revoked) {
        seenAck[pos] = ack;
        seenPhase[pos] = ph;
      }
    }
    return this.retryAt.size > 0 ? this.retried(ph, host, plan.rolloutId) : ph;
  }

  /** A signed failure report at or before the operator's retry of this host and rollout: pending again. */
  private retried(ph: DerivedPhase, host: string, rolloutId: string): DerivedPhase {
    if (ph.failure !== 'reported' || ph.lastAck === null) return ph;
    if (ph.lastAck > (this.retryAt.get(`${host}\u0000${rolloutId}`) ?? -Infinity)) return ph;
    // Only a signed failure report is retried: the host is out of flight, and as pending it holds
    // its budget rank again (more conservative for everyone ranked after it).
    return {
      ...ph,
      phase: 'pending',
      note: `retry allowed by the operator after: ${ph.note}`,
      inFlight: false,
      done: false,
      settled: false,
      failure: null,
    };
  }

  /**
   * The phase of one host, without evaluating its channel's waves when they are not evaluated yet: a
   * phase rests on the host's own latest ack, `now`, its revocation and the operator's retry alone
   * (hostPhase), so it is the value phaseOf gives. trace() of a host reads only this while the host is
   * not pending: its gates, and so the waves, matter only for a pending host (reconciler/trace.ts).
   */
  ownPhaseOf(channel: string, host: string): DerivedPhase {
    const ce = this.channels.get(channel);
    const plan = ce?.plan ?? this.plan(channel);
    const st = planStatic(plan, this.tol);
    const at = st.position.get(host);
    if (at === undefined)
      throw new ReconcilerInputError(`host "${host}" is in no wave of channel "${channel}"`);
    return ce !== undefined
      ? ce.waves[at.wave]!.phases[at.pos]!
      : this.hostPhase(plan, st, at.wave, at.pos);
  }

  phaseOf(channel: string, host: string): DerivedPhase {
    const ce = this.channel(channel);
    const at = ce.position.get(host);
    if (at === undefined)
      throw new ReconcilerInputError(`host "${host}" is in no wave of channel "${channel}"`);
    return ce.waves[at.wave]!.phases[at.pos]!;
  }

  window(channel: string): WindowVerdict {
    let v = this.windows.get(channel);
    // Stryker disable next-line ConditionalExpression: a memo: `true` recomputes the same value (equivalent); `false` returns undefined and fails every test
    if (v === undefined) {
      v = maintenanceWindowAt(this.plan(channel).maintenanceWindows, this.now);
      this.windows.set(channel, v);
    }
    return v;
  }

  haltedReason(ce: ChannelEval): string {
    const w = ce.waves[ce.haltedWave ?? 0]!;
    const names = listWithMore(w.failedHosts, 5);
    const presumed = w.failures - w.failuresReported;
    const why =
      presumed > 0
        ? `, ${presumed} of them presumed: started with no outcome by the confirm deadline`
        : '';
    const controls = complianceFailures(w.wave.hosts, w.phases);
    return (
      `rollout of channel ${ce.plan.channel} is halted: ${waveLabel(w.index)} ` +
      `has ${w.failures} failed host(s) (${names}${why}), more than ` +
      `the ${w.allowedFailures} allowed${controls}; a newly signed release or the operator ` +
      `(nixfleet control resume-halted) resumes it`
    );
  }

  /** Why wave `index` of a channel is not complete, naming the host that holds it. */
  waveReason(ce: ChannelEval, index: number): { text: string; retryAfter: number } {
    const key = `${ce.plan.channel}\u0000${index}`;
    let r = this.waveReasons.get(key);
    // Stryker disable next-line ConditionalExpression: a memo: `true` recomputes the same value (equivalent); `false` returns undefined and fails every test
    if (r === undefined) {
      r = this.computeWaveReason(ce, index);
      this.waveReasons.set(key, r);
    }
    return r;
  }

  private computeWaveReason(ce: ChannelEval, index: number): { text: string; retryAfter: number } {
    const w = ce.waves[index]!;
    const hb = ce.plan.heartbeatSeconds;
    // Stryker disable all: unreachable today (every caller asks only about a wave that is neither halted
    // nor complete: view.ts and gatesFor/channelEdgeHold check the halt first); kept for callers to come
    if (w.halted)
      return { text: this.haltedReason(ce), retryAfter: ce.plan.signingIntervalSeconds };
    // Stryker restore all
    let best = -1;
    for (const pos of w.blocking) {
      if (best < 0) {
        best = pos;
        continue;
      }
      const a = w.phases[pos]!,
        b = w.phases[best]!;
      const oa = BLOCKING_ORDER[a.phase],
        ob = BLOCKING_ORDER[b.phase];
      if (oa < ob || (oa === ob && a.healthySeconds < b.healthySeconds)) best = pos;
    }
    // Stryker disable all: unreachable today, as above (a wave neither halted nor complete has a blocking host)
    if (best < 0)
      return {
        text: `${waveLabel(index)} of channel ${ce.plan.channel} is complete`,
        retryAfter: hb,
      };
    // Stryker restore all
    const host = w.wave.hosts[best]!;
    const ph = w.phases[best]!;
    const others = w.blocking.length - 1;
    const more = others > 0 ? ` (and ${others} more host${others > 1 ? 's' : ''})` : '';
    let what: string;
    let retryAfter = hb;
    switch (ph.phase) {
      case 'healthy': {
        // Stale, or its soak withheld by the compliance gate: the note says why, time alone will not do.
        // Its soak elapsed, its proof is its next ack (a second later): that is soon, time alone does it.
        const awaitingProof = ph.note.includes(AWAITING_PROOF);
        const noted =
          ph.note.includes('stale') || ph.note.includes(SOAK_NOT_COUNTED) || awaitingProof;
        what = noted
          ? `${host} ${describePhase(ph, this.now)}`
          : `${host} healthy for ${soakProgress(ph.healthySeconds, w.wave.soakSeconds)}`;
        if (!noted || awaitingProof)
          retryAfter = Math.max(1, w.wave.soakSeconds - ph.healthySeconds);
        break;
      }
      case 'offline': {
        // Offline excuses only: a deferred host excused by `deferredHosts: excuse` uses none.
        const offline = w.excused.filter((e, i) => e && w.phases[i]!.phase === 'offline').length;
        what = `${host} is offline (${describePhase(ph, this.now)}); ${offline} of ${w.wave.offlineExcuseLimit} offline excuse(s) used`;
        break;
      }
      case 'deferred':
        // Never "offline": the wave says which host defers, why, and that the signed policy holds it.
        what = `${host} is deferred (${describePhase(ph, this.now)}); deferredHosts: hold keeps the wave waiting until it reboots into its target`;
        break;
      default:
        what = `${host} is ${ph.phase === 'pending' ? 'not started' : ph.phase} (${describePhase(ph, this.now)})`;
    }
    return {
      text: `waiting for ${waveLabel(index)} of channel ${ce.plan.channel}: ${what}${more}`,
      retryAfter,
    };
  }

  /** The channel-edge gate of a whole channel (the same for each of its hosts). */
  channelEdgeHold(channel: string): GateHold | null {
    // Stryker disable next-line ConditionalExpression: a memo: `false` recomputes the same hold (equivalent); `true` returns undefined and fails the channel-edge tests
    if (this.channelEdgeHolds.has(channel)) return this.channelEdgeHolds.get(channel)!;
    const plan = this.plan(channel);
    let hold: GateHold | null = null;
    for (const g of plan.gatedBy) {
      const ge = this.channel(g);
      if (ge.plan.releaseVersion !== plan.releaseVersion) {
        hold = {
          gate: 'channel-edge',
          reason: `channel ${channel} is gated by channel ${g}, whose plan is from release ${ge.plan.releaseVersion}, not ${plan.releaseVersion}`,
          retryAfter: plan.signingIntervalSeconds,
        };
      } else if (ge.halted) {
        hold = {
          gate: 'channel-edge',
          reason: `channel ${channel} is gated by channel ${g}, which is halted: ${this.haltedReason(ge)}`,
          retryAfter: plan.signingIntervalSeconds,
        };
      } else if (!ge.complete) {
        const r = this.waveReason(ge, ge.firstIncomplete);
        hold = {
          gate: 'channel-edge',
          reason: `channel ${channel} waits for channel ${g} to complete: ${r.text}`,
          retryAfter: r.retryAfter,
        };
      }
      if (hold !== null) break;
    }
    this.channelEdgeHolds.set(channel, hold);
    return hold;
  }

  /**
   * The shared gates for a host that has not started, in their fixed order. Returns the first gate that
   * holds it, or null.
   */
  gatesFor(channel: string, host: string): GateHold | null {
    const ce = this.channel(channel);
    const plan = ce.plan;
    const at = ce.position.get(host);
    if (at === undefined)
      throw new ReconcilerInputError(`host "${host}" is in no wave of channel "${channel}"`);
    const pause = this.paused.get(channel);
    if (pause !== undefined) {
      return {
        gate: 'paused',
        reason:
          `channel ${channel} is paused by the operator since ${pause.since} ` +
          `(${pause.reason || 'no reason given'}): nothing new starts; activations and ` +
          `rollbacks in flight continue`,
        retryAfter: plan.signingIntervalSeconds,
      };
    }
    if (ce.halted)
      return {
        gate: 'halted',
        reason: this.haltedReason(ce),
        retryAfter: plan.signingIntervalSeconds,
      };
    const edge = this.channelEdgeHold(channel);
    if (edge !== null) return edge;
    if (ce.firstIncomplete < at.wave) {
      const r = this.waveReason(ce, ce.firstIncomplete);
      return { gate: 'earlier-waves', reason: r.text, retryAfter: r.retryAfter };
    }
    for (const before of ce.edgesByAfter.get(host) ?? []) {
      const ph = this.phaseOf(channel, before);
      if (!ph.settled) {
        return {
          gate: 'host-edge',
          reason: `waiting for ${before} (host edge ${before} -> ${host}): ${before} is ${ph.phase} (${describePhase(ph, this.now)})`,
          retryAfter: plan.heartbeatSeconds,
        };
      }
    }
    for (const id of this.budgetsOf(host)) {
      const hold = this.budgetHold(id, this.rankOf(channel, host));
      if (hold !== null) return hold;
    }
    const win = this.window(channel);
    if (!win.open) {
      const retryAfter =
        win.nextStart === null
          ? plan.signingIntervalSeconds
          : Math.max(1, Math.ceil((win.nextStart - this.now) / 1000));
      return {
        gate: 'maintenance-window',
        reason: `channel ${channel}: ${win.reason}`,
        retryAfter,
      };
    }
    return null;
  }

  budgetsOf(host: string): string[] {
    let index = hostBudgets.get(this.input.budgets);
    // Stryker disable next-line ConditionalExpression: a memo: `true` rebuilds the same index (equivalent); `false` leaves it undefined and fails every test
    if (index === undefined) {
      index = new Map();
      for (const b of this.input.budgets.budgets) {
        for (const h of b.hosts) {
          const list = index.get(h);
          if (list === undefined) index.set(h, [b.id]);
          else list.push(b.id);
        }
      }
      hostBudgets.set(this.input.budgets, index);
    }
    return index.get(host) ?? [];
  }

  /** Where a channel's waves start in the rank: after every wave of the channels gating it (transitively). */
  private channelLevel(channel: string, visiting: Set<string> = new Set()): number {
    let levels = channelLevels.get(this.input.plans);
    if (levels === undefined) {
      levels = new Map();
      channelLevels.set(this.input.plans, levels);
    }
    const memo = levels.get(channel);
    if (memo !== undefined) return memo;
    if (visiting.has(channel))
      throw new ReconcilerInputError(`channel edges form a cycle through channel "${channel}"`);
    visiting.add(channel);
    let level = 0;
    for (const g of this.plan(channel).gatedBy)
      level = Math.max(level, this.channelLevel(g, visiting) + this.plan(g).waves.length);
    levels.set(channel, level);
    return level;
  }

  rankOf(channel: string, host: string): RankKey {
    return this.staticRankOf(channel, host);
  }

  /** The rank depends on the plans alone (position, host-edge depth, channel level), never on acks. */
  private staticRankOf(channel: string, host: string): RankKey {
    const st = planStatic(this.plan(channel), this.tol);
    const at = st.position.get(host);
    if (at === undefined)
      throw new ReconcilerInputError(`host "${host}" is in no wave of channel "${channel}"`);
    const depth = st.edgeDepth[at.wave]![at.pos]!;
    return { level: this.channelLevel(channel) + at.wave, channel, depth, pos: at.pos, host };
  }

  /**
   * The budget rule (proof in docs/architecture.md): a host counts every other budget host that is in
   * flight, plus every host ranked before it that is not done, whatever that host's gates look like from
   * here. Only a signed soak proof, failure report or fresh "already on target" makes a host done; a
   * host that is offline, blocked, gated or silent may still start, so it keeps its rank.
   */
  private budget(id: string): BudgetEval {
    const memo = this.budgetEvals.get(id);
    // Stryker disable next-line ConditionalExpression: a memo: `false` recomputes the same value (equivalent); `true` returns undefined and fails every test
    if (memo !== undefined) return memo;
    const b = this.input.budgets.budgets.find((x) => x.id === id)!;
    const order = this.budgetOrder(b);
    const n = order.hosts.length;
    const waitingBefore = new Int32Array(n);
    const inFlightAt = new Uint8Array(b.hosts.length);
    let waiting = 0;
    for (let i = 0; i < n; i++) {
      waitingBefore[i] = waiting;
      const ph = this.phaseOf(order.channels[i]!, order.hosts[i]!);
      if (ph.inFlight) inFlightAt[order.listed[i]!] = 1;
      else if (!ph.done) waiting++;
    }
    const inFlight: string[] = [];
    for (let j = 0; j < b.hosts.length; j++) if (inFlightAt[j] === 1) inFlight.push(b.hosts[j]!);
    const ev: BudgetEval = {
      id,
      max: b.maxInFlight,
      inFlight,
      inFlightSet: new Set(inFlight),
      order,
      waitingBefore,
    };
    this.budgetEvals.set(id, ev);
    return ev;
  }

  private budgetOrder(b: DisruptionBudgets['budgets'][number]): BudgetOrder {
    let byBudgets = budgetOrders.get(this.input.plans);
    // Stryker disable next-line ConditionalExpression: a memo: `true` rebuilds the same index (equivalent); `false` leaves it undefined and fails every test
    if (byBudgets === undefined) {
      byBudgets = new WeakMap();
      budgetOrders.set(this.input.plans, byBudgets);
    }
    let byId = byBudgets.get(this.input.budgets);
    // Stryker disable next-line ConditionalExpression: a memo: `true` rebuilds the same index (equivalent); `false` leaves it undefined and fails every test
    if (byId === undefined) {
      byId = new Map();
      byBudgets.set(this.input.budgets, byId);
    }
    const memo = byId.get(b.id);
    // Stryker disable next-line ConditionalExpression: a memo: `false` recomputes the same value (equivalent); `true` returns undefined and fails every test
    if (memo !== undefined) return memo;
    const keys = b.hosts.map((host, listed) => ({
      key: this.staticRankOf(this.channelOf(host), host),
      listed,
    }));
    // Stable: equal ranks (a host listed twice) keep their listed order.
    keys.sort((x, y) => compareRank(x.key, y.key) || x.listed - y.listed);
    const order: BudgetOrder = {
      hosts: keys.map((k) => k.key.host),
      channels: keys.map((k) => k.key.channel),
      listed: Int32Array.from(keys, (k) => k.listed),
      index: new Map(),
    };
    for (let i = keys.length - 1; i >= 0; i--) order.index.set(order.hosts[i]!, i);
    byId.set(b.id, order);
    return order;
  }

  /** The same count for a single decide() without a shared prepared fleet: one pass, no sort. */
  private budgetCountAhead(
    id: string,
    me: RankKey,
  ): { inFlight: string[]; ahead: number; max: number } {
    const b = this.input.budgets.budgets.find((x) => x.id === id)!;
    const inFlight: string[] = [];
    let ahead = 0;
    for (const host of b.hosts) {
      if (host === me.host) continue;
      const channel = this.channelOf(host);
      const ph = this.phaseOf(channel, host);
      if (ph.inFlight) inFlight.push(host);
      else if (!ph.done && compareRank(this.rankOf(channel, host), me) < 0) ahead++;
    }
    return { inFlight, ahead, max: b.maxInFlight };
  }

  /** Start only if (in flight) + (hosts ranked before me that are not done) < max. */
  private budgetHold(id: string, me: RankKey): GateHold | null {
    // Stryker disable next-line all: which budget count runs (one host's pass, or the fleet's rank order) never changes the answer: tests/reconciler/memo.test.ts asserts decide() alone and with a prepared fleet agree
    if (this.singleHost && !this.budgetEvals.has(id)) {
      const c = this.budgetCountAhead(id, me);
      if (c.inFlight.length + c.ahead < c.max) return null;
      return this.budgetFull(id, me, c.inFlight, c.ahead, c.max);
    }
    const ev = this.budget(id);
    // The deciding host never counts against itself (it may still show a stale in-flight ack).
    const inFlightCount = ev.inFlight.length - (ev.inFlightSet.has(me.host) ? 1 : 0);
    // Hosts ranked strictly before me that are neither done nor in flight (a host listed twice has both
    // entries at its rank: the first one is where the hosts before it end).
    const at = ev.order.index.get(me.host);
    if (at === undefined)
      throw new ReconcilerInputError(`host "${me.host}" is not in disruption budget ${id}`);
    const ahead = ev.waitingBefore[at]!;
    if (inFlightCount + ahead < ev.max) return null;
    return this.budgetFull(
      id,
      me,
      ev.inFlight.filter((h) => h !== me.host),
      ahead,
      ev.max,
    );
  }

  private budgetFull(
    id: string,
    me: RankKey,
    inFlight: string[],
    ahead: number,
    max: number,
  ): GateHold {
    const names = listWithMore(inFlight, 3);
    const plan = this.plan(me.channel);
    return {
      gate: 'disruption-budget',
      reason:
        `disruption budget ${id} is full: ${inFlight.length} host(s) in ` +
        `flight${names ? ` (${names})` : ''} + ${ahead} host(s) ranked ahead ` +
        `of ${me.host} not yet soaked or failed, max ${max}`,
      retryAfter: plan.heartbeatSeconds,
    };
  }

  budgetSummary(id: string): { max: number; inFlight: string[] } {
    const ev = this.budget(id);
    return { max: ev.max, inFlight: ev.inFlight };
  }
}

export { humanDuration };
