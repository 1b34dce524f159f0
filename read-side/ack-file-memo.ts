// The latest-ack files a view read (and the wave bundles found to repeat them), remembered by what
// identifies a file's exact bytes without reading them, as git's index does: device, inode, size,
// modification and change times. A warm `nixfleet status` then costs one stat per file instead of
// open, fstat, read, close, SHA-256, strict intake and a signature check (docs/architecture.md
// "Latest-ack files recalled by identity").
//
// Why an unchanged identity means unchanged bytes: the endpoint replaces a host's file by a rename (a new
// inode, and the rename moves the change time); any write, truncate, chmod or utimes moves the change
// time to the kernel's clock; and the change time cannot be set by a program (utimes sets the
// modification time only): only root changing the clock or editing the disk below the file system can.
// A change in the same clock tick as the stat that remembered a file could keep its change time, so a
// file is remembered only when both its times are clearly older (RACY_MS) than the instant this run
// started, before any stat (git's "racy" rule): a later change then always gives a newer change time.
//
// What a file's entry holds: what a full read of it ended with, the signed ack that was taken in
// strictly and verified as the file's host under the host key the release then named, with the digest
// of its bytes. A recalled entry stands in for reading, strict intake and the signature check of
// exactly those bytes under exactly that key (what the ack cache spares by digest), never for the
// claims checked against this run's release; a re-keyed host's file is read and verified again. Only
// verified acks are remembered so: a refused file is read every run (and refused again). A file whose
// identity changed but whose bytes (read and hashed) are the very bytes of its entry (a copied or
// re-synced tree) is taken in from the entry as on an unchanged identity (sameBytes) and remembered
// under its new identity. A file whose ack a log read before it already gave (its digest is a record of
// the log) is remembered without that ack (`signed: null`): a later run takes it in only while the log
// gives that digest again (then the file adds nothing), and reads it otherwise. A trace's scope repeats
// its log almost file for file, so its memo is little more than identities and digests.
//
// A wave bundle found to repeat the files byte for byte is remembered by its identity with the hosts
// whose files it repeats and the digest of their digests (fleet `status`): while it and they are
// unchanged it is not read. A recalled file has no bytes in memory to compare a changed bundle with: it
// is read again for that (and counts only if it still has its entry's digest).
//
// The memo file is sealed with the cache directory's HMAC key (read-side/verified-cache.ts), so one
// edited by hand is ignored whole and every file is read. Its form (formatAckFileMemo) stores each
// value repeated across hosts once, as read-side/log-index.ts does for a log: a warm view reads about
// a third of the bytes a JSON array of whole acks took, and builds no identity strings. A look that
// changed a few files saves them as changes to that file (AckFileMemoChanges: the store keeps them as a
// sealed journal beside it, read-side/verified-cache.ts), not the whole memo again.
import type { Stats } from 'node:fs';
import { newestTime, statOf, type FileStat, type Seen } from './file-identity.ts';
import type { StatHelper } from './stat-helper.ts';
import { isSha256Digest, sha256Digest } from '../protocol/index.ts';
import type { AckRecord } from '../reconciler/index.ts';
export { newestTime, statOf, type FileStat, type Seen } from './file-identity.ts';
import {
  VarintReader,
  VarintWriter,
  deepFreeze,
  shapePositions,
  valuePositions,
} from './log-index.ts';

/**
 * How much older than the run's start a file's times must be for it to be remembered: a rewrite within
 * the same clock tick as the stat could keep its change time (the kernel's file times advance by its
 * coarse clock, milliseconds; 2 s also covers file systems with coarser times and small clock steps).
 */
export const RACY_MS = 2000;

/**
 * A latest-ack file (`<dir>/<host>.json`) whose bytes (digest `digest`) a full read took in strictly and
 * verified as the ack of `host` under `hostKey` (the base64 key the release named): `signed` is that
 * ack's signed part, or null when a log read before the file gave the same ack (see the top).
 */
