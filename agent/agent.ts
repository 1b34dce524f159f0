// Wiring: config -> the objects one cycle needs, under the state-directory lock.
import { readFileSync } from 'node:fs';
import { readDocumentMemo, readPrivateKey, saveDocumentMemo } from '../protocol/index.ts';
import { ACK_JOURNAL_FILE, AckJournal } from './ack-journal.ts';
import { safetyRecovery } from './activation.ts';
import { AckSync } from './ack-sync.ts';
import { createActivator } from './activators/index.ts';
import { controlPlaneUrlsOf, type AgentConfig } from './config.ts';
import { preferredBoxStore } from './control-planes.ts';
import { loadPinnedRoot, runCycle, type CycleDeps, type CycleOutcome } from './cycle.ts';
import { HttpCache } from './http-cache.ts';
import { HttpClient } from './http-client.ts';
import { ensureCertificate } from './enrolment.ts';
import { acquireLock } from './lock.ts';
import { createLogger, type Logger } from './log.ts';
import {
  agentPhase,
  cycleResult,
  rememberVerification,
  writeAgentMetrics,
  type RunFacts,
} from './metrics.ts';
import { readPending } from './pending.ts';
import { Quarantine } from './quarantine.ts';
import { isLocalStateError, StateDir } from './state-dir.ts';
import { tlsSessionStore } from './tls-session.ts';

export type RunOutcome =
  | CycleOutcome
  | { kind: 'locked'; heldBy: number }
  | { kind: 'local-state'; file: string; problem: 'damaged' | 'unwritable'; reason: string };

export interface RunOptions {
  log?: Logger;
  now?: () => number;
  /**
   * Keep the mTLS keep-alive connections open for the next run of the same state directory (daemon
   * mode, the demo). Call closeAgentConnections() when done.
   */
  reuseConnections?: boolean;
}

/** The release walk's memo in the state directory (protocol/memo-file.ts). */
export const VERIFIED_DOCS_FILE = 'verified-docs';

const clients = new Map<string, HttpClient>();

/** Closes the connections kept by runs with `reuseConnections`. */
export function closeAgentConnections(): void {
  for (const c of clients.values()) c.close();
  clients.clear();
}

/** One complete run: lock, cycle, unlock. A second concurrent run returns `locked` without touching anything. */
export async function runAgentOnce(
  config: AgentConfig,
  opts: RunOptions = {},
): Promise<RunOutcome> {
  const log = opts.log ?? createLogger(config.host);
  const state = new StateDir(config.stateDir);
  const lock = acquireLock(state.root);
  if (!lock.acquired) {
    log.info('already-running', {
      heldBy: lock.heldBy,
      reason: `another agent run (pid ${lock.heldBy}) holds ${state.root}; this run exits without doing anything`,
    });
    return { kind: 'locked', heldBy: lock.heldBy };
  }
  let client: HttpClient | undefined;
  const started = Date.now();
  const now = opts.now ?? Date.now;
  let outcome: RunFacts['outcome'] = 'error';
  let decided: { target: string | null; release: number | null } = { target: null, release: null };
  let activator: ReturnType<typeof createActivator> | undefined;
  try {
    // Recovery first: it needs only the pending record and the profile, so no other damaged or
    // missing file (trust root, host key, ack journal, trust state) can hold a rollback back.
    const act = createActivator(config.activator, state, { caFile: config.caFile });
    activator = act;
    const quarantine = new Quarantine(state);
    const safety = {
      state,
      activator: act,
      quarantine,
      log,
      now,
      quarantineHours: config.quarantineHours,
    };
    const early = await safetyRecovery(safety);
    if (early !== 'none') log.info('recovery', { result: early, step: 'before-anything-else' });
    let journal: AckJournal;
    const pinnedRoot = loadPinnedRoot(config.trustRootFile);
    const hostKey = readPrivateKey(config.hostKeyFile);
    try {
      journal = new AckJournal(state, pinnedRoot.signed.fleet, config.host, hostKey);
    } catch (e) {
      // Without a journal no healthy ack can be signed: an activation in its window can never be
      // confirmed, so it is undone now rather than at its deadline.
      if (isLocalStateError(e)) await safetyRecovery(safety, { cannotConfirm: true });
      throw e;
    }
    if (journal.repaired)
      log.error('ack-journal-damaged', {
        file: state.path(ACK_JOURNAL_FILE),
        keptAs: journal.repaired.savedAs,
        cutBytes: journal.repaired.cutBytes,
        reason:
          'unreadable lines at the end of the ack journal were cut off; the chain continues from the last readable ack',
      });
    // A first certificate (token) or a renewed one, before the client that presents it is built.
    const cert = await ensureCertificate({ config, state, hostKey, now: now(), log });
    if (cert === 'renewed' || cert === 'enrolled') dropCachedClient(state.root);
    const cache = new HttpCache(state.path('http-cache'));
    // What earlier runs' release walks verified: a steady run hashes its documents instead of taking
    // them in and checking their signatures again (docs/architecture.md, "Timer mode").
    const memo = readDocumentMemo(state.root, state.path(VERIFIED_DOCS_FILE));
    client =
      (opts.reuseConnections ? clients.get(state.root) : undefined) ??
      newClient(config, state, cache, log);
    if (opts.reuseConnections) clients.set(state.root, client);
    const deps: CycleDeps = {
      host: config.host,
      state,
      activator,
      journal,
      sync: new AckSync(state, journal, client, config.host, log, config.ackPath),
      quarantine,
      // The metrics take the target and release from the cycle's own decision record.
      log:
        config.metricsFile === null
          ? log
          : observeDecision(
              log,
              (f) =>
                (decided = {
                  target: typeof f.target === 'string' ? f.target : null,
                  release: typeof f.release === 'number' ? f.release : null,
                }),
            ),
      now,
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
      quarantineHours: config.quarantineHours,
      probeIntervalMs: config.probeIntervalMs,
      client,
      cache,
      memo,
      pinnedRoot,
      clockSkewSeconds: config.clockSkewSeconds,
    };
    const before = { ...client.stats, wire: client.wireBytes() };
    const result = await runCycle(deps);
    outcome = result;
    // Only after a walk: a run that never reached the tree keeps the memo it found.
    if (memo.used().length > 0) saveDocumentMemo(state.root, state.path(VERIFIED_DOCS_FILE), memo);
    log.info('cycle-done', {
      ms: Date.now() - started,
      outcome: outcome.kind,
      requests: client.stats.requests - before.requests,
      notModified: client.stats.notModified - before.notModified,
      bodyBytes: client.stats.bodyBytes - before.bodyBytes,
      wireBytes: client.wireBytes() - before.wire,
      connections: client.stats.connections - before.connections,
      tlsResumed: client.stats.resumed - before.resumed,
      verifiedFromMemo: memo.hits,
    });
    return result;
  } catch (e) {
    if (!isLocalStateError(e)) throw e;
    log.error('local-state-damaged', { file: e.file, problem: e.problem, reason: e.message });
    const damaged: RunOutcome = {
      kind: 'local-state',
      file: e.file,
      problem: e.problem,
      reason: e.message,
    };
    outcome = damaged;
    return damaged;
  } finally {
    if (!opts.reuseConnections) client?.close();
    if (config.metricsFile !== null)
      await writeRunMetrics(config.metricsFile, state, activator, {
        host: config.host,
        outcome,
        decided,
        started,
        log,
      });
    lock.lock.release();
  }
}

