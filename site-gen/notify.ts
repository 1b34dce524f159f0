// Notifications from `site watch`: after each build, the fleet's state is read (the verified release and
// the published signed acks) and each new event is delivered once to a command (argv, never a shell; the
// event JSON on stdin) or a webhook (POST JSON, with a timeout):
//   channel-halted   a channel's rollout halted (evidence: the failed hosts' acks)
//   host-failed      a host reported a failure or rollback, or is presumed failed (evidence: its ack)
//   channel-complete a channel's rollout completed (evidence: the acks of its settled hosts)
// Every event carries the signed ack envelopes that prove it, exactly as published, so a receiver can
// verify them (protocol/acks.ts verifyAck) without trusting the watcher.
//
// Once per event: an event's id names what happened (kind, channel or host, rollout, and for a host the
// ack's seq). Ids are recorded in the state file (atomic write) only after a delivery succeeded, so a
// restart repeats nothing delivered, and a failed delivery is retried after the next build.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import {
  writeFileAtomic,
  canonicalString,
  parseStrictJson,
  parseWith,
  isoTime,
  type SignedRoot,
} from '../protocol/index.ts';
import { acksDirOf, loadFleetState } from '../read-side/index.ts';
import type { AckRecord, FleetView } from '../reconciler/index.ts';

export type NotifyTarget = { kind: 'command'; argv: string[] } | { kind: 'webhook'; url: string };

export interface FleetEvent {
  type: 'nixfleet-event';
  version: 1;
  id: string;
  kind: 'channel-halted' | 'host-failed' | 'channel-complete';
  fleet: string;
  channel: string;
  host: string | null;
  rolloutId: string;
  releaseVersion: number;
  reason: string;
  time: string;
  /** The signed ack envelopes ({signed, signatures}) that prove the event, as the control plane published them. */
  evidence: unknown[];
}

/** Bounds: a hung command or webhook must not stall the watcher forever. */
export const DELIVERY_TIMEOUT_MS = 10_000;

const NotifyState = z.strictObject({ notified: z.array(z.string().max(512)).max(100_000) });

export class NotifyStateInvalid extends Error {
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super(`notification state ${file}: ${detail}`);
    this.name = 'NotifyStateInvalid';
  }
}

/** The events the view shows, with their evidence read from the published acks. */
export function fleetEvents(
  view: FleetView,
  fleet: string,
  latest: Record<string, AckRecord>,
  envelopeOf: (host: string, ack: AckRecord) => unknown | null,
): FleetEvent[] {
  const time = isoTime(view.now);
  const events: FleetEvent[] = [];
  const evidence = (hosts: string[]) =>
    hosts.flatMap((h) => {
      const ack = latest[h];
      const env = ack ? envelopeOf(h, ack) : null;
      return env ? [env] : [];
    });
  for (const ch of view.channels) {
    const hosts = view.hosts.filter((h) => h.channel === ch.channel);
    const base = {
      type: 'nixfleet-event' as const,
      version: 1 as const,
      fleet,
      channel: ch.channel,
      rolloutId: ch.rolloutId,
      releaseVersion: ch.releaseVersion,
      time,
    };
    for (const h of hosts.filter((x) => x.phase === 'failed')) {
      const ack = latest[h.host];
      if (!ack || ack.rolloutId !== ch.rolloutId) continue;
      events.push({
        ...base,
        id: `host-failed:${h.host}:${ch.rolloutId}:${ack.seq}`,
        kind: 'host-failed',
        host: h.host,
        reason: h.detail,
        evidence: evidence([h.host]),
      });
    }
    if (ch.state === 'halted') {
      events.push({
        ...base,
        id: `channel-halted:${ch.channel}:${ch.rolloutId}`,
        kind: 'channel-halted',
        host: null,
        reason: ch.reason,
        evidence: evidence(hosts.filter((x) => x.phase === 'failed').map((x) => x.host)),
      });
    }
    if (ch.state === 'complete') {
      events.push({
        ...base,
        id: `channel-complete:${ch.channel}:${ch.rolloutId}`,
        kind: 'channel-complete',
        host: null,
        reason: ch.reason,
        evidence: evidence(
          hosts.filter((x) => x.phase === 'soaked' || x.phase === 'converged').map((x) => x.host),
        ),
      });
    }
  }
  return events;
}