export interface VerifiedAckFile extends FileStat {
  path: string;
  digest: string;
  host: string;
  hostKey: string;
  signed: AckRecord | null;
}

/**
 * A wave bundle found to repeat latest-ack files byte for byte (read-side/acks.ts
 * bundleRepeatsTakenFiles): its identity, the hosts whose files it repeats (in its order) and
 * `repeats`, the digest of those files' digests (repeatsDigest). While its identity is unchanged and
 * those hosts' files still have those digests, it still repeats exactly them and need not be read.
 */
export interface RepeatingBundle extends FileStat {
  path: string;
  hosts: string[];
  repeats: string;
}

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
 * A file's identity as text (the ack log's verified prefixes keep it so: read-side/log-index.ts), with
 * the file's newest time, which the racy rule compares with racyCutoff.
 */
export function identityOfStats(st: Stats): { identity: string; newestMs: number } {
  return {
    identity: `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`,
    newestMs: newestTime(st),
  };
}

/** What identityOfStats writes: device, inode, size and the two times (ms, with fractions). */
export const IDENTITY = /^[0-9]+:[0-9]+:[0-9]+:[0-9.e+]+:[0-9.e+]+$/;

/**
 * The racy rule for a read started at `startedAt` (ms, taken before any file is looked at): a file's
 * identity may be kept only when its newest time is before this instant.
 */
export function racyCutoff(startedAt: number): number {
  return startedAt - RACY_MS;
}

/** Whether a file seen so may be recalled by its identity later: both its times before `cutoff` (racyCutoff). */
export function clearlyOlder(seen: FileStat, cutoff: number): boolean {
  return newestTime(seen) < cutoff;
}

/** Whether two identities are the same file's same bytes. */
export function sameStat(a: FileStat, b: FileStat): boolean {
  return (
    a.ino === b.ino &&
    a.mtimeMs === b.mtimeMs &&
    a.ctimeMs === b.ctimeMs &&
    a.size === b.size &&
    a.dev === b.dev
  );
}

/** Just the identity's fields of `s` (a Stats, or an entry that carries more). */
export const statFields = (s: FileStat): FileStat => ({
  dev: s.dev,
  ino: s.ino,
  size: s.size,
  mtimeMs: s.mtimeMs,
  ctimeMs: s.ctimeMs,
});

/**
 * Latest-ack files a long-running view server verified as they arrived, each with an identity it
 * remembered as a memo would (read-side/arrived-acks.ts ripen): recalled when a memo's own entry is
 * missing or stale.
 */
export interface ArrivedFiles {
  fileAt(path: string): VerifiedAckFile | undefined;
}

/** What an earlier run remembered (a sealed memo file), as read. */
export interface AckFileMemoEntries {
  files: VerifiedAckFile[];
  bundles: RepeatingBundle[];
}

/**
 * What changed since a base memo was written (the store keeps it as the base's journal:
 * read-side/verified-cache.ts): entries that replace the base's entry of the same path or add to them
 * (`files`, `bundles`), and the paths of base entries no longer remembered.
 */
export interface AckFileMemoChanges extends AckFileMemoEntries {
  droppedFiles: string[];
  droppedBundles: string[];
}

/**
 * The latest-ack files remembered by an earlier run and those this run read (what is saved). `recall`
 * before reading a file; `remember` after reading one that was not recalled; `settle` once the acks
 * read are verified.
 */
