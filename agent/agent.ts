// Wiring: config -> the objects one cycle needs, under the state-directory lock.
import { readFileSync } from 'node:fs';
import { readPrivateKey } from '../protocol/keys.ts';
import { ACK_JOURNAL_FILE, AckJournal } from './ack-journal.ts';
import { safetyRecovery } from './activation.ts';
import { AckSync } from './ack-sync.ts';
import { createActivator } from './activators/index.ts';
import type { AgentConfig } from './config.ts';
import { loadPinnedRoot, runCycle, type CycleDeps, type CycleOutcome } from './cycle.ts';
import { HttpCache } from './http-cache.ts';
import { HttpClient } from './http-client.ts';
import { acquireLock } from './lock.ts';
import { createLogger, type Logger } from './log.ts';
import { Quarantine } from './quarantine.ts';
import { isLocalStateError, StateDir } from './state-dir.ts';

export type RunOutcome = CycleOutcome | { kind: 'locked'; heldBy: number } | { kind: 'local-state'; file: string; problem: 'damaged' | 'unwritable'; reason: string };

export interface RunOptions {
  log?: Logger;
  now?: () => number;
  /**
   * Keep the mTLS keep-alive connections open for the next run of the same state directory (daemon
   * mode, the demo). Call closeAgentConnections() when done.
   */
  reuseConnections?: boolean;
}

const clients = new Map<string, HttpClient>();

/** Closes the connections kept by runs with `reuseConnections`. */
export function closeAgentConnections(): void {
  for (const c of clients.values()) c.close();
  clients.clear();
}

/** One complete run: lock, cycle, unlock. A second concurrent run returns `locked` without touching anything. */
export async function runAgentOnce(config: AgentConfig, opts: RunOptions = {}): Promise<RunOutcome> {
  const log = opts.log ?? createLogger(config.host);
  const state = new StateDir(config.stateDir);
  const lock = acquireLock(state.root);
  if (!lock.acquired) {
    log.info('already-running', { heldBy: lock.heldBy, reason: `another agent run (pid ${lock.heldBy}) holds ${state.root}; this run exits without doing anything` });
    return { kind: 'locked', heldBy: lock.heldBy };
  }
  let client: HttpClient | undefined;
  const started = Date.now();
  const now = opts.now ?? Date.now;
  try {
    // Recovery first: it needs only the pending record and the profile, so no other damaged or
    // missing file (trust root, host key, ack journal, trust state) can hold a rollback back.
    const activator = createActivator(config.activator, state, { caFile: config.caFile });
    const quarantine = new Quarantine(state);
    const safety = { state, activator, quarantine, log, now, quarantineHours: config.quarantineHours };
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
    if (journal.repaired) log.error('ack-journal-damaged', { file: state.path(ACK_JOURNAL_FILE), keptAs: journal.repaired.savedAs, cutBytes: journal.repaired.cutBytes, reason: 'unreadable lines at the end of the ack journal were cut off; the chain continues from the last readable ack' });
    const cache = new HttpCache(state.path('http-cache'));
    client = (opts.reuseConnections ? clients.get(state.root) : undefined) ?? new HttpClient({
      baseUrl: config.controlPlaneUrl,
      ca: readFileSync(config.caFile),
      cert: readFileSync(config.certFile),
      certFile: config.certFile,
      key: readFileSync(config.keyFile),
      cache,
      timeoutMs: config.requestTimeoutMs,
      retries: config.retries,
    });
    if (opts.reuseConnections) clients.set(state.root, client);
    const deps: CycleDeps = {
      host: config.host,
      state,
      activator,
      journal,
      sync: new AckSync(state, journal, client, config.host, log, config.ackPath),
      quarantine,
      log,
      now,
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
      quarantineHours: config.quarantineHours,
      probeIntervalMs: config.probeIntervalMs,
      client,
      cache,
      pinnedRoot,
      clockSkewSeconds: config.clockSkewSeconds,
    };
    const before = { ...client.stats, wire: client.wireBytes() };
    const outcome = await runCycle(deps);
    log.info('cycle-done', { ms: Date.now() - started, outcome: outcome.kind, requests: client.stats.requests - before.requests, notModified: client.stats.notModified - before.notModified, bodyBytes: client.stats.bodyBytes - before.bodyBytes, wireBytes: client.wireBytes() - before.wire });
    return outcome;
  } catch (e) {
    if (!isLocalStateError(e)) throw e;
    log.error('local-state-damaged', { file: e.file, problem: e.problem, reason: e.message });
    return { kind: 'local-state', file: e.file, problem: e.problem, reason: e.message };
  } finally {
    if (!opts.reuseConnections) client?.close();
    lock.lock.release();
  }
}
