// The latest-ack files a view read (and the wave bundles found to repeat them), remembered by what
// identifies a file's exact bytes without reading them, as git's index does: device, inode, size,
// modification and change times. A warm `nixfleet status` then costs one stat per file instead of
// open, fstat, read, close and SHA-256 (docs/architecture.md "Latest-ack files recalled by identity").
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
//
// A one-host view (`status --host`, which reads no bundles) keeps instead what a full read of each file
// ended with (`keeps: 'verified'`): the signed ack that was taken in strictly and verified as the
// file's host under the host key the release then named. A recalled entry stands in for reading,
// strict intake and the signature check of exactly those bytes under exactly that key (what the ack
// cache spares by digest), never for the claims checked against this run's release; a re-keyed host's
// file is read and verified again. Only verified acks are remembered so: a refused file is read every
// run (and refused again). A file whose identity changed but whose bytes (read and hashed) are the very
// bytes of its entry (a copied or re-synced tree) is taken in from the entry as on an unchanged
// identity (sameBytes) and remembered under its new identity. A file whose ack a log read before it
// already gave (its digest is a record of the log) is remembered without that ack (`signed: null`): a
// later run takes it in only while the log gives that digest again (then the file adds nothing), and
// reads it otherwise. A trace's scope repeats its log almost file for file, so its memo is little more
// than identities and digests.
import { statSync, type Stats } from 'node:fs';
import { sha256Digest } from '../protocol/index.ts';
import type { AckRecord } from '../reconciler/index.ts';

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
 * A wave bundle found to repeat latest-ack files byte for byte (read-side/acks.ts
 * bundleRepeatsTakenFiles): its identity, the hosts whose files it repeats (in its order) and
 * `repeats`, the digest of those files' digests (repeatsDigest). While its identity is unchanged and
 * those hosts' files still have those digests, it still repeats exactly them and need not be read.
 */
export interface RepeatingBundle {
  path: string;
  identity: string;
  hosts: string[];
  repeats: string;
}

/**
 * A latest-ack file whose bytes (digest `digest`) a full read took in strictly and verified as the
 * ack of `host` under `hostKey` (the base64 key the release named): `signed` is that ack's signed part,
 * or null when a log read before the file gave the same ack (the file repeated the log; see the top).
 */
export interface VerifiedAckFile {
  path: string;
  identity: string;
  digest: string;
  host: string;
  hostKey: string;
  signed: AckRecord | null;
}

/** A file's identity (as recall gives it for remember): null when missing or not a regular file. */
export type Seen = { identity: string; newestMs: number } | null;

/** The digest `RepeatingBundle.repeats` of `hosts` whose files have the digests `digestOf` gives. */
export function repeatsDigest(
  hosts: readonly string[],
  digestOf: (host: string) => string,
): string {
  let text = '';
  for (const h of hosts) text += `${h} ${digestOf(h)}\n`;
  return sha256Digest(Buffer.from(text, 'utf8'));
}

/**
 * What identifies a file's exact bytes without reading them (the argument is at the top of this file;
 * the ack log's verified prefixes use it too): device, inode, size, modification and change times. Any
 * write, truncate or rename moves the change time to the kernel's clock, which no program can set.
 * With it, the file's newest time, which the racy rule compares with racyCutoff.
 */
export function identityOfStats(st: Stats): NonNullable<Seen> {
  return {
    identity: `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`,
    newestMs: Math.max(st.mtimeMs, st.ctimeMs),
  };
}

/**
 * The racy rule for a read started at `startedAt` (ms, taken before any file is looked at): a file's
 * identity may be kept only when its newest time is before this instant.
 */
export function racyCutoff(startedAt: number): number {
  return startedAt - RACY_MS;
}

/**
 * A file's identity now: null when it is missing or not a regular file (then it is read as always).
 * Number stats (not bigint: a warm status stats 10,000 files): the times keep sub-microsecond
 * fractions, far finer than the racy margin that makes them sufficient (an inode number above 2^53
 * loses precision as a number; a file replaced under one still has a newer change time).
 */