export class AckFileMemo {
  private earlier = new Map<string, VerifiedAckFile>();
  private now = new Map<string, VerifiedAckFile>();
  /** Files read this run, remembered by settle() once their acks are verified. */
  private readonly unsettled: (FileStat & {
    path: string;
    digest: string;
    host: string;
    logged: boolean;
  })[] = [];
  private earlierBundles = new Map<string, RepeatingBundle>();
  private nowBundles = new Map<string, RepeatingBundle>();
  /** Files with a time at or after this (ms) are not remembered (RACY_MS before the run started). */
  private clearlyOlderThan: number;
  private added = false;
  /** Digest -> host key of the acks settle() remembered with their files. */
  private readonly settledAcks = new Map<string, string>();
  /** Files recalled this run instead of read (observability, tests). */
  hits = 0;
  /** Identities of files this run will recall, taken at once (seeAhead); each used once, by recall. */
  private ahead = new Map<string, Seen>();

  /**
   * Takes the identities of the files at `paths` now, all at once and half of them on `helper`'s thread
   * (read-side/stat-helper.ts), for the recalls that follow: the same stats the recalls would take,
   * after this run's start. A path the helper left is stat-ed by its recall, as without it.
   */
  seeAhead(paths: readonly string[], helper: Pick<StatHelper, 'statAll'>): void {
    const seen = helper.statAll(paths);
    for (let i = 0; i < paths.length; i++)
      if (seen[i] !== undefined) this.ahead.set(paths[i]!, seen[i]!);
  }

  /** Files (and bundles) an earlier run remembered: none on a first run. */
  get remembered(): number {
    return this.earlier.size + this.earlierBundles.size;
  }

  /**
   * `earlier`, with `changes` since it applied (a base and its journal); `startedAt` (ms): the run's
   * start, taken before any file is looked at.
   */
  constructor(
    earlier: AckFileMemoEntries = { files: [], bundles: [] },
    startedAt: number = Date.now(),
    changes?: AckFileMemoChanges,
    private readonly arrived?: ArrivedFiles,
  ) {
    for (const e of earlier.files) this.earlier.set(e.path, e);
    for (const b of earlier.bundles) this.earlierBundles.set(b.path, b);
    if (changes !== undefined) {
      for (const e of changes.files) this.earlier.set(e.path, e);
      for (const b of changes.bundles) this.earlierBundles.set(b.path, b);
      for (const p of changes.droppedFiles) this.earlier.delete(p);
      for (const p of changes.droppedBundles) this.earlierBundles.delete(p);
    }
    this.clearlyOlderThan = racyCutoff(startedAt);
  }

  /**
   * Serves a next run, which starts at `startedAt`, as the memo made from what this run's used() gives
   * (what the store saved, base and journal: read-side/verified-cache.ts renew): what this run recalled
   * or remembered becomes what is remembered, the very entries (no copy, no decode).
   */
  renew(startedAt: number): void {
    this.earlier = this.now;
    this.earlierBundles = this.nowBundles;
    this.restart(startedAt);
  }

  /**
   * Serves a run started at `startedAt` (its racy rule) from what is remembered, as if nothing had been
   * recalled or read yet: what a run did since (renew or the constructor) is dropped, unsaved.
   */
  restart(startedAt: number): void {
    this.ahead.clear();
    this.now = new Map();
    this.nowBundles = new Map();
    this.unsettled.length = 0;
    this.settledAcks.clear();
    this.added = false;
    this.hits = 0;
    this.clearlyOlderThan = racyCutoff(startedAt);
  }

