// Deterministic discrete-event simulator: N simulated agents, each running the real decide() on its
// own (skewed) clock over the acks visible to it, with poll jitter, activation durations, random health
// failures, hosts going offline, and acks that become visible late and out of order. A seed replays a
// run exactly. Properties are checked against ground truth (what really happened), independently of
// the reconciler's own bookkeeping.
import { decide, prepareFleet, type PreparedFleet } from '../decide.ts';
import { fleetView } from '../view.ts';
import { allowedFailures } from '../context.ts';
import type {
  AckRecord,
  Decision,
  FleetInput,
  FleetView,
  GenerationRef,
  PendingActivation,
  QuarantineEntry,
  Tolerances,
} from '../types.ts';
import type { AckKind } from '../../protocol/index.ts';
import type { BuiltFleet } from './builders.ts';
import { makeAck } from './builders.ts';
import { EventQueue, Rng } from './random.ts';
import { parseAckTime } from '../time.ts';

export interface SimConfig {
  seed: number;
  fleet: BuiltFleet;
  pollSeconds?: number;
  /** Each poll interval varies by up to this many seconds either way. */
  pollJitterSeconds?: number;
  /** Switch duration range (seconds). */
  activationSeconds?: [number, number];
  /** From switch to the healthy ack (probes). */
  probeSeconds?: number;
  /** Probability that an activation fails its health probes. */
  failureRate?: number;
  /** These hosts always fail their probes. */
  failingHosts?: string[];
  /** Probability that a host has one offline episode, and its length range (seconds). */
  offlineRate?: number;
  offlineSeconds?: [number, number];
  /** Window (seconds from the start) in which offline episodes begin. */
  offlineStartWithin?: number;
  /** Hosts' clocks are off by one of -s, 0, +s (whole seconds, within the tolerance). */
  clockSkewSeconds?: number;
  /** Each ack becomes visible to the other hosts after a delay in this range (seconds). */
  ackDelaySeconds?: [number, number];
  /** Probability that an ack never becomes visible to the other hosts (lost, or withheld by the control plane). */
  ackLossRate?: number;
  /**
   * Make acks visible only at whole seconds (at least the next one), so hosts polling in the same second
   * share one prepared fleet. Adds up to 1 s of ack lag; meant for large runs. Default false.
   */
  batchVisibility?: boolean;
  /** With batchVisibility: polls and ack visibility align to multiples of this many seconds (default 1). */
  timeQuantumSeconds?: number;
  /** These hosts' new closures need a reboot: they defer, then reboot this long after. */
  inhibitedHosts?: string[];
  rebootDelaySeconds?: number;
  /**
   * Keep every ack in SimResult.history (default true). Large runs turn it off: at 100,000 hosts the
   * history is millions of acks (gigabytes); `ackCount` still counts them.
   */
  recordHistory?: boolean;
  maxSeconds?: number;
  /** ms */
  startAt?: number;
  tolerances?: Partial<Tolerances>;
}

export interface StartRecord {
  host: string;
  channel: string;
  wave: number;
  /** seconds since the start */
  at: number;
}

export interface HistoryEntry {
  ack: AckRecord;
  /** ms (true time) */
  postedAt: number;
  visibleAt: number;
}

export interface SimResult {
  seed: number;
  hosts: number;
  /**
   * Every host runs its target and has proved its soak, or failed (rolled back) within its wave's failure
   * threshold (a failure beyond it halts the rollout, so the others never settle).
   */
  converged: boolean;
  /** Seconds from the start until the last soak proof became visible (null if not converged). */
  completedAt: number | null;
  endedAt: number;
  theoreticalMinimum: number;
  starts: StartRecord[];
  failures: string[];
  rollbacks: string[];
  decisions: number;
  /** Acks posted (history.length when the history is recorded). */
  ackCount: number;
  /**
   * Ground-truth property violations: wave order, channel edges, starts in a halted rollout, and any start
   * that puts more hosts truly in flight than a budget's max (the bound proven in docs/architecture.md holds
   * under any ack delay, loss or reordering).
   */
  violations: string[];
  /** Per budget: its max and the highest true in-flight count seen at any start. */
  budgets: Record<string, { max: number; observed: number }>;
  history: HistoryEntry[];
  finalView: FleetView;
}