function dropCachedClient(stateRoot: string): void {
  clients.get(stateRoot)?.close();
  clients.delete(stateRoot);
}

function newClient(
  config: AgentConfig,
  state: StateDir,
  cache: HttpCache,
  log: Logger,
): HttpClient {
  const cert = readFileSync(config.certFile);
  const urls = controlPlaneUrlsOf(config);
  return new HttpClient({
    baseUrl: urls,
    ca: readFileSync(config.caFile),
    cert,
    certFile: config.certFile,
    key: readFileSync(config.keyFile),
    cache,
    timeoutMs: config.requestTimeoutMs,
    retries: config.retries,
    // A timer run is a new process: resume the previous run's TLS session instead of a full mTLS handshake.
    tlsSession: tlsSessionStore(state, urls, cert),
    // Several boxes: start with the one that answered last time; log every move to another.
    preferred: preferredBoxStore(state),
    onFailover: (e) => log.warn('control-plane-failover', e),
  });
}

function observeDecision(
  log: Logger,
  onDecision: (fields: Record<string, unknown>) => void,
): Logger {
  const observed = (
    level: Parameters<Logger['log']>[0],
    event: string,
    fields?: Record<string, unknown>,
  ) => {
    if (event === 'decision' && fields) onDecision(fields);
    log.log(level, event, fields);
  };
  return {
    log: observed,
    info: (e, f) => observed('info', e, f),
    warn: (e, f) => observed('warn', e, f),
    error: (e, f) => observed('error', e, f),
  };
}

/**
 * End of every run, also a failed one: the metrics file says what happened. Its own failure (full
 * disk, bad directory) is logged and never changes the run's outcome.
 */
async function writeRunMetrics(
  file: string,
  state: StateDir,
  activator: ReturnType<typeof createActivator> | undefined,
  run: {
    host: string;
    outcome: RunFacts['outcome'];
    decided: { target: string | null; release: number | null };
    started: number;
    log: Logger;
  },
): Promise<void> {
  try {
    const finishedAt = Date.now();
    const pending = (() => {
      try {
        return readPending(state);
      } catch {
        return undefined;
      }
    })();
    const current = activator ? await activator.currentGeneration().catch(() => null) : null;
    const verified = run.outcome !== 'error' && run.outcome.kind === 'decided';
    writeAgentMetrics(file, {
      host: run.host,
      current: current ? { number: current.number, path: current.path } : null,
      target: run.decided.target ?? pending?.target ?? null,
      releaseVersion: run.decided.release ?? pending?.releaseVersion ?? null,
      phase: agentPhase({ outcome: run.outcome, pendingPhase: pending?.phase ?? null }),
      result: cycleResult(run.outcome),
      durationMs: finishedAt - run.started,
      finishedAt,
      quarantined: (() => {
        try {
          return new Quarantine(state).active(finishedAt).length;
        } catch {
          return 0;
        }
      })(),
      lastVerifiedAt: rememberVerification(state, verified ? finishedAt : null),
    });
  } catch (e) {
    run.log.warn('metrics-not-written', { file, reason: (e as Error).message });
  }
}