function identityOf(path: string): Seen {
  const st = statSync(path, { throwIfNoEntry: false });
  return st === undefined || !st.isFile() ? null : identityOfStats(st);
}

/**
 * The latest-ack files remembered by an earlier run and those this run read (what is saved). `recall`
 * before reading a file; `remember` after reading one that was not recalled.
 */
export class AckFileMemo {
  private readonly earlier = new Map<string, AckFileEntry | VerifiedAckFile>();
  private readonly now = new Map<string, AckFileEntry | VerifiedAckFile>();
  /** `keeps: 'verified'`: files read this run, remembered by settle() once their acks are verified. */
  private readonly unsettled: {
    path: string;
    identity: string;
    digest: string;
    host: string;
    logged: boolean;
  }[] = [];
  private readonly earlierBundles = new Map<string, RepeatingBundle>();
  private readonly nowBundles = new Map<string, RepeatingBundle>();
  /** Files with a time at or after this (ms) are not remembered (RACY_MS before the run started). */
  private readonly clearlyOlderThan: number;
  private added = false;
  /** Files recalled this run instead of read (observability, tests). */
  hits = 0;

  /** Files (and bundles) an earlier run remembered: none on a first run. */
  get remembered(): number {
    return this.earlier.size + this.earlierBundles.size;
  }

  /**
   * `startedAt` (ms): the run's start, taken before any file is looked at. `keeps`: what is remembered
   * of a file read: its bytes (`bytes`, the default: any view) or its verified ack (`verified`: a view
   * without bundles, which compare bytes; see the top of this file).
   */
  constructor(
    earlier: Iterable<AckFileEntry | VerifiedAckFile | RepeatingBundle> = [],
    startedAt: number = Date.now(),
    readonly keeps: 'bytes' | 'verified' = 'bytes',
  ) {
    for (const e of earlier) {
      if ('repeats' in e) this.earlierBundles.set(e.path, e);
      // Only entries of the kind this memo keeps (a file of the other kind is another view's).
      else if (('signed' in e ? 'verified' : 'bytes') === keeps) this.earlier.set(e.path, e);
    }
    this.clearlyOlderThan = racyCutoff(startedAt);
  }

  /**
   * What is remembered of `path` when its identity is unchanged (its bytes, or its verified ack: the
   * caller then calls `keep` if it took that in); otherwise what `remember` needs after reading it
   * (null: missing or not a regular file; the read reports it).
   */
  recall(path: string): { hit: AckFileEntry } | { verified: VerifiedAckFile; seen: Seen } | Seen {
    const id = identityOf(path);
    if (id === null) return null;
    const e = this.earlier.get(path);
    if (e !== undefined && e.identity === id.identity) {
      if ('signed' in e) return { verified: e, seen: id };
      this.now.set(path, e);
      this.hits++;
      return { hit: e };
    }
    return id;
  }

  /**
   * A recalled verified ack the collector took in as it stands: kept for the next run; without its ack
   * when `logged` (a log read before the file gave that digest), else as it was.
   */
  keep(e: VerifiedAckFile, logged = false): void {
    if (logged && e.signed !== null) {
      e = { ...e, signed: null };
      this.added = true;
    }
    this.now.set(e.path, e);
    this.hits++;
  }

  /**
   * `keeps: 'verified'`: the entry remembered for `path` when the file, though its identity changed,
   * holds exactly the bytes it was remembered for (`digest`, their SHA-256 just computed) and its ack
   * with them; null otherwise. The caller takes that ack in (collector.addVerifiedFile) and then calls
   * keepReplaced.
   */
  sameBytes(path: string, digest: string): (VerifiedAckFile & { signed: AckRecord }) | null {
    const e = this.earlier.get(path);
    return e !== undefined && 'signed' in e && e.signed !== null && e.digest === digest
      ? (e as VerifiedAckFile & { signed: AckRecord })
      : null;
  }

