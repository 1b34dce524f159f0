// Wiring: config -> the objects one cycle needs, under the state-directory lock.
import { readFileSync } from 'node:fs';
import { readPrivateKey } from '../protocol/keys.ts';
import { AckJournal } from './ack-journal.ts';
import { AckSync } from './ack-sync.ts';
import { createActivator } from './activators/index.ts';
import type { AgentConfig } from './config.ts';
import { loadPinnedRoot, runCycle, type CycleDeps, type CycleOutcome } from './cycle.ts';
import { HttpCache } from './http-cache.ts';
import { HttpClient } from './http-client.ts';
import { acquireLock } from './lock.ts';
import { createLogger, type Logger } from './log.ts';
import { Quarantine } from './quarantine.ts';
import { StateDir } from './state-dir.ts';

export type RunOutcome = CycleOutcome | { kind: 'locked'; heldBy: number };

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
  try {
    const pinnedRoot = loadPinnedRoot(config.trustRootFile);
    const hostKey = readPrivateKey(config.hostKeyFile);
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
    const journal = new AckJournal(state, pinnedRoot.signed.fleet, config.host, hostKey);
    const deps: CycleDeps = {
      host: config.host,
      state,
      activator: createActivator(config.activator, state, { caFile: config.caFile }),
      journal,
      sync: new AckSync(state, journal, client, config.host, log, config.ackPath),
      quarantine: new Quarantine(state),
      log,
      now: opts.now ?? Date.now,
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
  } finally {
    if (!opts.reuseConnections) client?.close();
    lock.lock.release();
  }
}
