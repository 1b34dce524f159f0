// Activation with a confirm window and magic rollback (DESIGN.md section 6, steps 4-6).
//   0. fetch the target's closure, signed by a key of the verified trust root (fetchTarget, run by the
//      cycle before the switch-inhibitor gate, which needs the closure): nothing is touched before
//   1. persist (fsync) the pending record: target, exact previous generation, deadline, boot id
//   2. switch
//   3. probes until `healthyPassesRequired` consecutive passes
//   4. post a signed `healthy` ack and read it back through the control plane
//   5. confirmed -> clear the pending record; otherwise, at the deadline, restore the recorded
//      generation by number, quarantine the target and queue a `rolled-back` ack.
// Every step is safe to interrupt: recover() at the start of the next run finishes or undoes it.
import type { SignedAck } from '../protocol/acks.ts';
import { isoTime } from '../protocol/schemas/common.ts';
import type { HostManifest } from '../protocol/schemas/release.ts';
import type { AckFields, AckJournal } from './ack-journal.ts';
import type { AckSync } from './ack-sync.ts';
import { isClosureRefused, type Activator, type Generation } from './activators/index.ts';
import { updateAgentState, readAgentState } from './agent-state.ts';
import type { Logger } from './log.ts';
import { clearPending, currentBootId, readPending, writePending, type PendingRecord } from './pending.ts';
import { ProbeSession } from './probes/index.ts';
import type { Quarantine } from './quarantine.ts';
import type { StateDir } from './state-dir.ts';

export interface AgentContext {
  host: string;
  state: StateDir;
  activator: Activator;
  journal: AckJournal;
  /** null when the control plane is not configured / reachable for this run. */
  sync: AckSync | null;
  quarantine: Quarantine;
  log: Logger;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  quarantineHours: number;
  probeIntervalMs: number;
}

export type ConfirmOutcome = 'confirmed' | 'rolled-back';

function ackFrom(p: PendingRecord, kind: AckFields['kind'], current: string | null, extra: Partial<AckFields> = {}): AckFields {
  return { kind, releaseVersion: p.releaseVersion, rolloutId: p.rolloutId, target: p.target, current, healthySince: null, probes: [], reason: null, ...extra };
}

async function flushQuietly(ctx: AgentContext): Promise<void> {
  if (!ctx.sync) return;
  const r = await ctx.sync.flush();
  if (r.stoppedBecause) ctx.log.warn('acks-not-posted', { reason: r.stoppedBecause, confirmedSeq: r.serverSeq, journalSeq: ctx.journal.lastSeq() });
}

/** Restores the recorded generation (idempotent), quarantines the target, queues a rolled-back ack. */
export async function rollbackPending(ctx: AgentContext, p: PendingRecord, reason: string): Promise<void> {
  ctx.log.warn('magic-rollback', { target: p.target, toGeneration: p.previous.number, toPath: p.previous.path, reason });
  await ctx.activator.rollback({ number: p.previous.number, path: p.previous.path });
  ctx.quarantine.add(p.target, reason, ctx.now(), ctx.quarantineHours, p.releaseVersion);
  // A crash after this ack but before clearPending must not produce a second rolled-back ack.
  const last = ctx.journal.last()?.signed;
  if (!(last && last.kind === 'rolled-back' && last.target === p.target && last.time >= p.startedAt)) {
    ctx.journal.append(ackFrom(p, 'rolled-back', p.previous.path, { reason }), ctx.now());
  }
  clearPending(ctx.state);
  ctx.log.info('rolled-back', { target: p.target, generation: p.previous.number, quarantinedHours: ctx.quarantineHours });
  await flushQuietly(ctx);
}

