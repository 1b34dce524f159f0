// Publishes accepted acks as static files under <treeDir>/acks/, each written atomically:
//   acks/hosts/<host>.json                  the host's latest ack (its canonical envelope bytes)
//   acks/channels/<channel>/wave-<i>.json   AckBundle: the latest ack of every host of that wave
// so a waiting host polls one file per wave it depends on, with conditional GETs.
// Rewrites are debounced (many acks -> one rewrite) but bounded: a dirty file is rewritten at most
// ~debounceMs after its first change once a second has passed since the last flush. Flushes are at
// least one calendar second apart, so every rewrite gets a new mtime second: nginx's ETag (mtime-size)
// changes even when a rewrite keeps the size.
// The files are derived data: the log is the durable record, and every file is rewritten from it when
// the endpoint starts (setView). So they are replaced atomically (rename) but not fsynced, which keeps
// synchronous disk flushes off the event loop.
import { readdirSync, rmSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  ackBundlePath,
  latestAckPath,
  isoTime,
  SCHEMA_VERSION,
  writeFileAtomic,
} from '../protocol/index.ts';
import type { ReleaseView } from './release-view.ts';

export interface AckPublisherOptions {
  debounceMs?: number;
  /** Clock, injectable for tests. */
  now?: () => number;
  onError?: (e: Error) => void;
}

export class AckPublisher {
  private dirtyHosts = new Set<string>();
  private dirtyWaves = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private lastFlushSecond = -1;
  private view: ReleaseView | null = null;
  private readonly debounceMs: number;
  private readonly now: () => number;
  flushes = 0;

  constructor(
    /** The directory that holds acks/ (the control plane's tree directory). */
    private readonly publishRoot: string,
    private readonly latest: (host: string) => string | undefined,
    private readonly opts: AckPublisherOptions = {},
  ) {
    this.debounceMs = opts.debounceMs ?? 100;
    this.now = opts.now ?? Date.now;
  }

  /** A new release may move hosts between waves: every bundle is rebuilt, stale ones removed. */
  setView(view: ReleaseView, knownHosts: Iterable<string>): void {
    this.view = view;
    for (const h of knownHosts) this.dirtyHosts.add(h);
    for (const [channel, waves] of view.waves)
      waves.forEach((_, i) => this.dirtyWaves.add(`${channel}\u0000${i}`));
    this.removeStaleBundles(view);
    this.schedule();
  }

  noteAccepted(host: string): void {
    this.dirtyHosts.add(host);
    const entry = this.view?.hosts.get(host);
    if (entry) this.dirtyWaves.add(`${entry.channel}\u0000${entry.wave}`);
    this.schedule();
  }

  private schedule(): void {
    if (this.timer) return;
    const now = this.now();
    const nextSecond = (this.lastFlushSecond + 1) * 1000;
    const delay = Math.max(this.debounceMs, nextSecond - now);
    this.timer = setTimeout(() => {
      this.timer = null;
      try {
        this.flush();
      } catch (e) {
        this.opts.onError?.(e as Error);
      }
    }, delay);
    this.timer.unref?.();
  }

  get pending(): boolean {
    return this.dirtyHosts.size > 0 || this.dirtyWaves.size > 0;
  }

  /** Writes everything dirty now. */
  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (!this.pending) return;
    const hosts = [...this.dirtyHosts];
    const waves = [...this.dirtyWaves];
    this.dirtyHosts.clear();
    this.dirtyWaves.clear();
    for (const host of hosts) {
      const canonical = this.latest(host);
      if (canonical === undefined) continue;
      const path = join(this.publishRoot, latestAckPath(host));
      replaceFile(path, canonical);
    }
    const view = this.view;
    if (view) {
      const generatedAt = isoTime(this.now());
      for (const key of waves) {
        const [channel, waveText] = key.split('\u0000') as [string, string];
        const wave = Number(waveText);
        const members = view.waves.get(channel)?.[wave];
        if (!members) continue;
        const path = join(this.publishRoot, ackBundlePath(channel, wave));
        replaceFile(path, bundleJson(view.fleet, channel, wave, generatedAt, members, this.latest));
      }
    }
    this.lastFlushSecond = Math.floor(this.now() / 1000);
    this.flushes++;
  }

  private removeStaleBundles(view: ReleaseView): void {
    const channelsDir = join(this.publishRoot, 'acks', 'channels');
    if (!existsSync(channelsDir)) return;
    for (const channel of readdirSync(channelsDir)) {
      const waves = view.waves.get(channel);
      for (const f of readdirSync(join(channelsDir, channel))) {
        const m = /^wave-(\d+)\.json$/.exec(f);
        if (m && waves && Number(m[1]) < waves.length) continue;
        if (m || !f.startsWith('.')) rmSync(join(channelsDir, channel, f), { force: true });
      }
    }
  }

  close(): void {
    this.flush();
  }
}

/**
 * Write-to-temp + rename, not fsynced (derived from the log); the mtime always moves forward by whole
 * seconds (nginx's ETag = mtime-size), set explicitly rather than left to the kernel's coarse clock.
 */
function replaceFile(path: string, data: string): void {
  writeFileAtomic(path, data, { advanceMtime: true, durable: false });
}

/**
 * Builds the AckBundle JSON directly in JCS form (keys in code-point order, acks already canonical),
 * so rewriting a large wave costs string concatenation, not a re-canonicalisation of every ack.
 */
export function bundleJson(
  fleet: string,
  channel: string,
  wave: number,
  generatedAt: string,
  members: readonly string[],
  latest: (host: string) => string | undefined,
): string {
  const acks: string[] = [];
  for (const host of [...members].sort()) {
    const c = latest(host);
    if (c !== undefined) acks.push(c);
  }
  return (
    `{"acks":[${acks.join(',')}],"channel":${JSON.stringify(channel)},` +
    `"fleet":${JSON.stringify(fleet)},"generatedAt":${JSON.stringify(generatedAt)},` +
    `"schemaVersion":${SCHEMA_VERSION},"type":"ack-bundle","wave":${wave}}`
  );
}
