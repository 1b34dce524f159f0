// trace(): replays the reconciler over an ack history to explain a rollout after the fact: when each
// host became eligible, which gate held it and for how long, when it activated, confirmed, soaked or
// failed. Acks are replayed as of their signed time; between acks the fleet is re-evaluated every
// `stepSeconds` so soak completions and expiries show up when they happen.
import type { ChannelPlan } from '../protocol/index.ts';
import { FleetContext, ReconcilerInputError, type PlanStatic, type WaveEval } from './context.ts';
import type { DerivedPhase } from './phase.ts';
import { latestAcks } from './acks.ts';
import { parseAckTime } from './time.ts';
import type { AckRecord, FleetInput, Gate, HostPhase } from './types.ts';

export interface TraceInput extends Omit<FleetInput, 'now' | 'acks'> {
  /** Every ack of the hosts involved (any order, duplicates allowed). */
  history: AckRecord[];
  subject: { host: string } | { channel: string };
  /** ms; default: the first and last ack times (the end is extended by the longest soak). */
  from?: number;
  until?: number;
  /**
   * ms: the instant the history was read at. The default period then never extends past it (from:
   * the first ack or `now`, whichever is earlier; until: at most `now`), and an empty history is
   * traced at `now`.
   */
  now?: number;
  /** Re-evaluate at least this often between acks (seconds, default 60). */
  stepSeconds?: number;
  /**
   * 'every-ack' (default): evaluate at every ack time. 'on-change': evaluate every step, and replay
   * every ack time of a step only when a subject host's phase or gate differs at its end: the same
   * trace at a fraction of the cost when few hosts are traced in a long history, except that a change
   * undone within one step is not seen.
   */
  instants?: 'every-ack' | 'on-change';
  /**
   * Carry each wave's evaluation from one instant to the next while it still holds (CarryingContext;
   * default true), and evaluate a subject host's channel only while the host is pending. false
   * evaluates the subjects' channels and every wave afresh at every instant: the reference the tests
   * compare with (tests/reconciler/trace-carry.test.ts).
   */
  carryWaves?: boolean;
  /**
   * Start from the state an earlier replay of the same input kept (its `checkpoint`) instead of from
   * `from`: `history` then holds only the acks signed after `resume.at` (the caller keeps the others
   * out), and `from` and `until` are given (their defaults read the whole history). The trace is the
   * one a replay of the whole history gives (tests/reconciler/trace-resume.test.ts).
   */
  resume?: TraceCheckpoint;
  /**
   * Keep the replay's state just after each of these instants as the result's `checkpoints`: regular
   * steps' ends (`from` + a multiple of the step) before `until`; any other instant keeps none.
   */
  checkpointAt?: readonly number[];
}

/**
 * A replay's state just after instant `at`: every ack signed at or before it applied, every instant up
 * to it evaluated. Replaying on from it with the acks signed after `at` gives the rest of the trace.
 */
export interface TraceCheckpoint {
  /** ms */
  at: number;
  /** Host -> its latest ack at `at` (the reconciler's, latestAcks). */
  acks: Record<string, AckRecord>;
  /** Each subject host's phase and gate at `at` (none before its first evaluation) and since when held. */
  state: [host: string, TraceState][];
  /** The subject hosts' traces so far (holds closed before `at`). */
  hosts: HostTrace[];
  entries: TraceEntry[];
}

/** A subject host's phase and gate at the last instant evaluated, and since when it is held. */
export interface TraceState {
  phase: HostPhase;
  gate: Gate | null;
  reason: string | null;
  holdFrom: number;
}

export interface TraceEntry {
  /** ms */
  at: number;
  host: string;
  phase: HostPhase;
  gate: Gate | null;
  reason: string | null;
}

export interface GateHoldSpan {
  gate: Gate;
  /** ms */
  from: number;
  to: number;
  seconds: number;
  /** The reason when the hold began. */
  reason: string;
}

export interface HostTrace {
  host: string;
  channel: string;
  wave: number;
  /** ms; null when it never happened within the traced period */
  eligibleAt: number | null;
  activatedAt: number | null;
  confirmedAt: number | null;
  soakedAt: number | null;
  failedAt: number | null;
  /** Why it failed: the signed failure report's reason, or the missed confirm deadline. */
  failedReason: string | null;
  holds: GateHoldSpan[];
}