/** Runs the confirm window of a switched pending activation to its end. */
export async function confirmPending(ctx: AgentContext, p: PendingRecord): Promise<ConfirmOutcome> {
  const deadline = Date.parse(p.deadline);
  const session = new ProbeSession(p.probes, p.healthyPassesRequired, () => ctx.activator.selfCheck(p.target));
  while (ctx.now() < deadline) {
    if (await session.round()) break;
    ctx.log.info('probes', { target: p.target, passes: session.passes, required: session.passesRequired, results: session.lastResults });
    await ctx.sleep(Math.max(0, Math.min(ctx.probeIntervalMs, deadline - ctx.now())));
  }
  if (!session.healthy || ctx.now() >= deadline) {
    const failing = session.lastResults.filter((r) => !r.ok).map((r) => `${r.name}: ${r.detail}`);
    await rollbackPending(ctx, p, `not healthy before the confirm deadline ${p.deadline}${failing.length ? ` (${failing.join('; ')})` : ''}`);
    return 'rolled-back';
  }
  const healthySince = isoTime(ctx.now());
  const ack: SignedAck = ctx.journal.append(ackFrom(p, 'healthy', p.target, { healthySince, probes: session.lastResults.slice(0, 32) }), ctx.now());
  ctx.log.info('healthy', { target: p.target, seq: ack.signed.seq });
  let confirmed = false;
  if (ctx.sync) {
    await flushQuietly(ctx);
    if (ctx.now() < deadline) confirmed = await ctx.sync.readBack(ack, deadline, Math.min(ctx.probeIntervalMs, 500), ctx.now);
  }
  if (!confirmed || ctx.now() >= deadline) {
    await rollbackPending(ctx, p, `the healthy ack could not be confirmed through the control plane before the deadline ${p.deadline}`);
    return 'rolled-back';
  }
  updateAgentState(ctx.state, { confirmed: { target: p.target, rolloutId: p.rolloutId, healthySince, previous: p.previous } });
  clearPending(ctx.state);
  ctx.log.info('confirmed', { target: p.target, generationBefore: p.previous.number });
  return 'confirmed';
}

export type FetchOutcome = { kind: 'fetched' } | { kind: 'failed' | 'unavailable'; reason: string };

/**
 * Step 0, before any pending record or profile change: the target's closure is made local, from the
 * manifest's cache, accepted only when signed by one of `cacheKeys` (the verified trust root's).
 * An integrity refusal (unsigned, untrusted key, bad signature, corrupt NAR) is a failed activation:
 * the target is quarantined and a `failed` ack posted, the profile untouched. An unavailable closure
 * (cache down or not yet populated) only holds this host back: the caller reports it blocked and the
 * next cycle tries again.
 */
export async function fetchTarget(ctx: AgentContext, m: HostManifest, cacheKeys: readonly string[], current: Generation): Promise<FetchOutcome> {
  // Every gate but the switch inhibitor has passed: the moment the host became eligible to activate.
  ctx.log.info('fetching', { target: m.target, cache: m.cacheUrl });
  try {
    await ctx.activator.prepare(m.target, { cacheUrls: m.cacheUrl === null ? [] : [m.cacheUrl], cacheKeys });
    return { kind: 'fetched' };
  } catch (e) {
    if (!isClosureRefused(e)) throw e;
    const reason = `closure refused (${e.code}): ${e.message}`.slice(0, 512);
    const fields = { target: m.target, code: e.code, storePath: e.storePath, cache: e.cache, reason };
    if (!e.integrity) {
      ctx.log.warn('closure-unavailable', fields);
      return { kind: 'unavailable', reason };
    }
    ctx.log.error('closure-refused', { ...fields, keeping: current.number });
    ctx.quarantine.add(m.target, reason, ctx.now(), ctx.quarantineHours, m.releaseVersion);
    ctx.journal.append({ kind: 'failed', releaseVersion: m.releaseVersion, rolloutId: m.rolloutId, target: m.target, current: current.path, healthySince: null, probes: [], reason }, ctx.now());
    await flushQuietly(ctx);
    return { kind: 'failed', reason };
  }
}