  /**
   * What is remembered of `path` when its identity is unchanged (the caller then calls `keep` if it
   * took that in); otherwise what `remember` needs after reading it (null: missing or not a regular
   * file; the read reports it).
   */
  recall(path: string): { verified: VerifiedAckFile; seen: Seen } | Seen {
    const ahead = this.ahead.get(path);
    if (ahead !== undefined) this.ahead.delete(path);
    const seen = ahead !== undefined ? ahead : statOf(path);
    if (seen === null) return null;
    const e = this.earlier.get(path);
    if (e !== undefined && sameStat(e, seen)) return { verified: e, seen };
    // Changed since this memo's run, and verified with this identity as it arrived (a view server).
    const a = this.arrived?.fileAt(path);
    return a !== undefined && sameStat(a, seen) ? { verified: a, seen } : seen;
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
   * The entry remembered for `path` when the file, though its identity changed, holds exactly the bytes
   * it was remembered for (`digest`, their SHA-256 just computed) and its ack with them; null
   * otherwise. The caller takes that ack in (collector.addVerifiedFile) and then calls keepReplaced.
   */
  sameBytes(path: string, digest: string): (VerifiedAckFile & { signed: AckRecord }) | null {
    const e = this.earlier.get(path);
    return e !== undefined && e.signed !== null && e.digest === digest
      ? (e as VerifiedAckFile & { signed: AckRecord })
      : null;
  }

  /** A sameBytes entry taken in: remembered under the file's new identity `seen` (racy rule). */
  keepReplaced(e: VerifiedAckFile, seen: Seen): void {
    if (!this.clearlyOld(seen) || !fileOfHost(e.path, e.host)) return;
    this.now.set(e.path, { ...e, ...statFields(seen!) });
    this.added = true;
  }

  /**
   * After reading `path` (whose identity `recall` gave before the read; `digest`: the SHA-256 of its
   * bytes, as the collector computed it): remembered by settle() if the collector verified its ack as
   * `host`'s and the file was clearly older than the run. `logged`: a log read before the file gave
   * that digest (then no ack is kept).
   */
  remember(path: string, seen: Seen, digest: string, host: string, logged = false): void {
    if (!this.clearlyOld(seen) || !fileOfHost(path, host)) return;
    this.unsettled.push({ path, ...statFields(seen!), digest, host, logged });
  }

  /**
   * The bundle at `path` as remembered, when its identity is unchanged (the caller checks `repeats`
   * against the files it took in, then keepBundle); otherwise what rememberBundle needs.
   */
  recallBundle(path: string): { bundle: RepeatingBundle; seen: Seen } | Seen {
    const seen = statOf(path);
    if (seen === null) return null;
    const b = this.earlierBundles.get(path);
    return b !== undefined && sameStat(b, seen) ? { bundle: b, seen } : seen;
  }

  /** A recalled bundle that still repeats the files taken in: skipped, and kept. */
  keepBundle(b: RepeatingBundle): void {
    this.nowBundles.set(b.path, b);
    this.hits++;
  }

  /** After reading a bundle found to repeat `hosts`' files (`repeats`: repeatsDigest of them). */
  rememberBundle(path: string, seen: Seen, hosts: string[], repeats: string): void {
    if (!this.clearlyOld(seen) || path.lastIndexOf('/') <= 0) return;
    this.nowBundles.set(path, { path, ...statFields(seen!), hosts, repeats });
    this.added = true;
  }

  /**
   * After the collector's result: each file read this run whose bytes it verified as its host's ack is
   * remembered with that ack and the host key it was verified under. `verified`: the collector's
   * verified acks and their digests (same index); `hostKeys`: the release's.
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
      if (!logged) this.settledAcks.set(u.digest, hostKey);
      this.added = true;
    }
    this.unsettled.length = 0;
  }

  /**
   * Whether this run remembered a file read with the ack of these bytes (`digest`) verified under
   * `hostKey` (settle): a later run recalls it without the ack cache (read-side/verified-cache.ts
   * keeps no such pair). Files recalled as they were are not asked about: their acks never reached
   * the ack cache this run.
   */
  keepsAck(digest: string, hostKey: string): boolean {
    return this.settledAcks.get(digest) === hostKey;
  }

  /** Whether a file seen so can be remembered: a regular file clearly older than the run (racy rule). */
  private clearlyOld(seen: Seen): boolean {
    return seen !== null && clearlyOlder(seen, this.clearlyOlderThan);
  }

  /** Whether used() differs from what was read. */
  get changed(): boolean {
    return (
      this.added ||
      this.now.size !== this.earlier.size ||
      this.nowBundles.size !== this.earlierBundles.size
    );
  }

  /** What this run recalled or remembered: what is saved. */
  used(): AckFileMemoEntries {
    return { files: [...this.now.values()], bundles: [...this.nowBundles.values()] };
  }

  /**
   * used() as changes to `base` (the entries this memo was made from, before any changes applied):
   * each entry that is not the base's own entry object (remembered or replaced this run, or taken from
   * earlier changes), and each base path not used. `base` with them applied is used() (as a map).
   */
  changesSince(base: AckFileMemoEntries): AckFileMemoChanges {
    const [files, droppedFiles] = changedEntries(base.files, this.now);
    const [bundles, droppedBundles] = changedEntries(base.bundles, this.nowBundles);
    return { files, bundles, droppedFiles, droppedBundles };
  }
}

/** The entries of `now` that are not `base`'s own, and the paths of `base` that `now` lacks. */
function changedEntries<T extends { path: string }>(
  base: readonly T[],
  now: ReadonlyMap<string, T>,
): [T[], string[]] {
  // By path (strings the memo's maps hashed already), not a set of entry objects (each would be
  // given an identity hash).
  const byPath = new Map<string, T>();
  const dropped: string[] = [];
  for (const e of base) {
    byPath.set(e.path, e);
    if (!now.has(e.path)) dropped.push(e.path);
  }
  const changed: T[] = [];
  for (const e of now.values()) if (byPath.get(e.path) !== e) changed.push(e);
  return [changed, dropped];
}

/**
 * Whether `path` is `<dir>/<host>.json`, the only form the memo stores (by its directory and host: the
 * directory is stored once for all its files).
 */
function fileOfHost(path: string, host: string): boolean {
  const slash = path.length - host.length - '/.json'.length;
  return slash > 0 && path.charCodeAt(slash) === SLASH && path.endsWith(`/${host}.json`);
}
const SLASH = 0x2f;

/**
 * The memo's form, one JSON object: every distinct value once (`values`: acks' field values, hosts,
 * host keys, directories, devices, bundle names and digests), every distinct key list of the acks once
 * (`shapes`), the files' digests as one string (DIGEST_LENGTH characters each), every identity's
 * inode, size and times as little-endian doubles (`stats`, base64: files, then bundles), and per file
 * and per bundle unsigned varints (base64, read-side/log-index.ts's): value positions, a shape.
 */
interface PackedMemo {
  values: unknown[];
  shapes: string[][];
  digests: string;
  stats: string;
  /** Per file: directory, host, host key, device, then 0 (no ack: `signed: null`) or its shape + 1 and a value per key. */
  files: string;
  /** Per bundle: directory, name, device, repeats, the number of hosts, then each host. */
  bundles: string;
}

/** A file digest: `sha256:` and 64 hex digits. */
const DIGEST_LENGTH = 71;
const STAT_BYTES = 32;

/** The memo as one line (formatAckFileMemo's form above). */
export function formatAckFileMemo(memo: AckFileMemoEntries): string {
  return JSON.stringify(packAckFileMemo(memo));
}

/** The memo in formatAckFileMemo's form, as an object. */
function packAckFileMemo(memo: AckFileMemoEntries): PackedMemo {
  const values: unknown[] = [];
  const at = valuePositions(values);
  const shapes: string[][] = [];
  const shapeOf = shapePositions(shapes);
  const stats = Buffer.alloc((memo.files.length + memo.bundles.length) * STAT_BYTES);
  let n = 0;
  const pack = (s: FileStat, out: VarintWriter, dir: string) => {
    stats.writeDoubleLE(s.ino, n);
    stats.writeDoubleLE(s.size, n + 8);
    stats.writeDoubleLE(s.mtimeMs, n + 16);
    stats.writeDoubleLE(s.ctimeMs, n + 24);
    n += STAT_BYTES;
    out.write(at(dir));
  };
  const files = new VarintWriter();
  for (const e of memo.files) {
    pack(e, files, e.path.slice(0, e.path.length - e.host.length - '/.json'.length));
    for (const v of [e.host, e.hostKey, e.dev]) files.write(at(v));
    if (e.signed === null) files.write(0);
    else {
      const keys = Object.keys(e.signed);
      files.write(shapeOf(keys) + 1);
      for (const key of keys)
        files.write(at((e.signed as unknown as Record<string, unknown>)[key]));
    }
  }
  const bundles = new VarintWriter();
  for (const b of memo.bundles) {
    const slash = b.path.lastIndexOf('/');
    pack(b, bundles, b.path.slice(0, slash));
    for (const v of [b.path.slice(slash + 1), b.dev, b.repeats]) bundles.write(at(v));
    bundles.write(b.hosts.length);
    for (const h of b.hosts) bundles.write(at(h));
  }
  return {
    values,
    shapes,
    digests: memo.files.map((e) => e.digest).join(''),
    stats: stats.toString('base64'),
    files: files.bytes().toString('base64'),
    bundles: bundles.bytes().toString('base64'),
  };
}

/** formatAckFileMemo's line back; null when it is not well formed (then none of it is believed). */
export function parseAckFileMemo(line: string): AckFileMemoEntries | null {
  const p = parsedJson(line);
  return p === undefined ? null : unpackAckFileMemo(p);
}

/**
 * Changes to a base memo as one line: a JSON object with the entries in formatAckFileMemo's form
 * (`memo`) and the dropped paths.
 */
export function formatAckFileMemoChanges(c: AckFileMemoChanges): string {
  const { droppedFiles, droppedBundles } = c;
  return JSON.stringify({ memo: packAckFileMemo(c), droppedFiles, droppedBundles });
}

/** formatAckFileMemoChanges' line back; null when it is not well formed (then none of it is believed). */
export function parseAckFileMemoChanges(line: string): AckFileMemoChanges | null {
  const c = parsedJson(line) as Partial<Record<keyof AckFileMemoChanges | 'memo', unknown>>;
  if (
    typeof c !== 'object' ||
    c === null ||
    !isStrings(c.droppedFiles) ||
    !isStrings(c.droppedBundles)
  )
    return null;
  const memo = unpackAckFileMemo(c.memo);
  return memo === null
    ? null
    : { ...memo, droppedFiles: c.droppedFiles, droppedBundles: c.droppedBundles };
}

const isStrings = (x: unknown): x is string[] =>
  Array.isArray(x) && x.every((s) => typeof s === 'string');

/** `line` parsed as JSON; undefined when it is not JSON. */
function parsedJson(line: string): unknown {
  try {
    return JSON.parse(line) as unknown;
  } catch {
    return undefined;
  }
}

/** packAckFileMemo's object back; null when it is not well formed. */
function unpackAckFileMemo(x: unknown): AckFileMemoEntries | null {
  const p = x as Partial<PackedMemo> | null;
  if (
    typeof p !== 'object' ||
    p === null ||
    !Array.isArray(p.values) ||
    !Array.isArray(p.shapes) ||
    !p.shapes.every((s) => Array.isArray(s) && s.every((k) => typeof k === 'string')) ||
    typeof p.digests !== 'string' ||
    p.digests.length % DIGEST_LENGTH !== 0 ||
    typeof p.stats !== 'string' ||
    typeof p.files !== 'string' ||
    typeof p.bundles !== 'string'
  )
    return null;
  return new MemoReader(p as PackedMemo).read();
}

/** Reads a PackedMemo's files and bundles, checking every position and type as it goes. */
class MemoReader {
  private readonly stats: Buffer;
  private n = 0;
  private readonly templates: Record<string, null>[];

