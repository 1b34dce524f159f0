// The view server's intake of acks as they arrive (cli/view-server.ts): the ack endpoint renames each
// host's new latest-ack file into acks/hosts/, and the watch on that directory names the file. The
// names are gathered for a moment (INTAKE_DEBOUNCE_MS), then taken in on the server's LookQueue as its
// lowest priority, at most INTAKE_CHUNK files a job and one job in flight: a request waits for at most
// one chunk. What verifies is kept by digest for the looks' ack caches (read-side/arrived-acks.ts).
// Once a file taken in is older than the racy margin, a job of the same priority keeps its identity
// (ArrivedAcks.ripen), so that a look recalls it instead of reading it.
// Only an optimisation: a missed event (a watch that failed, a directory made after the start), a
// late intake or a wrong one leaves the look to read and verify the file itself, as without a server.
import { watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { isLatestAckFile, type ArrivedAcks } from '../read-side/index.ts';
import type { LookQueue } from './view-server.ts';

/**
 * How long names are gathered before an intake: at a fleet's rate (~30 acks/s at 10,000 hosts) a few
 * files a job, while a request right after a burst finds nearly all of it taken in.
 */
export const INTAKE_DEBOUNCE_MS = 250;
/** The most files one intake job takes in (~0.1 s of strict intake and Ed25519 at 2 cores). */
export const INTAKE_CHUNK = 256;
/**
 * A chunk this large is a burst (a wave starting, a control plane back after an outage): ~500 files a
 * second, where a 10,000-host fleet's heartbeats are ~30. Once a burst is taken in, `burst` is called
 * (the server replays its recent views then, not at its next refresh: docs/architecture.md).
 */
export const BURST_FILES = 128;
/** How often a directory that cannot be watched (not made yet: no ack posted) is tried again (ms). */
const WATCH_RETRY_MS = 60_000;

export interface AckIntake {
  /** Files named by the watch and not taken in yet. */
  readonly waiting: number;
  stop(): void;
}

/** What the intake works with. */
interface IntakeOptions {
  tree: string;
  queue: LookQueue;
  arrived: Pick<ArrivedAcks, 'takeIn' | 'ripen' | 'nextRipeAt'>;
  log: (line: string) => void;
  /** How often a directory that cannot be watched is tried again (ms; default WATCH_RETRY_MS). */
  watchRetryMs?: number;
  /** Called once a burst (a chunk of BURST_FILES or more) is all taken in. */
  burst?: () => void;
}

/** Watches `<tree>/acks/hosts/` and takes the files renamed or written there in. */
export function startAckIntake(s: IntakeOptions): AckIntake {
  const hostsDir = join(s.tree, 'acks', 'hosts');
  const names = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let inFlight = false;
  let stopped = false;
  let inBurst = false;
  const ripening = new Ripening(s);
  const schedule = () => {
    if (stopped || timer !== undefined || inFlight || names.size === 0) return;
    timer = setTimeout(takeInChunk, INTAKE_DEBOUNCE_MS);
    timer.unref();
  };
  const takeInChunk = () => {
    timer = undefined;
    inFlight = true;
    const chunk = [...names].slice(0, INTAKE_CHUNK);
    for (const n of chunk) names.delete(n);
    if (chunk.length >= BURST_FILES) inBurst = true;
    void s.queue
      .run('intake', async () => {
        const started = performance.now();
        const c = s.arrived.takeIn(chunk.map((n) => join(hostsDir, n)));
        const ms = (performance.now() - started).toFixed(0);
        s.log(
          `took in ${chunk.length} arrived ack file(s) in ${ms} ms: ${c.verified} verified, ${c.refused} refused, ${c.skipped} skipped`,
        );
      })
      .catch((e: Error) => s.log(`intake failed: ${e.message}`))
      .finally(() => {
        inFlight = false;
        if (inBurst && names.size === 0 && !stopped) {
          inBurst = false;
          s.burst?.();
        }
        schedule();
        ripening.schedule();
      });
  };
  const watcher = new HostsWatch(hostsDir, s.watchRetryMs ?? WATCH_RETRY_MS, s.log, (name) => {
    names.add(name);
    schedule();
  });
  return {
    get waiting() {
      return names.size;
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
      ripening.stop();
      watcher.close();
    },
  };
}

/**
 * The jobs that keep arrived files' identities (ArrivedAcks.ripen): one at the moment the next file is
 * ripe (nextRipeAt), on the look queue at the intake's priority, one waiting or running at a time.
 */
class Ripening {
  private pending: NodeJS.Timeout | 'queued' | undefined;
  private stopped = false;

  constructor(private readonly s: Pick<IntakeOptions, 'queue' | 'arrived' | 'log'>) {}

  schedule(): void {
    const at = this.s.arrived.nextRipeAt;
    if (this.stopped || this.pending !== undefined || at === null) return;
    this.pending = setTimeout(() => this.ripen(), Math.max(0, at - Date.now()));
    this.pending.unref();
  }

  stop(): void {
    this.stopped = true;
    if (typeof this.pending === 'object') clearTimeout(this.pending);
  }

  private ripen(): void {
    this.pending = 'queued';
    void this.s.queue
      // Its start before any stat (the racy rule).
      .run('intake', async () => void this.s.arrived.ripen(Date.now()))
      .catch((e: Error) => this.s.log(`keeping arrived files' identities failed: ${e.message}`))
      .finally(() => {
        this.pending = undefined;
        this.schedule();
      });
  }
}

/**
 * The watch on acks/hosts/, calling `named` with each latest-ack file name it reports. A directory
 * missing at the start (a control plane no host has acked yet) or a watch that fails is tried again
 * every `retryMs`; meanwhile the looks verify every file themselves.
 */
class HostsWatch {
  private watcher: FSWatcher | null = null;
  private retry: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly dir: string,
    private readonly retryMs: number,
    private readonly log: (line: string) => void,
    private readonly named: (name: string) => void,
  ) {
    this.start();
  }

  private start(): void {
    this.retry = undefined;
    if (this.closed) return;
    try {
      this.watcher = watch(this.dir, { persistent: false }, (_event, name) => {
        if (name !== null && isLatestAckFile(name)) this.named(name);
      });
      this.watcher.on('error', () => this.again());
    } catch {
      this.log(`not watching ${this.dir} yet: acks are verified by the looks`);
      this.again();
    }
  }

  private again(): void {
    this.watcher?.close();
    this.watcher = null;
    if (this.closed || this.retry !== undefined) return;
    this.retry = setTimeout(() => this.start(), this.retryMs);
    this.retry.unref();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retry);
    this.watcher?.close();
  }
}
