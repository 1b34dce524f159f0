// The latest-ack files a view read, remembered by what identifies a file's exact bytes without reading
// them, as git's index does: device, inode, size, modification and change times. A warm
// `nixfleet status` then costs one stat per file instead of open, fstat, read, close and SHA-256.
//
// Why an unchanged identity means unchanged bytes: the endpoint replaces a host's file by a rename (a new
// inode, and the rename moves the change time); any write, truncate, chmod or utimes moves the change
// time to the kernel's clock; and the change time cannot be set by a program (utimes sets the
// modification time only): only root changing the clock or editing the disk below the file system can.
// A change in the same clock tick as the stat that remembered a file could keep its change time, so a
// file is remembered only when both its times are clearly older (RACY_MS) than the instant this run
// started, before any stat (git's "racy" rule): a later change then always gives a newer change time.
//
// What it cannot do: it only stands in for reading the bytes. Each recalled file's bytes (kept in the
// memo with their digest) are taken in as any read bytes are: looked up in the ack cache by their
// digest, their claims checked against the release, a miss parsed strictly and its signature verified.
// The memo file is sealed with the cache directory's HMAC key (read-side/verified-cache.ts), so one
// edited by hand is ignored whole and every file is read.
import { statSync } from 'node:fs';
import { sha256Digest } from '../protocol/index.ts';

/**
 * How much older than the run's start a file's times must be for it to be remembered: a rewrite within
 * the same clock tick as the stat could keep its change time (the kernel's file times advance by its
 * coarse clock, milliseconds; 2 s also covers file systems with coarser times and small clock steps).
 */
export const RACY_MS = 2000;

/**
 * One remembered file: its identity (`dev:ino:size:mtimeMs:ctimeMs`, the times with their fraction as
 * the stat gives them), the digest of its bytes and the bytes as UTF-8.
 */
export interface AckFileEntry {
  path: string;
  identity: string;
  digest: string;
  text: string;
}

/**
 * A file's identity now: null when it is missing or not a regular file (then it is read as always).
 * Number stats (not bigint: a warm status stats 10,000 files): the times keep sub-microsecond
 * fractions, far finer than the racy margin that makes them sufficient.
 */
function identityOf(path: string): { identity: string; newestMs: number } | null {
  const st = statSync(path, { throwIfNoEntry: false });
  if (st === undefined || !st.isFile()) return null;
  return {
    identity: `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`,
    newestMs: Math.max(st.mtimeMs, st.ctimeMs),
  };
}

/**
 * The latest-ack files remembered by an earlier run and those this run read (what is saved). `recall`
 * before reading a file; `remember` after reading one that was not recalled.
 */
export class AckFileMemo {
  private readonly earlier = new Map<string, AckFileEntry>();
  private readonly now = new Map<string, AckFileEntry>();
  /** Files with a time at or after this (ms) are not remembered (RACY_MS before the run started). */
  private readonly clearlyOlderThan: number;
  private added = false;
  /** Files recalled this run instead of read (observability, tests). */
  hits = 0;

  /** `startedAt` (ms): the run's start, taken before any file is looked at. */
  constructor(earlier: Iterable<AckFileEntry> = [], startedAt: number = Date.now()) {
    for (const e of earlier) this.earlier.set(e.path, e);
    this.clearlyOlderThan = startedAt - RACY_MS;
  }

  /**
   * The remembered digest and bytes of `path` when its identity is unchanged; otherwise what
   * `remember` needs after reading it (null: missing or not a regular file; the read reports it).
   */
  recall(path: string): { hit: AckFileEntry } | { identity: string; newestMs: number } | null {
    const id = identityOf(path);
    if (id === null) return null;
    const e = this.earlier.get(path);
    if (e !== undefined && e.identity === id.identity) {
      this.now.set(path, e);
      this.hits++;
      return { hit: e };
    }
    return id;
  }

  /**
   * After reading `bytes` from `path` (whose identity `recall` gave before the read): remembered when
   * clearly older than the run, and only if the bytes survive a round trip through the memo's text
   * (valid UTF-8, one line). Returns their digest.
   */
  remember(
    path: string,
    seen: { identity: string; newestMs: number } | null,
    bytes: Buffer,
    digest: string = sha256Digest(bytes),
  ): string {
    if (seen === null || seen.newestMs >= this.clearlyOlderThan || /[\t\n]/.test(path))
      return digest;
    const text = bytes.toString('utf8');
    if (text.includes('\n') || !Buffer.from(text, 'utf8').equals(bytes)) return digest;
    this.now.set(path, { path, identity: seen.identity, digest, text });
    this.added = true;
    return digest;
  }

  /** Whether used() differs from what was read. */
  get changed(): boolean {
    return this.added || this.now.size !== this.earlier.size;
  }

  /** What this run recalled or remembered: what is saved. */
  used(): AckFileEntry[] {
    return [...this.now.values()];
  }
}

/** One memo line: identity, digest, path, then the file's bytes (text may hold tabs; it is last). */
export function formatAckFileEntry(e: AckFileEntry): string {
  return `${e.identity}\t${e.digest}\t${e.path}\t${e.text}`;
}

const IDENTITY = /^[0-9]+:[0-9]+:[0-9]+:[0-9.e+]+:[0-9.e+]+$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** A memo line back (null: malformed, and then the whole file is not believed). */
export function parseAckFileEntry(line: string): AckFileEntry | null {
  const a = line.indexOf('\t');
  const b = line.indexOf('\t', a + 1);
  const c = line.indexOf('\t', b + 1);
  if (a < 0 || b < 0 || c < 0) return null;
  const identity = line.slice(0, a);
  const digest = line.slice(a + 1, b);
  if (!IDENTITY.test(identity) || !DIGEST.test(digest)) return null;
  return { identity, digest, path: line.slice(b + 1, c), text: line.slice(c + 1) };
}