export interface Trace {
  from: number;
  until: number;
  entries: TraceEntry[];
  hosts: HostTrace[];
  /** The states kept at TraceInput.checkpointAt that were steps' ends before `until`, in time order. */
  checkpoints?: TraceCheckpoint[];
}

export function trace(input: TraceInput): Trace {
  const subjectHosts: { host: string; channel: string; wave: number }[] = [];
  if ('host' in input.subject) {
    const host = input.subject.host;
    const channel = Object.values(input.plans).find((p) => p.hosts[host] !== undefined);
    if (channel === undefined)
      throw new ReconcilerInputError(`host "${host}" is in none of the channel plans`);
    subjectHosts.push({ host, channel: channel.channel, wave: channel.hosts[host]!.wave });
  } else {
    const plan = input.plans[input.subject.channel];
    if (plan === undefined)
      throw new ReconcilerInputError(`channel "${input.subject.channel}" has no plan`);
    for (const w of plan.waves)
      for (const h of w.hosts) subjectHosts.push({ host: h, channel: plan.channel, wave: w.index });
  }

  // By time only: applyUntil keeps each host's highest seq among the acks up to an instant, so the order
  // of acks within one instant does not matter.
  // Positions sorted by a typed array of times, not an object per ack (~60,000 in a 10,000-host trace).
  const history = input.history;
  const timeOf = new Float64Array(history.length);
  for (let i = 0; i < history.length; i++) timeOf[i] = parseAckTime(history[i]!.time);
  const order = timeOrder(timeOf);
  const resume = input.resume;
  if (resume !== undefined && (input.from === undefined || input.until === undefined))
    throw new ReconcilerInputError('a resumed trace is given its period (from, until)');
  if (resume !== undefined && order.length > 0 && timeOf[order[0]!]! <= resume.at)
    throw new ReconcilerInputError('a resumed trace is given only the acks after its checkpoint');
  const { from, until } = tracePeriod(
    input,
    order.length > 0 ? [timeOf[order[0]!]!, timeOf[order[order.length - 1]!]!] : null,
  );
  const step = (input.stepSeconds ?? 60) * 1000;

  // Evaluation instants: every ack time, plus regular steps, distinct and in order (a typed array's
  // native numeric sort, then one pass: ~60,000 ack times fall on a few thousand distinct seconds).
  // Resumed: those after the checkpoint only (the earlier ones were replayed by the run that kept it).
  const after = resume?.at ?? -Infinity;
  const candidates: number[] = [];
  for (const t of timeOf) if (t >= from && t <= until) candidates.push(t);
  for (let t = from; t <= until; t += step) candidates.push(t);
  candidates.push(until);
  const times: number[] = [];
  for (const t of Float64Array.from(candidates).sort())
    if (t > after && (times.length === 0 || t !== times[times.length - 1])) times.push(t);

  const acks: Record<string, AckRecord> = Object.assign(
    Object.create(null) as Record<string, AckRecord>,
    resume?.acks,
  );
  let next = 0;
  const state = new Map<string, TraceState>(
    (resume?.state ?? []).map(([host, s]) => [host, { ...s }]),
  );
  const traces = new Map<string, HostTrace>(
    subjectHosts.map((s) => [
      s.host,
      {
        ...s,
        eligibleAt: null,
        activatedAt: null,
        confirmedAt: null,
        soakedAt: null,
        failedAt: null,
        failedReason: null,
        holds: [],
      },
    ]),
  );
  for (const h of resume?.hosts ?? [])
    if (traces.has(h.host)) traces.set(h.host, { ...h, holds: [...h.holds] });
  const entries: TraceEntry[] = [...(resume?.entries ?? [])];
  const checkpoints: TraceCheckpoint[] = [];
  const keepCheckpoint = (t: number): void => {
    if (!input.checkpointAt?.includes(t) || t >= until || (t - from) % step !== 0) return;
    checkpoints.push({
      at: t,
      acks: Object.assign(Object.create(null) as Record<string, AckRecord>, acks),
      state: [...state].map(([host, s]) => [host, { ...s }]),
      hosts: [...traces.values()].map((h) => ({ ...h, holds: [...h.holds] })),
      entries: [...entries],
    });
  };

  const evaluate = (
    t: number,
  ): {
    host: string;
    phase: HostPhase;
    gate: Gate | null;
    reason: string | null;
    note: string | null;
  }[] => {
    const fleet: FleetInput = {
      now: t,
      plans: input.plans,
      budgets: input.budgets,
      revocations: input.revocations,
      acks,
      tolerances: input.tolerances,
    };
    const ctx = carried === null ? new FleetContext(fleet) : new CarryingContext(fleet, carried);
    return subjectHosts.map((s) => {
      // A host's trace: the gates (and through them the waves' evaluations) only while it is pending;
      // any other phase is the host's own (ownPhaseOf). A channel's hosts are read from its evaluation
      // (one pass over each wave), as is the reference's (carryWaves: false) host.
      const ph = ownOnly ? ctx.ownPhaseOf(s.channel, s.host) : ctx.phaseOf(s.channel, s.host);
      const hold = ph.phase === 'pending' ? ctx.gatesFor(s.channel, s.host) : null;
      // A pending host's reason is the gate holding it; any other phase's is what the acks say (note).
      return {
        host: s.host,
        phase: ph.phase,
        gate: hold?.gate ?? null,
        reason: hold?.reason ?? (ph.phase === 'pending' ? null : ph.note),
        note: ph.note,
      };
    });
  };
  // Every change to `acks` goes through setAck: it tells the carried evaluations which channel changed,
  // and, during a step that may be replayed, keeps what it replaced so the step can be undone.
  const carried = input.carryWaves === false ? null : new CarriedWaves(input.plans);
  const ownOnly = carried !== null && 'host' in input.subject;
  // Two parallel lists (host, the ack it had), not a pair per change: a step changes thousands.
  let undo: { hosts: string[]; acks: (AckRecord | undefined)[] } | null = null;
  const setAck = (host: string, ack: AckRecord | undefined): void => {
    if (undo !== null) {
      undo.hosts.push(host);
      undo.acks.push(acks[host]);
    }
    if (ack === undefined) delete acks[host];
    else acks[host] = ack;
    carried?.changed(host);
  };
  const applyUntil = (t: number): void => {
    while (next < order.length && timeOf[order[next]!]! <= t) {
      const a = history[order[next]!]!;
      const prev = acks[a.host];
      // The ack the reconciler would keep (latestAcks: highest seq; of equal-seq forks, the same one).
      const kept =
        prev === undefined || a.seq > prev.seq
          ? a
          : a.seq < prev.seq
            ? prev
            : latestAcks([prev, a])[a.host]!;
      if (kept !== prev) setAck(a.host, kept);
      next++;
    }
  };
  const record = (t: number): void => {
    for (const { host, phase, gate, reason, note } of evaluate(t)) {
      const tr = traces.get(host)!;
      const old = state.get(host);
      if (phase === 'pending' && gate === null && tr.eligibleAt === null) tr.eligibleAt = t;
      if ((phase === 'activating' || phase === 'confirming') && tr.activatedAt === null)
        tr.activatedAt = t;
      if (phase === 'healthy' && tr.confirmedAt === null) tr.confirmedAt = t;
      if (phase === 'soaked' && tr.soakedAt === null) tr.soakedAt = t;
      if (phase === 'failed' && tr.failedAt === null) {
        tr.failedAt = t;
        tr.failedReason = note;
      }
      if (old !== undefined && old.phase === phase && old.gate === gate) continue;
      if (old !== undefined && old.gate !== null) {
        tr.holds.push({
          gate: old.gate,
          from: old.holdFrom,
          to: t,
          seconds: (t - old.holdFrom) / 1000,
          // A held host always has its gate's reason: the '' fallback is unreachable.
          // Stryker disable next-line StringLiteral: equivalent (unreachable)
          reason: old.reason ?? '',
        });
      }
      // A host that started without ever being seen eligible (e.g. between two instants) was eligible then.
      if (tr.eligibleAt === null && tr.activatedAt !== null) tr.eligibleAt = tr.activatedAt;
      state.set(host, { phase, gate, reason, holdFrom: t });
      entries.push({ at: t, host, phase, gate, reason });
    }
  };

  if (input.instants !== 'on-change') {
    for (const t of times) {
      applyUntil(t);
      record(t);
      keepCheckpoint(t);
    }
  } else {
    // Steps first; a step whose end differs for some subject (or the first) is replayed instant by instant.
    const steps = [
      ...new Set([...times.filter((t) => (t - from) % step === 0 || t === until)]),
    ].sort((a, b) => a - b);
    let i = 0;
    for (const end of steps) {
      const nextBefore = next;
      undo = { hosts: [], acks: [] };
      applyUntil(end);
      const replaced = undo;
      undo = null;
      const unchanged =
        state.size === subjectHosts.length &&
        evaluate(end).every((e) => {
          const old = state.get(e.host)!;
          return old.phase === e.phase && old.gate === e.gate;
        });
      if (unchanged) {
        while (i < times.length && times[i]! <= end) i++;
        keepCheckpoint(end);
        continue;
      }
      // Undo the step (newest change first), then replay it instant by instant.
      for (let k = replaced.hosts.length - 1; k >= 0; k--)
        setAck(replaced.hosts[k]!, replaced.acks[k]);
      next = nextBefore;
      for (; i < times.length && times[i]! <= end; i++) {
        applyUntil(times[i]!);
        record(times[i]!);
      }
      keepCheckpoint(end);
    }
  }
  for (const [host, st] of state) {
    if (st.gate !== null) {
      const tr = traces.get(host)!;
      tr.holds.push({
        gate: st.gate,
        from: st.holdFrom,
        to: until,
        seconds: (until - st.holdFrom) / 1000,
        // A held host always has its gate's reason: the '' fallback is unreachable.
        // Stryker disable next-line StringLiteral: equivalent (unreachable)
        reason: st.reason ?? '',
      });
    }
  }
  return {
    from,
    until,
    entries,
    hosts: [...traces.values()],
    ...(input.checkpointAt === undefined ? {} : { checkpoints }),
  };
}