/** Starts an activation: pending record first (fsynced), then the switch, then the confirm window. */
export async function activate(ctx: AgentContext, m: HostManifest, deadlineMs: number): Promise<ConfirmOutcome | 'failed'> {
  const previous = await ctx.activator.currentGeneration();
  const now = ctx.now();
  const p: PendingRecord = {
    target: m.target,
    previous,
    deadline: isoTime(deadlineMs),
    bootId: currentBootId(),
    releaseVersion: m.releaseVersion,
    rolloutId: m.rolloutId,
    startedAt: isoTime(now),
    probes: m.probes,
    healthyPassesRequired: m.healthyPassesRequired,
    phase: 'switching',
  };
  ctx.journal.append(ackFrom(p, 'started', previous.path), now);
  writePending(ctx.state, p);
  ctx.log.info('switching', { target: m.target, fromGeneration: previous.number, deadline: p.deadline });
  await flushQuietly(ctx);
  try {
    await ctx.activator.switch(m.target);
  } catch (e) {
    const reason = `activation failed: ${(e as Error).message}`;
    ctx.log.error('switch-failed', { target: m.target, reason });
    await ctx.activator.rollback(previous);
    ctx.quarantine.add(m.target, reason, ctx.now(), ctx.quarantineHours, m.releaseVersion);
    ctx.journal.append(ackFrom(p, 'failed', previous.path, { reason }), ctx.now());
    clearPending(ctx.state);
    await flushQuietly(ctx);
    return 'failed';
  }
  const switched: PendingRecord = { ...p, phase: 'switched' };
  writePending(ctx.state, switched);
  ctx.journal.append(ackFrom(p, 'activated', m.target), ctx.now());
  ctx.log.info('switched', { target: m.target });
  return confirmPending(ctx, switched);
}

/**
 * Step 1 of every cycle. Returns what recovery did. Works without the network: a pending activation
 * past its deadline is rolled back whether or not the control plane can be reached.
 */
export async function recover(ctx: AgentContext): Promise<'none' | ConfirmOutcome | 'interrupted-switch-undone'> {
  const p = readPending(ctx.state);
  if (!p) return 'none';
  if (ctx.now() >= Date.parse(p.deadline)) {
    await rollbackPending(ctx, p, `activation of ${p.target} was not confirmed before its deadline ${p.deadline}`);
    return 'rolled-back';
  }
  const current = await ctx.activator.currentGeneration();
  if (p.phase === 'switching' && current.path !== p.target) {
    // Killed before the switch completed: the system may be half-switched. Restore the exact
    // generation recorded; the reconciler may start the activation again on this same run.
    ctx.log.warn('interrupted-switch', { target: p.target, restoring: p.previous.number });
    await ctx.activator.rollback({ number: p.previous.number, path: p.previous.path });
    clearPending(ctx.state);
    return 'interrupted-switch-undone';
  }
  if (p.bootId !== null && p.bootId !== currentBootId()) ctx.log.info('rebooted-in-confirm-window', { target: p.target });
  ctx.log.info('resuming-confirm-window', { target: p.target, deadline: p.deadline });
  return confirmPending(ctx, { ...p, phase: 'switched' });
}

/** Rollback ordered by the reconciler (rollback-and-halt) for a host that had confirmed its target. */
export async function rollbackConfirmed(ctx: AgentContext, to: { number: number; path: string }, target: string, releaseVersion: number, rolloutId: string | null, reason: string): Promise<void> {
  await ctx.activator.rollback(to);
  ctx.quarantine.add(target, reason, ctx.now(), ctx.quarantineHours, releaseVersion);
  ctx.journal.append({ kind: 'rolled-back', releaseVersion, rolloutId, target, current: to.path, healthySince: null, probes: [], reason }, ctx.now());
  updateAgentState(ctx.state, { confirmed: null });
  ctx.log.warn('rolled-back-by-policy', { target, generation: to.number, reason });
  await flushQuietly(ctx);
}

export { readAgentState };