function runCommand(argv: string[], event: FleetEvent): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: ['pipe', 'ignore', 'pipe'],
      env: { ...process.env, NIXFLEET_EVENT: event.kind, NIXFLEET_EVENT_ID: event.id },
    });
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), DELIVERY_TIMEOUT_MS);
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-500)));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`--notify-command ${argv[0]}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else
        reject(
          new Error(
            `--notify-command ${argv[0]} exited ${code ?? signal}${stderr ? `: ${stderr.trim()}` : ''}`,
          ),
        );
    });
    child.stdin.on('error', () => undefined); // a command that does not read stdin is fine
    child.stdin.end(JSON.stringify(event) + '\n');
  });
}

async function postWebhook(url: string, event: FleetEvent): Promise<void> {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(event),
    signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS),
  });
  await r.arrayBuffer();
  if (r.status < 200 || r.status >= 300) throw new Error(`--notify-url ${url}: HTTP ${r.status}`);
}

export interface NotifierOptions {
  treeDir: string;
  pinnedRoot: SignedRoot;
  target: NotifyTarget;
  stateFile: string;
  clockSkewSeconds?: number;
  log?: (event: Record<string, unknown>) => void;
}

export class Notifier {
  private readonly notified: Set<string>;
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly o: NotifierOptions) {
    this.notified = new Set(readState(o.stateFile));
  }

  /** Queues one check at `now` (checks run one after another); resolves when it is done. */
  check(now: number): Promise<void> {
    const run = this.queue.then(() => this.checkNow(now));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Resolves once every queued check has finished. */
  idle(): Promise<void> {
    return this.queue;
  }

  private async checkNow(now: number): Promise<void> {
    const state = await loadFleetState(this.o.treeDir, this.o.pinnedRoot, {
      now,
      ...(this.o.clockSkewSeconds === undefined
        ? {}
        : { clockSkewSeconds: this.o.clockSkewSeconds }),
    });
    const latest = state.input.acks;
    const acksDir = acksDirOf(this.o.treeDir);
    const envelopeOf = (host: string, ack: AckRecord): unknown | null => {
      // The published file is the evidence, taken only when it is the very ack that was verified.
      try {
        const env = JSON.parse(readFileSync(join(acksDir, 'hosts', `${host}.json`), 'utf8')) as {
          signed: unknown;
        };
        return canonicalString(env.signed) === canonicalString(ack) ? env : null;
      } catch {
        return null;
      }
    };
    for (const event of fleetEvents(state.view, state.release.root.fleet, latest, envelopeOf)) {
      if (this.notified.has(event.id)) continue;
      try {
        if (this.o.target.kind === 'command') await runCommand(this.o.target.argv, event);
        else await postWebhook(this.o.target.url, event);
      } catch (e) {
        this.o.log?.({
          event: 'notify-failed',
          id: event.id,
          error: (e as Error).message,
          retry: 'after the next build',
        });
        continue;
      }
      this.notified.add(event.id);
      writeFileAtomic(this.o.stateFile, JSON.stringify({ notified: [...this.notified] }) + '\n', {
        mode: 0o600,
      });
      this.o.log?.({ event: 'notified', id: event.id, kind: event.kind });
    }
  }
}

function readState(file: string): string[] {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new NotifyStateInvalid(file, `cannot read it (${(e as NodeJS.ErrnoException).code})`);
  }
  try {
    return parseWith(
      NotifyState,
      parseStrictJson(bytes, { file, maxBytes: 64 * 1024 * 1024 }),
      file,
    ).notified;
  } catch (e) {
    throw new NotifyStateInvalid(file, (e as Error).message);
  }
}
