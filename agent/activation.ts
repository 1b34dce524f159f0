// Activation with a confirm window and magic rollback (DESIGN.md section 6, steps 4-6).
//   0. fetch the target's closure, signed by a key of the verified trust root (fetchTarget, run by the
//      cycle before the switch-inhibitor gate, which needs the closure): nothing is touched before
//   1. persist (fsync) the pending record: target, exact previous generation, deadline, boot id
//   2. switch: the `started` ack is posted while the pending record is written and then, for
//      activators that stage (nix), the generation is created (and recorded in the pending record);
//      the switch script runs only after the post. A run killed before the switch returned is undone
//      (the previous generation restored), never resumed
//   3. probes until `healthyPassesRequired` consecutive passes
//   4. post a signed `healthy` ack and read it back through the control plane
//   5. confirmed -> clear the pending record; otherwise, at the deadline, restore the recorded
//      generation by number, quarantine the target and queue a `rolled-back` ack.
// Every step is safe to interrupt: recover() at the start of the next run finishes or undoes it.
//
// The reboot path (a switch inhibitor under a channel reboot policy that allows a reboot now):
//   1. `started` ack (rebooting into the target), pending record `booting` with the boot id before the
//      reboot, the exact previous generation and the confirm deadline (fsynced: it survives the reboot)
//   2. `boot` (new generation, default boot entry), then the configured reboot command
//   3. next start, new boot id: running the target -> `booted`, `activated` ack, the confirm window
//      before the SAME deadline; came back on another system (bootloader fallback) -> failed
//   4. not confirmed by the deadline -> previous generation + `boot` + reboot (`rebooting-back`), and
//      the `rolled-back` ack after that reboot, once the previous system runs again.
import {
  type SignedAck,
  isoTime,
  type HostManifest,
  type ControlEvidence,
} from '../protocol/index.ts';
import type { AckFields, AckJournal } from './ack-journal.ts';
import type { AckSync } from './ack-sync.ts';
import {
  ActivationError,
  canReboot,
  canStage,
  isClosureRefused,
  type Activator,
  type Generation,
  type RebootCapable,
} from './activators/index.ts';
import { updateAgentState, readAgentState } from './agent-state.ts';
import type { Logger } from './log.ts';
import {
  clearPending,
  currentBootId,
  isBootPhase,
  readPending,
  readPendingCopies,
  setAsideDamagedPending,
  writePending,
  type PendingRecord,
} from './pending.ts';
import { ProbeSession } from './probes/index.ts';
import { enforcedFailure, runRuntimeControls, runtimeComplianceOf } from './compliance.ts';
import type { Quarantine } from './quarantine.ts';
import { isLocalStateError, LocalStateError, type StateDir } from './state-dir.ts';

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
  /** The control-plane client, when there is one: bounds every request of the confirm window. */
  client?: RequestDeadlines;
}

/** HttpClient.until: every request made inside `fn` ends by the deadline. */
export interface RequestDeadlines {
  until<T>(deadlineEpochMs: number, fn: () => Promise<T>): Promise<T>;
}

/**
 * Runs `fn` with every control-plane request bounded by `deadlineMs` (ctx clock): on a network that
 * drops packets a request would otherwise wait out its timeout times its retries, and the rollback
 * would come that much after the deadline the host promised.
 */
function beforeDeadline<T>(
  ctx: AgentContext,
  deadlineMs: number,
  fn: () => Promise<T>,
): Promise<T> {
  if (!ctx.client) return fn();
  return ctx.client.until(Date.now() + (deadlineMs - ctx.now()), fn);
}

/** `rebooting`: the reboot path asked the host to go down; the next run continues after the boot. */
export type ConfirmOutcome = 'confirmed' | 'rolled-back' | 'rebooting';

function ackFrom(
  p: PendingRecord,
  kind: AckFields['kind'],
  current: string | null,
  extra: Partial<AckFields> = {},
): AckFields {
  return {
    kind,
    releaseVersion: p.releaseVersion,
    rolloutId: p.rolloutId,
    target: p.target,
    current,
    healthySince: null,
    probes: [],
    reason: null,
    ...extra,
  };
}