/**
 * The traced period: `from` and `until` as given, else from the first and last ack times (`span`,
 * null: no ack): first ack .. last ack + the longest soak, never past `now` when it is given (an empty
 * history is traced at `now`).
 */
export function tracePeriod(
  input: Pick<TraceInput, 'plans' | 'from' | 'until' | 'now'>,
  span: readonly [first: number, last: number] | null,
): { from: number; until: number } {
  const [first, last] = span ?? [input.now ?? 0, input.now ?? 0];
  let maxSoak = 0;
  for (const p of Object.values(input.plans))
    for (const w of p.waves) maxSoak = Math.max(maxSoak, w.soakSeconds);
  const now = input.now;
  const from = input.from ?? (now === undefined ? first : Math.min(first, now));
  const until =
    input.until ??
    (now === undefined
      ? last + maxSoak * 1000
      : Math.max(from, Math.min(now, last + maxSoak * 1000)));
  return { from, until };
}

/**
 * The positions of `timeOf` in time order, equal times in position order (as a stable sort). Ack times
 * are whole seconds, so each position is packed with its time into one exact number, (seconds after
 * the first) * n + position, and a typed array's native numeric sort orders them: several times faster
 * than a comparator over ~60,000 positions. Times that are not whole seconds, or a span too long to
 * pack exactly, are sorted by a comparator.
 */