type SimEvent =
  | { kind: 'poll'; host: string }
  | { kind: 'switched'; host: string }
  | { kind: 'probed'; host: string }
  | { kind: 'soak-beat'; host: string }
  | { kind: 'visible'; ack: AckRecord };

interface SimHost {
  name: string;
  channel: string;
  wave: number;
  skewMs: number;
  current: string;
  generation: number;
  pending: PendingActivation | null;
  previous: GenerationRef | null;
  quarantine: QuarantineEntry[];
  seq: number;
  /** When it last posted an ack (its hello comes first, before the start). */
  lastAckAt: number;
  lastKind: AckKind | null;
  healthySince: number | null;
  failed: boolean;
  busy: boolean;
  offlineFrom: number;
  offlineUntil: number;
  inhibited: boolean;
  deferredAt: number | null;
  soakProvedAt: number | null;
  startedAt: number | null;
  inFlight: boolean;
}

export function theoreticalMinimum(
  fleet: BuiltFleet,
  pollSeconds: number,
  activationMax: number,
  probeSeconds: number,
): number {
  // Per wave: one poll interval to notice, the slowest switch plus probes, then the soak; channels add
  // up along the longest chain of channel edges.
  const memo = new Map<string, number>();
  const channelTime = (name: string): number => {
    const m = memo.get(name);
    if (m !== undefined) return m;
    const plan = fleet.plans[name]!;
    let own = 0;
    for (const w of plan.waves)
      if (w.hosts.length > 0) own += pollSeconds + activationMax + probeSeconds + w.soakSeconds;
    let before = 0;
    for (const g of plan.gatedBy) before = Math.max(before, channelTime(g));
    memo.set(name, before + own);
    return before + own;
  };
  let total = 0;
  for (const name of Object.keys(fleet.plans)) total = Math.max(total, channelTime(name));
  return total;
}

/**
 * Runs the simulation: the hosts say hello and schedule their first polls, then events run in time order
 * until the rollout converges (and its last proof is visible), stalls, or time runs out.
 */
export function simulate(config: SimConfig): SimResult {
  const sim = new Simulation(config);
  sim.addHosts();
  const lastEventAt = sim.run();
  return sim.result(lastEventAt);
}

/** A simulated agent quarantines a target it rolled back from for a day, as the real agent does. */
const QUARANTINE_MS = 24 * 3600_000;
/** Longest ack reason the simulated agent sends (a rollback's reason can be long). */
const REASON_MAX = 200;

/** The config with its defaults applied, times in ms. */
interface Settings {
  start: number;
  maxMs: number;
  poll: number;
  jitter: number;
  actMin: number;
  actMax: number;
  probe: number;
  delayMin: number;
  delayMax: number;
  lossRate: number;
  skew: number;
  failing: Set<string>;
  failureRate: number;
  inhibited: Set<string>;
  rebootDelay: number;
  offlineRate: number;
  offlineSeconds: [number, number];
  offlineStartWithin: number;
  batch: boolean;
  quantum: number;
  recordHistory: boolean;
}

function settingsOf(config: SimConfig): Settings {
  const [actMin, actMax] = config.activationSeconds ?? [20, 40];
  const [delayMin, delayMax] = config.ackDelaySeconds ?? [0, 0];
  const batch = config.batchVisibility ?? false;
  return {
    start: config.startAt ?? Date.UTC(2026, 0, 1),
    maxMs: (config.maxSeconds ?? 7 * 24 * 3600) * 1000,
    poll: (config.pollSeconds ?? 60) * 1000,
    jitter: (config.pollJitterSeconds ?? 5) * 1000,
    actMin,
    actMax,
    probe: (config.probeSeconds ?? 10) * 1000,
    delayMin,
    delayMax,
    lossRate: config.ackLossRate ?? 0,
    skew: config.clockSkewSeconds ?? 0,
    failing: new Set(config.failingHosts ?? []),
    failureRate: config.failureRate ?? 0,
    inhibited: new Set(config.inhibitedHosts ?? []),
    rebootDelay: (config.rebootDelaySeconds ?? 120) * 1000,
    offlineRate: config.offlineRate ?? 0,
    offlineSeconds: config.offlineSeconds ?? [600, 1800],
    offlineStartWithin: config.offlineStartWithin ?? 3600,
    batch,
    quantum: (batch ? (config.timeQuantumSeconds ?? 1) : 1) * 1000,
    recordHistory: config.recordHistory ?? true,
  };
}