async function flushQuietly(ctx: AgentContext): Promise<void> {
  if (!ctx.sync) return;
  const r = await ctx.sync.flush();
  if (r.stoppedBecause)
    ctx.log.warn('acks-not-posted', {
      reason: r.stoppedBecause,
      confirmedSeq: r.serverSeq,
      journalSeq: ctx.journal.lastSeq(),
    });
}

/** A rolled-back ack for this pending activation, unless one was already journaled (crash before clearPending). */
function rolledBackAck(
  ctx: AgentContext,
  p: PendingRecord,
  reason: string,
  evidence?: ControlEvidence[],
): void {
  const last = ctx.journal.last()?.signed;
  if (!(
    last &&
    last.kind === 'rolled-back' &&
    last.target === p.target &&
    last.time >= p.startedAt
  )) {
    ctx.journal.append(
      ackFrom(p, 'rolled-back', p.previous.path, { reason, ...(evidence ? { evidence } : {}) }),
      ctx.now(),
    );
  }
}

/**
 * Restores the recorded generation (idempotent), quarantines the target, queues a rolled-back ack.
 * On the reboot path that may mean a reboot back into it: then the outcome is `rebooting`.
 */
export async function rollbackPending(
  ctx: AgentContext,
  p: PendingRecord,
  reason: string,
  /** Runtime compliance evidence that failed the activation: signed into the rolled-back ack. */
  evidence?: ControlEvidence[],
): Promise<'rolled-back' | 'rebooting'> {
  if (isBootPhase(p.phase)) return rollbackAcrossBoot(ctx, p, reason);
  ctx.log.warn('magic-rollback', {
    target: p.target,
    toGeneration: p.previous.number,
    toPath: p.previous.path,
    reason,
  });
  await ctx.activator.rollback({ number: p.previous.number, path: p.previous.path });
  ctx.quarantine.add(p.target, reason, ctx.now(), ctx.quarantineHours, p.releaseVersion);
  return finishRollback(ctx, p, reason, {}, evidence);
}

/**
 * The end of every rollback, once the host runs the previous generation again: the rolled-back ack, the
 * pending record cleared, the log line, the acks flushed.
 */
async function finishRollback(
  ctx: AgentContext,
  p: PendingRecord,
  reason: string,
  log: { acrossReboot?: true } = {},
  evidence?: ControlEvidence[],
): Promise<'rolled-back'> {
  // A crash after this ack but before clearPending must not produce a second rolled-back ack.
  rolledBackAck(ctx, p, reason, evidence);
  clearPending(ctx.state);
  ctx.log.info('rolled-back', {
    target: p.target,
    generation: p.previous.number,
    ...log,
    quarantinedHours: ctx.quarantineHours,
  });
  await flushQuietly(ctx);
  return 'rolled-back';
}

/**
 * Runs the confirm window of a switched pending activation to its end. Every wait inside it (probe
 * rounds, sleeps, posts, read-backs) ends by the deadline, so the rollback comes at the deadline
 * whatever the network does, at most one probe interval late.
 */
export async function confirmPending(ctx: AgentContext, p: PendingRecord): Promise<ConfirmOutcome> {
  const deadline = Date.parse(p.deadline);
  const verdict = await beforeDeadline(ctx, deadline, () => confirmWindow(ctx, p, deadline)).catch(
    (e: unknown): WindowVerdict => {
      // A local file that fails inside the window (damaged journal, full disk) means no confirmation.
      if (!isLocalStateError(e)) throw e;
      ctx.log.error('local-state-damaged', { file: e.file, problem: e.problem, reason: e.message });
      return { kind: 'not-confirmed', reason: `cannot be confirmed: ${e.message}` };
    },
  );
  if (verdict.kind === 'not-confirmed')
    return rollbackPending(ctx, p, verdict.reason, verdict.evidence);
  updateAgentState(ctx.state, {
    confirmed: {
      target: p.target,
      rolloutId: p.rolloutId,
      healthySince: verdict.healthySince,
      previous: p.previous,
      ...(verdict.evidence && p.rolloutId
        ? { evidence: { rolloutId: p.rolloutId, results: verdict.evidence } }
        : {}),
    },
  });
  clearPending(ctx.state);
  ctx.log.info('confirmed', { target: p.target, generationBefore: p.previous.number });
  return 'confirmed';
}