export function timeOrder(timeOf: Float64Array): number[] {
  const n = timeOf.length;
  let min = Infinity;
  let max = -Infinity;
  let wholeSeconds = true;
  for (const t of timeOf) {
    if (t < min) min = t;
    if (t > max) max = t;
    if (t % 1000 !== 0) wholeSeconds = false;
  }
  if (n === 0) return [];
  if (!wholeSeconds || ((max - min) / 1000 + 1) * n > Number.MAX_SAFE_INTEGER)
    return Array.from(timeOf, (_, i) => i).sort((x, y) => timeOf[x]! - timeOf[y]!);
  const keys = new Float64Array(n);
  for (let i = 0; i < n; i++) keys[i] = ((timeOf[i]! - min) / 1000) * n + i;
  keys.sort();
  const order = new Array<number>(n);
  for (let i = 0; i < n; i++) order[i] = keys[i]! % n;
  return order;
}

/** A wave's evaluation at some instant and where it still holds. */
interface CarriedWave {
  ev: WaveEval;
  /** The wave's ack version it was computed at (CarriedWaves.changed bumps it). */
  version: number;
  acceptedUntil: number;
  /** ms: every host phase in it holds for `now` in [from, until). */
  from: number;
  until: number;
}

/** One wave in a trace: its ack version, the positions changed since its carried evaluation, and that. */
interface WaveState {
  version: number;
  changedAt: Set<number>;
  carried: CarriedWave | undefined;
}