  constructor(private readonly p: PackedMemo) {
    this.stats = Buffer.from(p.stats, 'base64');
    // Each ack starts as a copy of its shape's template (its keys, in order), as log-index.ts does.
    this.templates = p.shapes.map((keys) => Object.fromEntries(keys.map((k) => [k, null])));
    // Composite values (probe lists) are shared between the acks that carry them.
    for (const v of p.values) if (v !== null && typeof v === 'object') deepFreeze(v);
  }

  read(): AckFileMemoEntries | null {
    const count = this.p.digests.length / DIGEST_LENGTH;
    const files: VerifiedAckFile[] = [];
    const r = new VarintReader(Buffer.from(this.p.files, 'base64'));
    for (let i = 0; i < count; i++) {
      const digest = this.p.digests.slice(i * DIGEST_LENGTH, (i + 1) * DIGEST_LENGTH);
      // Not matched by isSha256Digest (10,000 regular expressions a run): the MAC proves this directory's
      // key wrote it, and a digest that is not one can only fail to match the bytes' SHA-256.
      const e = this.file(r, digest);
      if (e === null) return null;
      files.push(e);
    }
    if (!r.done) return null;
    const bundles: RepeatingBundle[] = [];
    const b = new VarintReader(Buffer.from(this.p.bundles, 'base64'));
    while (!b.done) {
      const e = this.bundle(b);
      if (e === null) return null;
      bundles.push(e);
    }
    return this.n === this.stats.length ? { files, bundles } : null;
  }