const sec = (ms: number) => Math.round(ms / 1000) * 1000;
const waveKey = (h: { channel: string; wave: number }) => `${h.channel}/${h.wave}`;

/**
 * One run's state: the world the hosts see (visible acks, the event queue, each host's local state) and
 * the ground truth the properties are checked against. Ground-truth counters are kept incrementally, so
 * checking a start costs O(waves + budgets), not O(hosts).
 */
class Simulation {
  private readonly seed: number;
  private readonly s: Settings;
  private readonly rng: Rng;
  private readonly f: BuiltFleet;
  private readonly hosts = new Map<string, SimHost>();
  private readonly queue = new EventQueue<SimEvent>();
  /** The acks visible to the hosts, and a version that changes whenever they do. */
  private readonly acks: Record<string, AckRecord> = Object.create(null) as Record<
    string,
    AckRecord
  >;
  private version = 0;
  private readonly base: Omit<FleetInput, 'now'>;
  private cacheVersion = -1;
  private cache = new Map<number, { input: FleetInput; prepared: PreparedFleet }>();

  // What really happened.
  private readonly history: HistoryEntry[] = [];
  private ackCount = 0;
  private decisions = 0;
  private readonly starts: StartRecord[] = [];
  private readonly failures: string[] = [];
  private readonly rollbacks: string[] = [];
  private readonly violations: string[] = [];
  private readonly budgetObserved: Record<string, { max: number; observed: number }> = {};
  private readonly budgetsOf = new Map<string, string[]>();
  private proved = 0;
  private failedHosts = 0;
  /** "channel/wave" -> hosts that failed. */
  private readonly failedIn = new Map<string, number>();
  /** "channel/wave" -> hosts with a soak proof posted. */
  private readonly provedIn = new Map<string, number>();
  /** "channel/wave" -> visible failure acks of this rollout. */
  private readonly failuresVisible = new Map<string, number>();
  /** Budget id -> hosts truly in flight. */
  private readonly inFlightIn = new Map<string, number>();
  /** When the last soak proof counts (see postAck): kept as acks are posted, not rescanned. */
  private lastProofVisible: number;
  private lastProgress: number;
  private maxOfflineUntil: number;
  private completedAt: number | null = null;

  constructor(config: SimConfig) {
    this.seed = config.seed;
    this.s = settingsOf(config);
    this.rng = new Rng(config.seed);
    this.f = config.fleet;
    this.lastProofVisible = this.lastProgress = this.maxOfflineUntil = this.s.start;
    for (const b of this.f.budgets.budgets) {
      this.budgetObserved[b.id] = { max: b.maxInFlight, observed: 0 };
      for (const h of b.hosts) this.budgetsOf.set(h, [...(this.budgetsOf.get(h) ?? []), b.id]);
    }
    this.base = {
      plans: this.f.plans,
      budgets: this.f.budgets,
      revocations: this.f.revocations,
      acks: this.acks,
      tolerances: config.tolerances,
    };
  }

  /** Every host, in name order (the seed's draws depend on it): its state, a hello, its first poll. */
  addHosts(): void {
    const { start, poll } = this.s;
    for (const name of Object.keys(this.f.manifests).sort()) {
      const h = this.newHost(name);
      this.scheduleOffline(h);
      this.hosts.set(name, h);
      // Every host has said hello before the release appears, so none starts out "offline".
      this.postAck(h, 'heartbeat', start - 1000 * this.rng.int(1, 30), null);
      this.queue.push(this.align(start + sec(this.rng.next() * poll)), {
        kind: 'poll',
        host: name,
      });
    }
  }

  private newHost(name: string): SimHost {
    const m = this.f.manifests[name]!;
    const skew = this.s.skew;
    return {
      name,
      channel: m.channel,
      wave: m.wave,
      skewMs: skew === 0 ? 0 : this.rng.int(-1, 1) * skew * 1000,
      current: this.f.previous[name]!,
      generation: 1,
      pending: null,
      previous: null,
      quarantine: [],
      seq: 0,
      lastAckAt: -Infinity,
      lastKind: null,
      healthySince: null,
      failed: false,
      busy: false,
      offlineFrom: Infinity,
      offlineUntil: -Infinity,
      inhibited: this.s.inhibited.has(name),
      deferredAt: null,
      soakProvedAt: null,
      startedAt: null,
      inFlight: false,
    };
  }