  /** A sameBytes entry taken in: remembered under the file's new identity `seen` (racy rule). */
  keepReplaced(e: VerifiedAckFile, seen: Seen): void {
    if (!this.clearlyOld(seen, e.path)) return;
    this.now.set(e.path, { ...e, identity: seen!.identity });
    this.added = true;
  }

  /**
   * After reading `bytes` from `path` (whose identity `recall` gave before the read): remembered when
   * clearly older than the run, and only if the bytes survive a round trip through the memo's text
   * (valid UTF-8, one line). `digest`: their SHA-256, as the collector computed it. `logged`: a log
   * read before the file gave that digest (`keeps: 'verified'` then keeps no ack).
   */
  remember(
    path: string,
    seen: Seen,
    bytes: Buffer,
    digest: string,
    host: string,
    logged = false,
  ): void {
    if (!this.clearlyOld(seen, path)) return;
    if (this.keeps === 'verified') {
      this.unsettled.push({ path, identity: seen!.identity, digest, host, logged });
      return;
    }
    const text = bytes.toString('utf8');
    if (text.includes('\n') || !Buffer.from(text, 'utf8').equals(bytes)) return;
    this.now.set(path, { path, identity: seen!.identity, digest, text });
    this.added = true;
  }

  /**
   * The bundle at `path` as remembered, when its identity is unchanged (the caller checks `repeats`
   * against the files it took in, then keepBundle); otherwise what rememberBundle needs.
   */
  recallBundle(path: string): { bundle: RepeatingBundle; seen: Seen } | Seen {
    const id = identityOf(path);
    if (id === null) return null;
    const b = this.earlierBundles.get(path);
    return b !== undefined && b.identity === id.identity ? { bundle: b, seen: id } : id;
  }

  /** A recalled bundle that still repeats the files taken in: skipped, and kept. */
  keepBundle(b: RepeatingBundle): void {
    this.nowBundles.set(b.path, b);
    this.hits++;
  }

  /** After reading a bundle found to repeat `hosts`' files (`repeats`: repeatsDigest of them). */
  rememberBundle(path: string, seen: Seen, hosts: string[], repeats: string): void {
    if (!this.clearlyOld(seen, path) || hosts.some((h) => /[\t\n ]/.test(h))) return;
    this.nowBundles.set(path, { path, identity: seen!.identity, hosts, repeats });
    this.added = true;
  }

  /**
   * `keeps: 'verified'`, after the collector's result: each file read this run whose bytes it verified
   * as its host's ack is remembered with that ack and the host key it was verified under. `verified`:
   * the collector's verified acks and their digests (same index); `hostKeys`: the release's.
   */
  settle(
    verified: readonly AckRecord[],
    digests: readonly string[],
    hostKeys: ReadonlyMap<string, string>,
  ): void {
    if (this.unsettled.length === 0) return;
    const at = new Map<string, number>();
    digests.forEach((d, i) => at.set(d, i));
    for (const u of this.unsettled) {
      const i = at.get(u.digest);
      const ack = i === undefined ? undefined : verified[i];
      const hostKey = hostKeys.get(u.host);
      if (ack === undefined || ack.host !== u.host || hostKey === undefined) continue;
      const { logged, ...file } = u;
      this.now.set(u.path, { ...file, hostKey, signed: logged ? null : ack });
      this.added = true;
    }
    this.unsettled.length = 0;
  }

  /** Whether a file seen so can be remembered: a regular file clearly older than the run (racy rule). */
  private clearlyOld(seen: Seen, path: string): boolean {
    return seen !== null && seen.newestMs < this.clearlyOlderThan && !/[\t\n]/.test(path);
  }

  /** Whether used() differs from what was read. */
  get changed(): boolean {
    return (
      this.added ||
      this.now.size !== this.earlier.size ||
      this.nowBundles.size !== this.earlierBundles.size
    );
  }