/**
 * The wave evaluations carried between the instants of one trace, each wave's ack version, and the
 * positions of the hosts whose ack changed since the wave's carried evaluation.
 */
class CarriedWaves {
  /** channel -> its waves' states, by wave index. */
  private readonly channels = new Map<string, WaveState[]>();
  /** host -> its wave's state and its position in it (every ack of a trace passes here). */
  private readonly hosts = new Map<string, { wave: WaveState; pos: number }>();

  constructor(plans: FleetInput['plans']) {
    for (const [name, plan] of Object.entries(plans)) {
      const states = plan.waves.map((w): WaveState => ({
        version: 0,
        changedAt: new Set(),
        carried: undefined,
      }));
      this.channels.set(name, states);
      for (const [wi, w] of plan.waves.entries())
        w.hosts.forEach((h, pos) => this.hosts.set(h, { wave: states[wi]!, pos }));
    }
  }

  /** The latest ack of `host` changed: evaluations of its wave no longer hold. */
  changed(host: string): void {
    const w = this.hosts.get(host);
    // A wave not evaluated yet has nothing to invalidate (a host's trace evaluates few waves, if any).
    if (w === undefined || w.wave.carried === undefined) return;
    w.wave.version++;
    w.wave.changedAt.add(w.pos);
  }

  /** Wave `wi` of channel `channel`. */
  state(channel: string, wi: number): WaveState {
    return this.channels.get(channel)![wi]!;
  }

  /** `c` is now the wave's carried evaluation (at its current version). */
  carry(s: WaveState, c: CarriedWave): void {
    s.carried = c;
    s.changedAt.clear();
  }
}

/**
 * A FleetContext that reuses a wave's evaluation from an earlier instant of the trace while it still
 * holds. A WaveEval (phases, excuses, failures, blocking hosts, completion) is a function of the wave's
 * hosts' latest acks, of each host's phase and of the operator's accepted halt (acceptedUntil), and a
 * derived phase is the same for every `now` in its validity interval (reconciler/phase.ts; the context
 * itself reuses phases on that ground). So while none of the wave's hosts' acks changed and `now` is
 * inside every phase's interval, evaluating it again gives the same evaluation: at ~10,000 hosts in
 * chained channels that re-evaluation was most of a trace, while acks at an instant touch one or two
 * waves. Channels, gates (reasons with ages, budgets, windows) are still computed at every instant.
 */
class CarryingContext extends FleetContext {
  constructor(
    input: FleetInput,
    private readonly carried: CarriedWaves,
  ) {
    super(input);
  }

  protected override wave(
    plan: ChannelPlan,
    st: PlanStatic,
    wi: number,
    acceptedUntil: number,
  ): WaveEval {
    const s = this.carried.state(plan.channel, wi);
    const c = s.carried;
    const version = s.version;
    const holds =
      c !== undefined &&
      c.acceptedUntil === acceptedUntil &&
      this.now >= c.from &&
      this.now < c.until;
    if (holds && c.version === version) return c.ev;
    let ev: WaveEval;
    let from = -Infinity;
    let until = Infinity;
    const within = (ph: DerivedPhase) => {
      if (ph.validFrom > from) from = ph.validFrom;
      if (ph.validUntil < until) until = ph.validUntil;
    };
    if (holds) {
      // Some hosts' acks changed since: every other host's phase still holds at this instant (it is
      // inside every phase's interval), so only theirs are derived again, and the wave's counts are
      // adjusted by their old and new phases (waveUpdated). The new evaluation holds within the old
      // one's interval (which bounds the others' phases) and the new phases': narrower than the exact
      // intersection at worst, which only re-evaluates sooner.
      ({ from, until } = c);
      const phases = c.ev.phases.slice();
      const changed = s.changedAt;
      for (const pos of changed) within((phases[pos] = this.hostPhase(plan, st, wi, pos)));
      ev = this.waveUpdated(plan, wi, c.ev, phases, changed, acceptedUntil);
    } else {
      ev = super.wave(plan, st, wi, acceptedUntil);
      for (const ph of ev.phases) within(ph);
    }
    this.carried.carry(s, { ev, version, acceptedUntil, from, until });
    return ev;
  }
}