  /** With probability offlineRate, one offline episode starting within offlineStartWithin. */
  private scheduleOffline(h: SimHost): void {
    const { offlineRate, offlineSeconds, offlineStartWithin, start } = this.s;
    if (!this.rng.chance(offlineRate)) return;
    const [a, b] = offlineSeconds;
    h.offlineFrom = start + sec(this.rng.next() * offlineStartWithin * 1000);
    h.offlineUntil = h.offlineFrom + this.rng.int(a, b) * 1000;
    this.maxOfflineUntil = Math.max(this.maxOfflineUntil, h.offlineUntil);
  }

  /** Runs events in time order until the run is over; returns the time of the last event. */
  run(): number {
    let t = this.s.start;
    while (this.queue.size > 0) {
      const ev = this.queue.pop()!;
      t = ev.t;
      if (t - this.s.start > this.s.maxMs) break;
      if (ev.e.kind === 'visible') {
        this.makeVisible(ev.e.ack);
        continue;
      }
      const h = this.hosts.get(ev.e.host)!;
      if (ev.e.kind === 'poll') {
        this.schedulePoll(h, t);
        // A host offline or mid-switch misses this poll (and the run's end is not checked at it).
        if (this.isOffline(h, t) || h.busy) continue;
        this.onPoll(h, t);
      } else if (ev.e.kind === 'switched') this.onSwitched(h, t);
      else if (ev.e.kind === 'probed') this.onProbed(h, t);
      else this.onSoakBeat(h, t);
      if (this.isOver(t)) break;
    }
    return t;
  }

  /** Converged and its last proof visible, or nothing has moved for long and nobody is mid-switch. */
  private isOver(t: number): boolean {
    if (this.proved + this.failedHosts === this.hosts.size && this.completedAt === null)
      if (this.withinThresholds()) this.completedAt = this.lastProofVisible;
    if (this.completedAt !== null) return t > this.completedAt;
    const quiet = 3 * this.s.poll + 2 * 3600_000;
    return (
      t - this.lastProgress > quiet &&
      t > this.maxOfflineUntil &&
      ![...this.hosts.values()].some((x) => x.busy)
    );
  }

  /** The agent's timer fires every poll interval, give or take the jitter. */
  private schedulePoll(h: SimHost, t: number): void {
    const { poll, jitter } = this.s;
    const nextPoll = t + poll + this.rng.int(-jitter / 1000, jitter / 1000) * 1000;
    this.queue.push(this.align(nextPoll), { kind: 'poll', host: h.name });
  }

  /** A poll: heartbeat if due, decide on the host's own clock, act. */
  private onPoll(h: SimHost, t: number): void {
    this.heartbeatIfDue(h, t);
    const now = t + h.skewMs;
    const d = this.decideFor(h, now);
    this.decisions++;
    this.act(h, t, now, d);
  }

  private heartbeatIfDue(h: SimHost, t: number): void {
    const plan = this.f.plans[h.channel]!;
    const hb = plan.heartbeatSeconds * 1000;
    // Hosts on their target heartbeat for soak freshness; the others only need to stay inside the
    // offline window.
    const every =
      h.current === this.f.manifests[h.name]!.target || h.failed
        ? Math.min(hb, this.s.poll) / 2
        : (plan.offlineWindowSeconds * 1000) / 3;
    if (t - h.lastAckAt >= every)
      this.postAck(h, this.heartbeatKind(h), t, h.failed ? 'activation failed' : null);
  }

  /** The real decide() over the acks visible now, on the host's own clock. */
  private decideFor(h: SimHost, now: number): Decision {
    const m = this.f.manifests[h.name]!;
    const { input, prepared } = this.preparedAt(now);
    return decide(
      {
        ...input,
        manifest: m,
        freshness: { status: 'fresh' },
        local: {
          current: h.current,
          pending: h.pending,
          previous: h.previous,
          quarantine: h.quarantine,
        },
        inhibitor: h.inhibited && h.current !== m.target ? 'kernel changed' : null,
      },
      prepared,
    );
  }