  /** What this run recalled or remembered: what is saved (`keeps: 'bytes'`). */
  used(): (AckFileEntry | RepeatingBundle)[] {
    const files = [...this.now.values()].filter((e): e is AckFileEntry => !('signed' in e));
    return [...files, ...this.nowBundles.values()];
  }

  /** The verified acks this run recalled or remembered: what is saved (`keeps: 'verified'`). */
  usedVerified(): VerifiedAckFile[] {
    return [...this.now.values()].filter((e): e is VerifiedAckFile => 'signed' in e);
  }
}

/**
 * One memo line: a file's identity, digest, path, then its bytes (text may hold tabs; it is last); a
 * bundle's: `bundle`, identity, repeats, path, then its hosts separated by spaces.
 */
export function formatAckFileEntry(e: AckFileEntry | RepeatingBundle): string {
  return 'repeats' in e
    ? `${BUNDLE}\t${e.identity}\t${e.repeats}\t${e.path}\t${e.hosts.join(' ')}`
    : `${e.identity}\t${e.digest}\t${e.path}\t${e.text}`;
}
const BUNDLE = 'bundle';

/** What identityOfStats writes: device, inode, size and the two times (ms, with fractions). */
export const IDENTITY = /^[0-9]+:[0-9]+:[0-9]+:[0-9.e+]+:[0-9.e+]+$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** A memo line back (null: malformed, and then the whole file is not believed). */
export function parseAckFileEntry(line: string): AckFileEntry | RepeatingBundle | null {
  if (line.startsWith(`${BUNDLE}\t`)) return parseBundleEntry(line);
  const a = line.indexOf('\t');
  const b = line.indexOf('\t', a + 1);
  const c = line.indexOf('\t', b + 1);
  if (a < 0 || b < 0 || c < 0) return null;
  const identity = line.slice(0, a);
  const digest = line.slice(a + 1, b);
  if (!IDENTITY.test(identity) || !DIGEST.test(digest)) return null;
  return { identity, digest, path: line.slice(b + 1, c), text: line.slice(c + 1) };
}

function parseBundleEntry(line: string): RepeatingBundle | null {
  const [, identity, repeats, path, hosts, ...rest] = line.split('\t');
  if (rest.length > 0 || hosts === undefined || !IDENTITY.test(identity!) || !DIGEST.test(repeats!))
    return null;
  return {
    identity: identity!,
    repeats: repeats!,
    path: path!,
    hosts: hosts === '' ? [] : hosts.split(' '),
  };
}

/**
 * A verified memo (`keeps: 'verified'`) as one line: a JSON array of `[identity, digest, host, host
 * key, path, signed]`, one per file. One JSON.parse of the whole is about half the CPU of one per
 * file (measured: 6,629 acks, 3.6 MB), and a one-host view recalls all or nearly all of them.
 */
export function formatVerifiedAckFiles(entries: readonly VerifiedAckFile[]): string {
  return JSON.stringify(
    entries.map((e) => [e.identity, e.digest, e.host, e.hostKey, e.path, e.signed]),
  );
}

/** formatVerifiedAckFiles' line back (null: malformed, and then none of it is believed). */
export function parseVerifiedAckFiles(line: string): VerifiedAckFile[] | null {
  let rows: unknown;
  try {
    rows = JSON.parse(line);
  } catch {
    return null;
  }
  if (!Array.isArray(rows)) return null;
  const out: VerifiedAckFile[] = [];
  for (const r of rows as unknown[]) {
    if (!Array.isArray(r) || r.length !== 6) return null;
    const [identity, digest, host, hostKey, path, signed] = r as unknown[];
    if (
      typeof identity !== 'string' ||
      typeof digest !== 'string' ||
      typeof host !== 'string' ||
      typeof hostKey !== 'string' ||
      typeof path !== 'string' ||
      typeof signed !== 'object' ||
      (signed !== null && (signed as { host?: unknown }).host !== host)
    )
      return null;
    out.push({ identity, digest, host, hostKey, path, signed: signed as AckRecord | null });
  }
  return out;
}