  private file(r: VarintReader, digest: string): VerifiedAckFile | null {
    const at = this.n;
    const dir = this.stat(r);
    const host = this.string(r);
    const hostKey = this.string(r);
    const dev = this.number(r);
    const s = r.next();
    if (dir === null || host === null || hostKey === null || dev === null || s < 0) return null;
    let signed: Record<string, unknown> | null = null;
    if (s > 0) {
      const keys = this.p.shapes[s - 1];
      if (keys === undefined) return null;
      signed = { ...this.templates[s - 1] };
      for (const k of keys) {
        const u = r.next();
        if (u < 0 || u >= this.p.values.length) return null;
        signed[k] = this.p.values[u];
      }
      if (signed.host !== host) return null;
    }
    // One object literal per entry (its fields in one order): 10,000 of them survive the run.
    const st = this.stats;
    return {
      path: `${dir}/${host}.json`,
      dev,
      ino: st.readDoubleLE(at),
      size: st.readDoubleLE(at + 8),
      mtimeMs: st.readDoubleLE(at + 16),
      ctimeMs: st.readDoubleLE(at + 24),
      digest,
      host,
      hostKey,
      signed: signed as unknown as AckRecord | null,
    };
  }

  private bundle(r: VarintReader): RepeatingBundle | null {
    const at = this.n;
    const dir = this.stat(r);
    const name = this.string(r);
    const dev = this.number(r);
    const repeats = this.string(r);
    const count = r.next();
    if (dir === null || name === null || dev === null || repeats === null || count < 0) return null;
    if (!isSha256Digest(repeats)) return null;
    const hosts: string[] = [];
    for (let i = 0; i < count; i++) {
      const h = this.string(r);
      if (h === null) return null;
      hosts.push(h);
    }
    const st = this.stats;
    return {
      path: `${dir}/${name}`,
      dev,
      ino: st.readDoubleLE(at),
      size: st.readDoubleLE(at + 8),
      mtimeMs: st.readDoubleLE(at + 16),
      ctimeMs: st.readDoubleLE(at + 24),
      hosts,
      repeats,
    };
  }

  /** Passes the next identity's inode, size and times (read at their offset); its directory. */
  private stat(r: VarintReader): string | null {
    if (this.n + STAT_BYTES > this.stats.length) return null;
    this.n += STAT_BYTES;
    return this.string(r);
  }

  private string(r: VarintReader): string | null {
    const v = this.p.values[r.next()];
    return typeof v === 'string' ? v : null;
  }

  private number(r: VarintReader): number | null {
    const v = this.p.values[r.next()];
    return typeof v === 'number' ? v : null;
  }
}