  /** Hosts polling at the same instant over the same acks share one prepared fleet. */
  private preparedAt(now: number): { input: FleetInput; prepared: PreparedFleet } {
    if (this.cacheVersion !== this.version) {
      this.cache = new Map();
      this.cacheVersion = this.version;
    }
    let c = this.cache.get(now);
    if (c === undefined) {
      const input: FleetInput = { now, ...this.base };
      c = { input, prepared: prepareFleet(input) };
      // The bound only limits memory: a prepared fleet depends on its input alone.
      // Stryker disable next-line all: equivalent (see above)
      if (this.cache.size > 8) this.cache.clear();
      this.cache.set(now, c);
    }
    return c;
  }

  private act(h: SimHost, t: number, now: number, d: Decision): void {
    switch (d.kind) {
      case 'activate':
        this.begin(h, t, d, now);
        break;
      case 'defer':
        if (h.deferredAt === null) {
          h.deferredAt = t;
          this.postAck(h, 'deferred', t, d.inhibitor);
        } else if (d.reboot.allowed && t - h.deferredAt >= this.s.rebootDelay) {
          this.begin(h, t, d, now); // the reboot into the staged closure is the disruption
        }
        break;
      case 'rollback':
        this.rollBack(h, d.to, t, now, d.reason.slice(0, REASON_MAX), this.rollbacks);
        break;
      default:
        break;
    }
  }

  /** Starts an activation (or the reboot into a staged one): checked against ground truth first. */
  private begin(
    h: SimHost,
    t: number,
    d: Decision & { kind: 'activate' | 'defer' },
    now: number,
  ): void {
    this.checkStart(h, t);
    const m = this.f.manifests[h.name]!;
    h.pending = {
      target: m.target,
      rolloutId: m.rolloutId,
      previous: { generation: h.generation, path: h.current },
      deadline:
        d.kind === 'activate'
          ? d.deadline
          : d.reboot.allowed
            ? d.reboot.deadline
            : // Unreachable: act() begins a deferral only when its reboot is allowed.
              // Stryker disable next-line all: equivalent (unreachable)
              now + m.confirmDeadlineSeconds * 1000,
    };
    h.busy = true;
    this.postAck(h, 'started', t, null);
    const switchMs = this.rng.int(this.s.actMin, this.s.actMax) * 1000;
    this.queue.push(t + switchMs, { kind: 'switched', host: h.name });
  }

  private onSwitched(h: SimHost, t: number): void {
    h.current = this.f.manifests[h.name]!.target;
    h.generation++;
    this.postAck(h, 'activated', t, null);
    this.queue.push(t + this.s.probe, { kind: 'probed', host: h.name });
    this.lastProgress = t;
  }

  /** The health probes' verdict: roll back, or healthy and soaking. */
  private onProbed(h: SimHost, t: number): void {
    const pending = h.pending!;
    h.busy = false;
    h.pending = null;
    this.lastProgress = t;
    if (this.s.failing.has(h.name) || this.rng.chance(this.s.failureRate)) {
      this.rollBack(h, pending.previous, t, t + h.skewMs, 'health probes failed', this.failures);
      return;
    }
    h.previous = pending.previous;
    h.healthySince = t + h.skewMs;
    this.postAck(h, 'healthy', t, null);
    // The agent schedules a heartbeat for the moment its soak completes, so the proof is not a poll late;
    // a proof is always a later ack than the healthy one (a second later for a soak of 0: phase.ts).
    const soak = this.f.plans[h.channel]!.waves[h.wave]!.soakSeconds * 1000;
    this.queue.push(t + Math.max(soak, 1000), { kind: 'soak-beat', host: h.name });
  }

  private onSoakBeat(h: SimHost, t: number): void {
    const onTarget = h.current === this.f.manifests[h.name]!.target;
    if (!this.isOffline(h, t) && !h.failed && onTarget) this.postAck(h, 'heartbeat', t, null);
  }

  /** Back to `to`, counted as failed once, the target quarantined, the rollback acked. */
  private rollBack(
    h: SimHost,
    to: GenerationRef,
    t: number,
    now: number,
    reason: string,
    list: string[],
  ): void {
    h.current = to.path;
    h.generation = to.generation;
    h.pending = null;
    if (!h.failed) {
      this.failedHosts++;
      this.bump(this.failedIn, waveKey(h), 1);
    }
    h.failed = true;
    this.setInFlight(h, false);
    h.quarantine.push({ target: this.f.manifests[h.name]!.target, until: now + QUARANTINE_MS });
    list.push(h.name);
    this.postAck(h, 'rolled-back', t, reason);
    this.lastProgress = t;
  }