type WindowVerdict =
  | { kind: 'confirmed'; healthySince: string; evidence?: ControlEvidence[] }
  | { kind: 'not-confirmed'; reason: string; evidence?: ControlEvidence[] };

/** Probes, the healthy ack and its read-back, all inside the window; the caller acts on the verdict. */
async function confirmWindow(
  ctx: AgentContext,
  p: PendingRecord,
  deadline: number,
): Promise<WindowVerdict> {
  const session = new ProbeSession(p.probes, p.healthyPassesRequired, () =>
    ctx.activator.selfCheck(p.target),
  );
  while (ctx.now() < deadline) {
    if (await session.round(deadline - ctx.now())) break;
    ctx.log.info('probes', {
      target: p.target,
      passes: session.passes,
      required: session.passesRequired,
      results: session.lastResults,
    });
    await ctx.sleep(Math.max(0, Math.min(ctx.probeIntervalMs, deadline - ctx.now())));
  }
  if (!session.healthy || ctx.now() >= deadline) {
    const failing = session.lastResults.filter((r) => !r.ok).map((r) => `${r.name}: ${r.detail}`);
    return {
      kind: 'not-confirmed',
      reason: `not healthy before the confirm deadline ${p.deadline}${failing.length ? ` (${failing.join('; ')})` : ''}`,
    };
  }
  // Healthy: now the runtime compliance controls, inside the same window (enforce: a failure fails it).
  const evidence = await complianceStep(ctx, p, deadline);
  const failed = evidence && enforcedFailure(p.compliance, evidence);
  if (failed) return { kind: 'not-confirmed', reason: failed.slice(0, 512), evidence };
  if (evidence && ctx.now() >= deadline)
    return {
      kind: 'not-confirmed',
      reason: `the compliance controls did not finish before the confirm deadline ${p.deadline}`,
      evidence,
    };
  const healthySince = isoTime(ctx.now());
  const ack: SignedAck = ctx.journal.append(
    ackFrom(p, 'healthy', p.target, {
      healthySince,
      probes: session.lastResults.slice(0, 32),
      ...(evidence ? { evidence } : {}),
    }),
    ctx.now(),
  );
  ctx.log.info('healthy', { target: p.target, seq: ack.signed.seq });
  let confirmed = false;
  if (ctx.sync) {
    await flushQuietly(ctx);
    if (ctx.now() < deadline)
      confirmed = await ctx.sync.readBack(
        ack,
        deadline,
        Math.min(ctx.probeIntervalMs, 500),
        ctx.now,
      );
  }
  if (!confirmed || ctx.now() >= deadline)
    return {
      kind: 'not-confirmed',
      reason: `the healthy ack could not be confirmed through the control plane before the deadline ${p.deadline}`,
    };
  return { kind: 'confirmed', healthySince, ...(evidence ? { evidence } : {}) };
}

