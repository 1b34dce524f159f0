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
  lastAckAt: number | null;
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

export function simulate(config: SimConfig): SimResult {
  const rng = new Rng(config.seed);
  const f = config.fleet;
  const poll = (config.pollSeconds ?? 60) * 1000;
  const jitter = (config.pollJitterSeconds ?? 5) * 1000;
  const [actMin, actMax] = config.activationSeconds ?? [20, 40];
  const probe = (config.probeSeconds ?? 10) * 1000;
  const [delayMin, delayMax] = config.ackDelaySeconds ?? [0, 0];
  const lossRate = config.ackLossRate ?? 0;
  const skew = config.clockSkewSeconds ?? 0;
  const start = config.startAt ?? Date.UTC(2026, 0, 1);
  const maxMs = (config.maxSeconds ?? 7 * 24 * 3600) * 1000;
  const failing = new Set(config.failingHosts ?? []);
  const inhibited = new Set(config.inhibitedHosts ?? []);
  const rebootDelay = (config.rebootDelaySeconds ?? 120) * 1000;
  const sec = (ms: number) => Math.round(ms / 1000) * 1000;
  const batch = config.batchVisibility ?? false;
  const quantum = (batch ? (config.timeQuantumSeconds ?? 1) : 1) * 1000;
  // Polls land on multiples of the quantum when batching, so hosts share prepared fleets.
  const align = (ms: number) => (batch ? Math.ceil(ms / quantum) * quantum : ms);

  const acks: Record<string, AckRecord> = Object.create(null) as Record<string, AckRecord>;
  let version = 0;
  const history: HistoryEntry[] = [];
  const recordHistory = config.recordHistory ?? true;
  let ackCount = 0;
  // When the last soak proof counts (see the completion check): kept as acks are posted, not rescanned.
  let lastProofVisible = start;
  const hosts = new Map<string, SimHost>();
  const queue = new EventQueue<SimEvent>();
  const starts: StartRecord[] = [];
  const failures: string[] = [];
  const rollbacks: string[] = [];
  const violations: string[] = [];
  const budgetObserved: Record<string, { max: number; observed: number }> = {};
  for (const b of f.budgets.budgets) budgetObserved[b.id] = { max: b.maxInFlight, observed: 0 };
  const budgetsOf = new Map<string, string[]>();
  for (const b of f.budgets.budgets)
    for (const h of b.hosts) budgetsOf.set(h, [...(budgetsOf.get(h) ?? []), b.id]);
  let decisions = 0;
  let proved = 0;
  let failedHosts = 0;
  const failedIn = new Map<string, number>(); // "channel/wave" -> hosts that failed
  let lastProgress = start;
  let maxOfflineUntil = start;

  // Ground-truth counters, kept incrementally so checking a start costs O(waves + budgets), not O(hosts).
  const provedIn = new Map<string, number>(); // "channel/wave" -> hosts with a soak proof posted
  const failuresVisible = new Map<string, number>(); // "channel/wave" -> visible failure acks of this rollout
  const inFlightIn = new Map<string, number>(); // budget id -> hosts truly in flight
  const waveKey = (h: { channel: string; wave: number }) => `${h.channel}/${h.wave}`;
  const isFailure = (a: AckRecord | undefined) =>
    a !== undefined &&
    (a.kind === 'failed' || a.kind === 'rolled-back') &&
    a.rolloutId === f.manifests[a.host]!.rolloutId;
  function setInFlight(h: SimHost, value: boolean): void {
    if (h.inFlight === value) return;
    h.inFlight = value;
    for (const id of budgetsOf.get(h.name) ?? [])
      inFlightIn.set(id, (inFlightIn.get(id) ?? 0) + (value ? 1 : -1));
  }

  for (const name of Object.keys(f.manifests).sort()) {
    const m = f.manifests[name]!;
    const h: SimHost = {
      name,
      channel: m.channel,
      wave: m.wave,
      skewMs: skew === 0 ? 0 : rng.int(-1, 1) * skew * 1000,
      current: f.previous[name]!,
      generation: 1,
      pending: null,
      previous: null,
      quarantine: [],
      seq: 0,
      lastAckAt: null,
      lastKind: null,
      healthySince: null,
      failed: false,
      busy: false,
      offlineFrom: Infinity,
      offlineUntil: -Infinity,
      inhibited: inhibited.has(name),
      deferredAt: null,
      soakProvedAt: null,
      startedAt: null,
      inFlight: false,
    };
    if (rng.chance(config.offlineRate ?? 0)) {
      const [a, b] = config.offlineSeconds ?? [600, 1800];
      h.offlineFrom = start + sec(rng.next() * (config.offlineStartWithin ?? 3600) * 1000);
      h.offlineUntil = h.offlineFrom + rng.int(a, b) * 1000;
      maxOfflineUntil = Math.max(maxOfflineUntil, h.offlineUntil);
    }
    hosts.set(name, h);
    // Every host has said hello before the release appears, so none starts out "offline".
    postAck(h, 'heartbeat', start - 1000 * rng.int(1, 30), null);
    queue.push(align(start + sec(rng.next() * poll)), { kind: 'poll', host: name });
  }

  const base = {
    plans: f.plans,
    budgets: f.budgets,
    revocations: f.revocations,
    acks,
    tolerances: config.tolerances,
  };
  let cacheVersion = -1;
  let cache = new Map<number, { input: FleetInput; prepared: PreparedFleet }>();
  function preparedAt(now: number) {
    if (cacheVersion !== version) {
      cache = new Map();
      cacheVersion = version;
    }
    let c = cache.get(now);
    if (c === undefined) {
      const input: FleetInput = { now, ...base };
      c = { input, prepared: prepareFleet(input) };
      if (cache.size > 8) cache.clear();
      cache.set(now, c);
    }
    return c;
  }

  function isOffline(h: SimHost, t: number): boolean {
    return t >= h.offlineFrom && t < h.offlineUntil;
  }

  function postAck(h: SimHost, kind: AckKind, t: number, reason: string | null): void {
    const m = f.manifests[h.name]!;
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
    let visibleAt = t + rng.int(delayMin, delayMax) * 1000;
    // Batched visibility: acks posted during a second appear together at the next whole second, so every
    // host polling within one second shares one prepared fleet (what makes 10k-host runs affordable).
    if (batch) visibleAt = Math.max(visibleAt, Math.floor(t / quantum) * quantum + quantum);
    const lost = lossRate > 0 && rng.chance(lossRate);
    ackCount++;
    if (recordHistory) history.push({ ack, postedAt: t, visibleAt: lost ? Infinity : visibleAt });
    // A proof counts once visible and, for a host whose clock runs ahead, once its signed time is reached
    // (earlier, the reconciler clamps the future-dated ack to `now`, shortening the signed soak).
    if ((kind === 'heartbeat' || kind === 'healthy') && !lost)
      lastProofVisible = Math.max(lastProofVisible, visibleAt, t + Math.max(0, h.skewMs));
    if (lost) {
      /* never visible */
    } else if (visibleAt <= t) makeVisible(ack);
    else queue.push(visibleAt, { kind: 'visible', ack });
    if (
      (kind === 'heartbeat' || kind === 'healthy') &&
      onTarget &&
      h.healthySince !== null &&
      h.soakProvedAt === null
    ) {
      const soak = f.plans[h.channel]!.waves[h.wave]!.soakSeconds * 1000;
      if (parseAckTime(ack.time) - h.healthySince >= soak) {
        h.soakProvedAt = t;
        proved++;
        provedIn.set(waveKey(h), (provedIn.get(waveKey(h)) ?? 0) + 1);
        setInFlight(h, false);
        lastProgress = t;
      }
    }
  }

  function makeVisible(ack: AckRecord): void {
    const prev = acks[ack.host];
    if (prev === undefined || ack.seq > prev.seq) {
      const key = waveKey(hosts.get(ack.host)!);
      const delta = (isFailure(ack) ? 1 : 0) - (isFailure(prev) ? 1 : 0);
      if (delta !== 0) failuresVisible.set(key, (failuresVisible.get(key) ?? 0) + delta);
      acks[ack.host] = ack;
      version++;
    }
  }

  /** Every wave's failures are within its threshold (otherwise its rollout is halted, not complete). */
  function withinThresholds(): boolean {
    for (const plan of Object.values(f.plans)) {
      for (const w of plan.waves)
        if ((failedIn.get(`${plan.channel}/${w.index}`) ?? 0) > allowedFailures(w)) return false;
    }
    return true;
  }

  function heartbeatKind(h: SimHost): AckKind {
    if (h.failed) return 'rolled-back';
    if (h.deferredAt !== null && h.current !== f.manifests[h.name]!.target) return 'deferred';
    return 'heartbeat';
  }

  function checkStart(h: SimHost, t: number): void {
    const plan = f.plans[h.channel]!;
    const unproven = (channel: string, w: (typeof plan.waves)[number]) =>
      w.hosts.length - (provedIn.get(`${channel}/${w.index}`) ?? 0) >
      w.offlineExcuseLimit + allowedFailures(w);
    for (const w of plan.waves) {
      if (w.index >= h.wave) break;
      if (unproven(h.channel, w))
        violations.push(
          `wave-order: ${h.name} (wave ${h.wave} of ${h.channel}) started at ${(t - start) / 1000}s before wave ${w.index} was soaked`,
        );
    }
    for (const g of plan.gatedBy) {
      for (const w of f.plans[g]!.waves) {
        if (unproven(g, w))
          violations.push(
            `channel-edge: ${h.name} (${h.channel}) started at ${(t - start) / 1000}s before channel ${g} wave ${w.index} was soaked`,
          );
      }
    }
    for (const w of plan.waves) {
      const visibleFailures = failuresVisible.get(`${h.channel}/${w.index}`) ?? 0;
      if (visibleFailures > allowedFailures(w))
        violations.push(
          `halted: ${h.name} (${h.channel}) started at ${(t - start) / 1000}s although wave ${w.index} has ${visibleFailures} visible failures`,
        );
    }
    setInFlight(h, true);
    h.startedAt = t;
    for (const id of budgetsOf.get(h.name) ?? []) {
      const max = budgetObserved[id]!.max;
      const n = inFlightIn.get(id) ?? 0;
      const o = budgetObserved[id]!;
      o.observed = Math.max(o.observed, n);
      if (n > max)
        violations.push(
          `budget: ${h.name} started at ${(t - start) / 1000}s with ${n} hosts truly in flight in budget ${id} (max ${max})`,
        );
    }
    starts.push({ host: h.name, channel: h.channel, wave: h.wave, at: (t - start) / 1000 });
    lastProgress = t;
  }

  function begin(
    h: SimHost,
    t: number,
    d: Decision & { kind: 'activate' | 'defer' },
    now: number,
  ): void {
    checkStart(h, t);
    const m = f.manifests[h.name]!;
    h.pending = {
      target: m.target,
      rolloutId: m.rolloutId,
      previous: { generation: h.generation, path: h.current },
      deadline:
        d.kind === 'activate'
          ? d.deadline
          : d.reboot.allowed
            ? d.reboot.deadline
            : now + m.confirmDeadlineSeconds * 1000,
    };
    h.busy = true;
    postAck(h, 'started', t, null);
    queue.push(t + rng.int(actMin, actMax) * 1000, { kind: 'switched', host: h.name });
  }

  function act(h: SimHost, t: number, now: number, d: Decision): void {
    switch (d.kind) {
      case 'activate':
        begin(h, t, d, now);
        break;
      case 'defer':
        if (h.deferredAt === null) {
          h.deferredAt = t;
          postAck(h, 'deferred', t, d.inhibitor);
        } else if (d.reboot.allowed && t - h.deferredAt >= rebootDelay) {
          begin(h, t, d, now); // the reboot into the staged closure is the disruption
        }
        break;
      case 'rollback':
        h.current = d.to.path;
        h.generation = d.to.generation;
        h.pending = null;
        if (!h.failed) {
          failedHosts++;
          failedIn.set(waveKey(h), (failedIn.get(waveKey(h)) ?? 0) + 1);
        }
        h.failed = true;
        setInFlight(h, false);
        h.quarantine.push({ target: f.manifests[h.name]!.target, until: now + 24 * 3600_000 });
        rollbacks.push(h.name);
        postAck(h, 'rolled-back', t, d.reason.slice(0, 200));
        lastProgress = t;
        break;
      default:
        break;
    }
  }

  let t = start;
  let completedAt: number | null = null;
  while (queue.size > 0) {
    const ev = queue.pop()!;
    t = ev.t;
    if (t - start > maxMs) break;
    if (ev.e.kind === 'visible') {
      makeVisible(ev.e.ack);
      continue;
    }
    const h = hosts.get(ev.e.host)!;
    const m = f.manifests[h.name]!;
    if (ev.e.kind === 'poll') {
      queue.push(align(t + poll + rng.int(-jitter / 1000, jitter / 1000) * 1000), {
        kind: 'poll',
        host: h.name,
      });
      if (isOffline(h, t) || h.busy) continue;
      const hb = f.plans[h.channel]!.heartbeatSeconds * 1000;
      // Hosts on their target heartbeat for soak freshness; the others only need to stay inside the offline window.
      const every =
        h.current === m.target || h.failed
          ? Math.min(hb, poll) / 2
          : (f.plans[h.channel]!.offlineWindowSeconds * 1000) / 3;
      if (h.lastAckAt === null || t - h.lastAckAt >= every)
        postAck(h, heartbeatKind(h), t, h.failed ? 'activation failed' : null);
      const now = t + h.skewMs;
      const { input, prepared } = preparedAt(now);
      const d = decide(
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
      decisions++;
      act(h, t, now, d);
    } else if (ev.e.kind === 'switched') {
      h.current = m.target;
      h.generation++;
      postAck(h, 'activated', t, null);
      queue.push(t + probe, { kind: 'probed', host: h.name });
      lastProgress = t;
    } else if (ev.e.kind === 'probed') {
      const pending = h.pending!;
      h.busy = false;
      h.pending = null;
      lastProgress = t;
      if (failing.has(h.name) || rng.chance(config.failureRate ?? 0)) {
        h.current = pending.previous.path;
        h.generation = pending.previous.generation;
        if (!h.failed) {
          failedHosts++;
          failedIn.set(waveKey(h), (failedIn.get(waveKey(h)) ?? 0) + 1);
        }
        h.failed = true;
        setInFlight(h, false);
        h.quarantine.push({ target: m.target, until: t + h.skewMs + 24 * 3600_000 });
        failures.push(h.name);
        postAck(h, 'rolled-back', t, 'health probes failed');
      } else {
        h.previous = pending.previous;
        h.healthySince = t + h.skewMs;
        postAck(h, 'healthy', t, null);
        // The agent schedules a heartbeat for the moment its soak completes, so the proof is not a poll late.
        queue.push(t + f.plans[h.channel]!.waves[h.wave]!.soakSeconds * 1000, {
          kind: 'soak-beat',
          host: h.name,
        });
      }
    } else if (ev.e.kind === 'soak-beat') {
      if (!isOffline(h, t) && !h.failed && h.current === m.target) postAck(h, 'heartbeat', t, null);
    }
    if (proved + failedHosts === hosts.size && completedAt === null && withinThresholds())
      completedAt = lastProofVisible;
    if (completedAt !== null && t > completedAt) break;
    const quiet = 3 * poll + 2 * 3600_000;
    if (
      completedAt === null &&
      t - lastProgress > quiet &&
      t > maxOfflineUntil &&
      ![...hosts.values()].some((x) => x.busy)
    )
      break;
  }
  const end = completedAt ?? t;
  const finalView = fleetView({ now: end, ...base });
  return {
    seed: config.seed,
    hosts: hosts.size,
    converged: completedAt !== null,
    completedAt: completedAt === null ? null : (completedAt - start) / 1000,
    endedAt: (end - start) / 1000,
    theoreticalMinimum: theoreticalMinimum(f, poll / 1000, actMax, probe / 1000),
    starts,
    failures,
    rollbacks,
    decisions,
    ackCount,
    violations,
    budgets: budgetObserved,
    history,
    finalView,
  };
}