  /** Signs and posts an ack: it becomes visible to the others after a delay, or never if lost. */
  private postAck(h: SimHost, kind: AckKind, t: number, reason: string | null): void {
    const m = this.f.manifests[h.name]!;
    const onTarget = h.current === m.target;
    const ack = makeAck(h.name, kind, {
      time: t + h.skewMs,
      seq: ++h.seq,
      rolloutId: m.rolloutId,
      target: m.target,
      current: h.current,
      healthySince: onTarget && !h.failed ? h.healthySince : null,
      reason,
      fleet: m.fleet,
    });
    h.lastAckAt = t;
    h.lastKind = kind;
    const { visibleAt, lost } = this.delivery(t);
    this.ackCount++;
    if (this.s.recordHistory)
      this.history.push({ ack, postedAt: t, visibleAt: lost ? Infinity : visibleAt });
    const isProof = kind === 'heartbeat' || kind === 'healthy';
    // A proof counts once visible and, for a host whose clock runs ahead, once its signed time is reached
    // (earlier, the reconciler clamps the future-dated ack to `now`, shortening the signed soak).
    if (isProof && !lost)
      this.lastProofVisible = Math.max(this.lastProofVisible, visibleAt, t + Math.max(0, h.skewMs));
    if (lost) {
      /* never visible */
    } else if (visibleAt <= t) this.makeVisible(ack);
    else this.queue.push(visibleAt, { kind: 'visible', ack });
    if (isProof && onTarget) this.noteSoakProof(h, ack, t);
  }

  /** When an ack posted at `t` becomes visible to the other hosts, and whether it is lost. */
  private delivery(t: number): { visibleAt: number; lost: boolean } {
    const { delayMin, delayMax, batch, quantum, lossRate } = this.s;
    let visibleAt = t + this.rng.int(delayMin, delayMax) * 1000;
    // Batched visibility: acks posted during a second appear together at the next whole second, so every
    // host polling within one second shares one prepared fleet (what makes 10k-host runs affordable).
    if (batch) visibleAt = Math.max(visibleAt, Math.floor(t / quantum) * quantum + quantum);
    const lost = this.rng.chance(lossRate);
    return { visibleAt, lost };
  }

  /** Ground truth: the host's soak is proved once a signed proof on its target covers the soak. */
  private noteSoakProof(h: SimHost, ack: AckRecord, t: number): void {
    if (h.healthySince === null || h.soakProvedAt !== null) return;
    const soak = this.f.plans[h.channel]!.waves[h.wave]!.soakSeconds * 1000;
    if (parseAckTime(ack.time) - h.healthySince < soak) return;
    h.soakProvedAt = t;
    this.proved++;
    this.bump(this.provedIn, waveKey(h), 1);
    this.setInFlight(h, false);
    this.lastProgress = t;
  }

  private makeVisible(ack: AckRecord): void {
    const prev = this.acks[ack.host];
    if (prev !== undefined && ack.seq <= prev.seq) return;
    const delta = (this.isFailure(ack) ? 1 : 0) - (this.isFailure(prev) ? 1 : 0);
    if (delta !== 0) this.bump(this.failuresVisible, waveKey(this.hosts.get(ack.host)!), delta);
    this.acks[ack.host] = ack;
    this.version++;
  }

  /** A failure ack of this release's rollout (older rollouts' failures do not halt this one). */
  private isFailure(a: AckRecord | undefined): boolean {
    return (
      a !== undefined &&
      (a.kind === 'failed' || a.kind === 'rolled-back') &&
      a.rolloutId === this.f.manifests[a.host]!.rolloutId
    );
  }

  /** Ground-truth checks of a start: wave order, channel edges, halts, then the budgets it joins. */
  private checkStart(h: SimHost, t: number): void {
    const at = `${(t - this.s.start) / 1000}s`;
    this.checkWaveOrder(h, at);
    this.checkChannelEdges(h, at);
    this.checkNotHalted(h, at);
    this.setInFlight(h, true);
    h.startedAt = t;
    this.checkBudgets(h, at);
    this.starts.push({
      host: h.name,
      channel: h.channel,
      wave: h.wave,
      at: (t - this.s.start) / 1000,
    });
    this.lastProgress = t;
  }