/** The pending activation's runtime compliance controls, within the confirm window; undefined: none. */
async function complianceStep(
  ctx: AgentContext,
  p: PendingRecord,
  deadline: number,
): Promise<ControlEvidence[] | undefined> {
  if (!p.compliance) return undefined;
  const evidence = await runRuntimeControls(p.compliance.runtime, deadline - ctx.now(), ctx.now);
  ctx.log.info('compliance', {
    target: p.target,
    mode: p.compliance.mode,
    results: evidence.map((e) => ({
      control: `${e.framework}/${e.control}`,
      ok: e.ok,
      exitCode: e.exitCode,
      excerpt: e.excerpt,
    })),
  });
  return evidence;
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
export async function fetchTarget(
  ctx: AgentContext,
  m: HostManifest,
  cacheKeys: readonly string[],
  current: Generation,
): Promise<FetchOutcome> {
  // Every gate but the switch inhibitor has passed: the moment the host became eligible to activate.
  ctx.log.info('fetching', { target: m.target, cache: m.cacheUrl });
  try {
    await ctx.activator.prepare(m.target, {
      cacheUrls: m.cacheUrl === null ? [] : [m.cacheUrl],
      cacheKeys,
    });
    return { kind: 'fetched' };
  } catch (e) {
    if (!isClosureRefused(e)) throw e;
    const reason = `closure refused (${e.code}): ${e.message}`.slice(0, 512);
    const fields = {
      target: m.target,
      code: e.code,
      storePath: e.storePath,
      cache: e.cache,
      reason,
    };
    if (!e.integrity) {
      ctx.log.warn('closure-unavailable', fields);
      return { kind: 'unavailable', reason };
    }
    ctx.log.error('closure-refused', { ...fields, keeping: current.number });
    ctx.quarantine.add(m.target, reason, ctx.now(), ctx.quarantineHours, m.releaseVersion);
    ctx.journal.append(
      {
        kind: 'failed',
        releaseVersion: m.releaseVersion,
        rolloutId: m.rolloutId,
        target: m.target,
        current: current.path,
        healthySince: null,
        probes: [],
        reason,
      },
      ctx.now(),
    );
    await flushQuietly(ctx);
    return { kind: 'failed', reason };
  }
}

/** The manifest's runtime controls, carried by the pending record so a restarted agent still runs them. */
function pendingCompliance(m: HostManifest): Pick<PendingRecord, 'compliance'> {
  const c = runtimeComplianceOf(m);
  return c ? { compliance: c } : {};
}

/** Starts an activation: pending record first (fsynced), then the switch, then the confirm window. */
export async function activate(
  ctx: AgentContext,
  m: HostManifest,
  deadlineMs: number,
): Promise<ConfirmOutcome | 'failed'> {
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
    ...pendingCompliance(m),
    phase: 'switching',
  };
  ctx.journal.append(ackFrom(p, 'started', previous.path), now);
  // The started ack is posted while the pending record is written and the generation created
  // (staging changes neither the running system nor the boot entry); the switch itself waits for
  // both: the record is what undoes an interrupted switch, the started ack the host's
  // disruption-budget slot. A run killed before the record leaves a started ack without an outcome,
  // as a run killed right after the append always could: the next run starts again.
  const posting = beforeDeadline(ctx, deadlineMs, () => flushQuietly(ctx));
  // Awaited below; if recording fails first, that error is the one that matters.
  posting.catch(() => {});
  // Where to return if both copies of the pending record were ever unreadable (the fail-safe).
  updateAgentState(ctx.state, {
    beforeActivation: { number: previous.number, path: previous.path },
  });
  writePending(ctx.state, p);
  ctx.log.info('switching', {
    target: m.target,
    fromGeneration: previous.number,
    deadline: p.deadline,
  });
  const act = ctx.activator;
  const [posted, staging] = await Promise.allSettled([
    posting,
    canStage(act) ? act.stage(m.target) : Promise.resolve(null),
  ]);
  if (posted.status === 'rejected') throw posted.reason;
  const staged = staging.status === 'fulfilled' ? staging.value : null;
  if (staged) {
    writePending(ctx.state, { ...p, staged });
    ctx.log.info('staged', { target: m.target, generation: staged.number });
  }
  try {
    if (staging.status === 'rejected') throw staging.reason;
    if (staged && canStage(act)) await act.switchStaged(staged);
    else await act.switch(m.target);
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
export async function recover(ctx: AgentContext): Promise<RecoverOutcome> {
  const p = readPending(ctx.state);
  if (!p) return 'none';
  if (isBootPhase(p.phase)) return recoverBoot(ctx, p);
  if (ctx.now() >= Date.parse(p.deadline)) {
    return rollbackPending(
      ctx,
      p,
      `activation of ${p.target} was not confirmed before its deadline ${p.deadline}`,
    );
  }
  if (p.phase === 'switching') {
    // Killed before the switch returned: the profile may point at a staged generation of the target
    // whose switch script never ran (or ran partly), so the profile saying "target" proves nothing.
    // Never resume it: restore the exact generation recorded; the reconciler may start the
    // activation again on this same run, with a generation of its own.
    ctx.log.warn('interrupted-switch', {
      target: p.target,
      restoring: p.previous.number,
      staged: p.staged?.number ?? null,
    });
    await ctx.activator.rollback({ number: p.previous.number, path: p.previous.path });
    clearPending(ctx.state);
    return 'interrupted-switch-undone';
  }
  const current = await ctx.activator.currentGeneration();
  if (current.path !== p.target && current.path === p.previous.path) {
    // Already rolled back (by safetyRecovery, or a run killed inside rollbackPending): finish it.
    await rollbackPending(
      ctx,
      p,
      `activation of ${p.target} was rolled back before it was confirmed`,
    );
    return 'rolled-back';
  }
  if (p.bootId !== null && p.bootId !== currentBootId())
    ctx.log.info('rebooted-in-confirm-window', { target: p.target });
  ctx.log.info('resuming-confirm-window', { target: p.target, deadline: p.deadline });
  return confirmPending(ctx, { ...p, phase: 'switched' });
}

export type RecoverOutcome =
  'none' | ConfirmOutcome | 'interrupted-switch-undone' | 'awaiting-reboot' | 'failed';

// ---- the reboot path ---------------------------------------------------------------------------------

function rebootSupport(ctx: AgentContext, p: PendingRecord): Activator & RebootCapable {
  if (!canReboot(ctx.activator))
    throw new ActivationError(
      `pending activation of ${p.target} is in phase ${p.phase}, but the ${ctx.activator.kind} activator cannot boot or reboot`,
    );
  return ctx.activator;
}

/**
 * Stages the target for the next boot and reboots (the reconciler's `defer` with a reboot allowed).
 * The pending record is fsynced before anything is touched and carries the boot id before the reboot,
 * so the run after the boot knows it rebooted, and the deadline, which the reboot does not reset.
 */
export async function activateViaReboot(
  ctx: AgentContext,
  act: Activator & RebootCapable,
  m: HostManifest,
  deadlineMs: number,
  inhibitor: string,
): Promise<'rebooting' | 'failed'> {
  const previous = await act.currentGeneration();
  const now = ctx.now();
  const p: PendingRecord = {
    target: m.target,
    previous,
    deadline: isoTime(deadlineMs),
    bootId: await act.bootId(),
    releaseVersion: m.releaseVersion,
    rolloutId: m.rolloutId,
    startedAt: isoTime(now),
    probes: m.probes,
    healthyPassesRequired: m.healthyPassesRequired,
    ...pendingCompliance(m),
    phase: 'booting',
  };
  // `started` first: from here on the host holds its disruption-budget slot, as a live switch does.
  ctx.journal.append(
    ackFrom(p, 'started', previous.path, {
      reason: `rebooting into its target (${inhibitor}); confirm before ${p.deadline}`.slice(
        0,
        512,
      ),
    }),
    now,
  );
  writePending(ctx.state, p);
  ctx.log.info('staging-for-boot', {
    target: m.target,
    fromGeneration: previous.number,
    deadline: p.deadline,
    bootId: p.bootId,
    inhibitor,
  });
  await flushQuietly(ctx);
  try {
    await act.boot(m.target);
    ctx.log.info('rebooting', { target: m.target, bootId: p.bootId, deadline: p.deadline });
    await act.reboot();
  } catch (e) {
    // Staging or the reboot command failed: the host still runs the previous system. Restore its boot
    // entry, and quarantine the target so the next cycle does not retry the same failure at once.
    const reason = `reboot into ${m.target} failed: ${(e as Error).message}`.slice(0, 512);
    ctx.log.error('reboot-failed', { target: m.target, reason });
    await act.rollbackBoot(previous);
    ctx.quarantine.add(m.target, reason, ctx.now(), ctx.quarantineHours, m.releaseVersion);
    ctx.journal.append(ackFrom(p, 'failed', previous.path, { reason }), ctx.now());
    clearPending(ctx.state);
    await flushQuietly(ctx);
    return 'failed';
  }
  return 'rebooting';
}

/**
 * Rollback on the reboot path: the previous generation (by number) becomes the boot default again.
 * If the host never booted the target, that is all; if it runs the target, it reboots back, and the
 * rolled-back ack is journaled after that reboot, when it is true (recoverBoot).
 */
async function rollbackAcrossBoot(
  ctx: AgentContext,
  p: PendingRecord,
  reason: string,
): Promise<'rolled-back' | 'rebooting'> {
  const act = rebootSupport(ctx, p);
  const running = await act.runningSystem();
  ctx.log.warn('magic-rollback', {
    target: p.target,
    toGeneration: p.previous.number,
    toPath: p.previous.path,
    reason,
    running,
    acrossReboot: running !== p.previous.path,
  });
  await act.rollbackBoot({ number: p.previous.number, path: p.previous.path });
  ctx.quarantine.add(p.target, reason, ctx.now(), ctx.quarantineHours, p.releaseVersion);
  if (running === p.previous.path) return finishRollback(ctx, p, reason);
  writePending(ctx.state, {
    ...p,
    phase: 'rebooting-back',
    bootId: await act.bootId(),
    rollbackReason: reason.slice(0, 512),
  });
  await flushQuietly(ctx);
  ctx.log.warn('rebooting-back', {
    target: p.target,
    toGeneration: p.previous.number,
    toPath: p.previous.path,
  });
  await act.reboot();
  return 'rebooting';
}

/** What recovery on the reboot path sees at the start of a run. */
interface BootSeen {
  act: Activator & RebootCapable;
  bootId: string;
  /** The host booted since the record was written. */
  rebooted: boolean;
  pastDeadline: boolean;
}

/** Recovery of a pending record of the reboot path, at the start of every run. */
async function recoverBoot(ctx: AgentContext, p: PendingRecord): Promise<RecoverOutcome> {
  const act = rebootSupport(ctx, p);
  const bootId = await act.bootId();
  const seen: BootSeen = {
    act,
    bootId,
    rebooted: p.bootId !== bootId,
    pastDeadline: ctx.now() >= Date.parse(p.deadline),
  };
  if (p.phase === 'rebooting-back') return recoverRebootingBack(ctx, p, seen);
  if (p.phase === 'booting') return recoverBooting(ctx, p, seen);
  // booted: a run restarted inside the confirm window after the boot.
  if (seen.pastDeadline)
    return rollbackAcrossBoot(
      ctx,
      p,
      `activation of ${p.target} was not confirmed before its deadline ${p.deadline}`,
    );
  ctx.log.info('resuming-confirm-window', {
    target: p.target,
    deadline: p.deadline,
    afterReboot: true,
  });
  return confirmPending(ctx, p);
}

/** A rollback that reboots back into the previous generation: ask again, finish it, or report it failed. */
async function recoverRebootingBack(
  ctx: AgentContext,
  p: PendingRecord,
  { act, rebooted }: BootSeen,
): Promise<RecoverOutcome> {
  if (!rebooted) {
    // The reboot back was asked for but has not happened (the command failed or is slow): ask again.
    ctx.log.warn('reboot-back-pending', { target: p.target, toGeneration: p.previous.number });
    await act.rollbackBoot({ number: p.previous.number, path: p.previous.path });
    await act.reboot();
    return 'rebooting';
  }
  const running = await act.runningSystem();
  if (running === p.previous.path) {
    const reason =
      p.rollbackReason ??
      `activation of ${p.target} was not confirmed before its deadline ${p.deadline}`;
    return finishRollback(ctx, p, reason, { acrossReboot: true });
  }
  const reason = `rolled back across a reboot, but the host runs ${running ?? 'an unknown system'}, not generation ${p.previous.number} (${p.previous.path})`;
  ctx.log.error('rollback-not-effective', {
    target: p.target,
    running,
    expected: p.previous.path,
  });
  ctx.journal.append(ackFrom(p, 'failed', running, { reason: reason.slice(0, 512) }), ctx.now());
  clearPending(ctx.state);
  await flushQuietly(ctx);
  return 'failed';
}

/** An activation that reboots into its target: still waiting, booted something else, or booted it. */
async function recoverBooting(
  ctx: AgentContext,
  p: PendingRecord,
  { act, bootId, rebooted, pastDeadline }: BootSeen,
): Promise<RecoverOutcome> {
  if (!rebooted) {
    if (pastDeadline)
      return rollbackAcrossBoot(
        ctx,
        p,
        `the host did not reboot into ${p.target} before the confirm deadline ${p.deadline}`,
      );
    ctx.log.info('awaiting-reboot', { target: p.target, bootId, deadline: p.deadline });
    return 'awaiting-reboot';
  }
  const running = await act.runningSystem();
  if (running !== p.target) {
    // The bootloader fell back (or another entry was chosen): the target did not boot. Make the
    // previous generation the default again, quarantine the target and report the failure.
    const reason =
      `rebooted into ${running ?? 'an unknown system'} instead of ${p.target} (bootloader fallback?)`.slice(
        0,
        512,
      );
    ctx.log.error('boot-failed', { target: p.target, running, restoring: p.previous.number });
    await act.rollbackBoot({ number: p.previous.number, path: p.previous.path });
    ctx.quarantine.add(p.target, reason, ctx.now(), ctx.quarantineHours, p.releaseVersion);
    ctx.journal.append(ackFrom(p, 'failed', running, { reason }), ctx.now());
    clearPending(ctx.state);
    await flushQuietly(ctx);
    return 'failed';
  }
  const booted: PendingRecord = { ...p, phase: 'booted', bootId };
  writePending(ctx.state, booted);
  ctx.journal.append(
    ackFrom(p, 'activated', p.target, { reason: 'rebooted into its target' }),
    ctx.now(),
  );
  ctx.log.info('booted-into-target', { target: p.target, bootId, deadline: p.deadline });
  if (pastDeadline)
    return rollbackAcrossBoot(
      ctx,
      booted,
      `activation of ${p.target} was not confirmed before its deadline ${p.deadline}`,
    );
  return confirmPending(ctx, booted);
}

/** Rollback ordered by the reconciler (rollback-and-halt) for a host that had confirmed its target. */
export async function rollbackConfirmed(
  ctx: AgentContext,
  to: { number: number; path: string },
  target: string,
  releaseVersion: number,
  rolloutId: string | null,
  reason: string,
): Promise<void> {
  await ctx.activator.rollback(to);
  ctx.quarantine.add(target, reason, ctx.now(), ctx.quarantineHours, releaseVersion);
  ctx.journal.append(
    {
      kind: 'rolled-back',
      releaseVersion,
      rolloutId,
      target,
      current: to.path,
      healthySince: null,
      probes: [],
      reason,
    },
    ctx.now(),
  );
  updateAgentState(ctx.state, { confirmed: null });
  ctx.log.warn('rolled-back-by-policy', { target, generation: to.number, reason });
  await flushQuietly(ctx);
}

export type SafetyContext = Pick<
  AgentContext,
  'state' | 'activator' | 'quarantine' | 'log' | 'now' | 'quarantineHours'
>;

export type SafetyOutcome =
  'none' | 'rolled-back' | 'rolled-back-unreadable-pending' | 'nothing-to-undo';

/**
 * The first thing every run does, before the trust root, the host key or the ack journal are read:
 * it depends on nothing but the pending record and the profile, so no damaged or missing local file
 * can keep a host on an unconfirmed generation past its deadline.
 *   - a pending activation past its deadline (or, with `cannotConfirm`, one that can never be
 *     confirmed because the ack journal is unusable) -> restore the recorded generation now. The
 *     record stays: recover() finishes the job (rolled-back ack, clear) once the journal is usable.
 *   - both copies of the pending record unreadable -> fail-safe: the deadline is unknown, so it counts
 *     as passed. If the profile runs anything other than the generation recorded in agent-state.json
 *     before that activation started, restore that generation now; then set the damaged copies aside.
 *     With no such generation recorded, nothing safe can be done automatically: LocalStateError.
 */
export async function safetyRecovery(
  ctx: SafetyContext,
  opts: { cannotConfirm?: boolean } = {},
): Promise<SafetyOutcome> {
  const read = readPendingCopies(ctx.state);
  if (read.kind === 'none') return 'none';
  for (const d of read.damaged)
    ctx.log.error('pending-copy-damaged', { file: d.file, reason: d.reason });
  if (read.kind === 'damaged') return failSafe(ctx, read.damaged);
  const p = read.record;
  if (read.damaged.length) {
    // One good copy left: write both again so that the next damage is survived too.
    try {
      writePending(ctx.state, p);
    } catch (e) {
      ctx.log.warn('pending-copy-not-repaired', { reason: (e as Error).message });
    }
  }
  // The reboot path is undone with `boot` + reboot, never a live switch: recover() (recoverBoot) owns it.
  if (isBootPhase(p.phase)) return 'none';
  const past = ctx.now() >= Date.parse(p.deadline);
  if (!past && !opts.cannotConfirm) return 'none';
  const current = await ctx.activator.currentGeneration();
  if (current.number === p.previous.number && current.path === p.previous.path)
    return 'nothing-to-undo';
  const reason = past
    ? `activation of ${p.target} was not confirmed before its deadline ${p.deadline}`
    : `activation of ${p.target} cannot be confirmed: the ack journal is unusable`;
  ctx.log.warn('magic-rollback', {
    target: p.target,
    toGeneration: p.previous.number,
    toPath: p.previous.path,
    reason,
  });
  await ctx.activator.rollback({ number: p.previous.number, path: p.previous.path });
  quarantineQuietly(ctx, p.target, reason, p.releaseVersion);
  return 'rolled-back';
}

async function failSafe(
  ctx: SafetyContext,
  damaged: { file: string; reason: string }[],
): Promise<SafetyOutcome> {
  const before = readAgentState(ctx.state).beforeActivation;
  const files = damaged.map((d) => d.file).join(', ');
  if (!before)
    throw new LocalStateError(
      damaged[0]!.file,
      'damaged',
      `no copy of the pending record is readable (${files}) and agent-state.json ` +
        `records no generation to return to; restore the generation that ran before ` +
        `the last activation by hand, then remove ${files}`,
    );
  const current = await ctx.activator.currentGeneration();
  let outcome: SafetyOutcome = 'nothing-to-undo';
  if (current.number !== before.number || current.path !== before.path) {
    const reason = `the pending record is unreadable (${files}): its deadline is unknown, so it counts as passed`;
    ctx.log.error('magic-rollback', {
      target: current.path,
      toGeneration: before.number,
      toPath: before.path,
      reason,
    });
    // Not quarantined: the target is not known to be bad, only the record was lost.
    await ctx.activator.rollback(before);
    outcome = 'rolled-back-unreadable-pending';
  }
  const kept = setAsideDamagedPending(ctx.state, ctx.now());
  ctx.log.error('pending-record-unreadable', {
    files: damaged.map((d) => d.file),
    keptAs: kept,
    running: before.path,
    reason: 'both copies of the pending record were unreadable; the damaged files were set aside',
  });
  return outcome;
}

function quarantineQuietly(
  ctx: SafetyContext,
  target: string,
  reason: string,
  releaseVersion: number,
): void {
  try {
    ctx.quarantine.add(target, reason, ctx.now(), ctx.quarantineHours, releaseVersion);
  } catch (e) {
    // The rollback is what keeps the host safe; a damaged quarantine file must not undo it.
    ctx.log.error('quarantine-not-recorded', { target, reason: (e as Error).message });
  }
}

export { readAgentState };