  /** More hosts of a wave lack their soak proof than its excuses and allowed failures cover. */
  private unproven(channel: string, w: BuiltFleet['plans'][string]['waves'][number]): boolean {
    const proved = this.provedIn.get(`${channel}/${w.index}`) ?? 0;
    return w.hosts.length - proved > w.offlineExcuseLimit + allowedFailures(w);
  }

  private checkWaveOrder(h: SimHost, at: string): void {
    for (const w of this.f.plans[h.channel]!.waves) {
      if (w.index >= h.wave) break;
      if (this.unproven(h.channel, w))
        this.violations.push(
          `wave-order: ${h.name} (wave ${h.wave} of ${h.channel}) started at ${at} ` +
            `before wave ${w.index} was soaked`,
        );
    }
  }

  private checkChannelEdges(h: SimHost, at: string): void {
    for (const g of this.f.plans[h.channel]!.gatedBy)
      for (const w of this.f.plans[g]!.waves)
        if (this.unproven(g, w))
          this.violations.push(
            `channel-edge: ${h.name} (${h.channel}) started at ${at} ` +
              `before channel ${g} wave ${w.index} was soaked`,
          );
  }

  private checkNotHalted(h: SimHost, at: string): void {
    for (const w of this.f.plans[h.channel]!.waves) {
      const visibleFailures = this.failuresVisible.get(`${h.channel}/${w.index}`) ?? 0;
      if (visibleFailures > allowedFailures(w))
        this.violations.push(
          `halted: ${h.name} (${h.channel}) started at ${at} ` +
            `although wave ${w.index} has ${visibleFailures} visible failures`,
        );
    }
  }

  /** The host is now counted in flight: no budget it belongs to may exceed its max. */
  private checkBudgets(h: SimHost, at: string): void {
    for (const id of this.budgetsOf.get(h.name) ?? []) {
      const o = this.budgetObserved[id]!;
      const n = this.inFlightIn.get(id) ?? 0;
      o.observed = Math.max(o.observed, n);
      if (n > o.max)
        this.violations.push(
          `budget: ${h.name} started at ${at} with ${n} hosts truly in flight ` +
            `in budget ${id} (max ${o.max})`,
        );
    }
  }

  private setInFlight(h: SimHost, value: boolean): void {
    if (h.inFlight === value) return;
    h.inFlight = value;
    for (const id of this.budgetsOf.get(h.name) ?? [])
      this.bump(this.inFlightIn, id, value ? 1 : -1);
  }

  private bump(counts: Map<string, number>, key: string, delta: number): void {
    counts.set(key, (counts.get(key) ?? 0) + delta);
  }

  /** Every wave's failures are within its threshold (otherwise its rollout is halted, not complete). */
  private withinThresholds(): boolean {
    for (const plan of Object.values(this.f.plans)) {
      for (const w of plan.waves)
        if ((this.failedIn.get(`${plan.channel}/${w.index}`) ?? 0) > allowedFailures(w))
          return false;
    }
    return true;
  }

  private heartbeatKind(h: SimHost): AckKind {
    if (h.failed) return 'rolled-back';
    if (h.deferredAt !== null && h.current !== this.f.manifests[h.name]!.target) return 'deferred';
    return 'heartbeat';
  }

  private isOffline(h: SimHost, t: number): boolean {
    return t >= h.offlineFrom && t < h.offlineUntil;
  }

  /** Polls land on multiples of the quantum when batching, so hosts share prepared fleets. */
  private align(ms: number): number {
    return this.s.batch ? Math.ceil(ms / this.s.quantum) * this.s.quantum : ms;
  }

  result(lastEventAt: number): SimResult {
    const { start, poll, actMax, probe } = this.s;
    const end = this.completedAt ?? lastEventAt;
    return {
      seed: this.seed,
      hosts: this.hosts.size,
      converged: this.completedAt !== null,
      completedAt: this.completedAt === null ? null : (this.completedAt - start) / 1000,
      endedAt: (end - start) / 1000,
      theoreticalMinimum: theoreticalMinimum(this.f, poll / 1000, actMax, probe / 1000),
      starts: this.starts,
      failures: this.failures,
      rollbacks: this.rollbacks,
      decisions: this.decisions,
      ackCount: this.ackCount,
      violations: this.violations,
      budgets: this.budgetObserved,
      history: this.history,
      finalView: fleetView({ now: end, ...this.base }),
    };
  }
}
