// The release walk's VerifiedDocumentMemo (release.ts) kept in a file between runs: the operator views
// keep theirs in the operator's cache directory (read-side/verified-cache.ts), the agent in its state
// directory (agent/agent.ts). Entries are keyed by the digests of the root and of the bytes, so a file
// can only ever spare recomputing intake and release signatures of bytes just read; every binding is
// checked on every walk (release.ts). The file is as trusted as its directory's other private files,
// hence: a directory or file that is not this user's own, that others may write, or that is a symlink is
// neither read nor written; a malformed or torn file is ignored whole (everything is verified); it holds
// what the last run's walk used plus what earlier runs verified of the same release (bounded by one
// release's documents: DocumentMemo.kept), written atomically, 0600.
import { lstatSync, mkdirSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from './atomic-write.ts';
import { ownedByThisUser } from './private-owner.ts';
import type { SignedDocument } from './schemas/index.ts';
import { BOUND_MANIFEST, type VerifiedDocumentMemo } from './verify/index.ts';

/** First line of a documents file: the format, so a future layout is never misread. */
const DOCS_HEADER = 'nixfleet verified-docs v1';
/** An entry's key: the root's digest, the document bytes' digest, the reader (document type). */
const DOC_KEY = /^sha256:[0-9a-f]{64} sha256:[0-9a-f]{64} [a-z-]{1,40}$/;
/** Only this user's own, not writable by others (ownedByThisUser); a symlink is not followed. */
export function ownedPrivately(path: string, kind: 'file' | 'dir'): boolean {
  try {
    const st = lstatSync(path);
    if (kind === 'file' ? !st.isFile() : !st.isDirectory()) return false;
    return ownedByThisUser(st);
  } catch {
    return false;
  }
}

/**
 * Writes `text` (or the pieces of it, in order: writeFileAtomic) to `file` in `dir` (0600, atomically)
 * if `dir` is privately owned. Best effort.
 */
export function savePrivateFile(dir: string, file: string, text: string | Iterable<string>): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!ownedPrivately(dir, 'dir')) return;
    writeFileAtomic(file, text, { mode: 0o600 });
  } catch {
    // A read-only or full disk costs the next run time, never correctness.
  }
}

/**
 * A private record file: a header line naming its format (a future layout is never misread), then one
 * `key<TAB>JSON` line per record. It is believed whole or not at all: an unusable directory or file, a
 * wrong header, a torn last line, or one record `accept` refuses gives null.
 */
export function readPrivateRecords(
  dir: string,
  file: string,
  header: string,
  accept: (key: string, value: unknown) => boolean,
): [string, unknown][] | null {
  if (!ownedPrivately(dir, 'dir') || !ownedPrivately(file, 'file')) return null;
  try {
    // Read as bytes and each value decoded on its own: `readFileSync(file, 'utf8')` took 2-4x the
    // time of reading the bytes and decoding them (Node 20; a documents memo is ~3.5 MB at 10,000
    // hosts), and the whole text split into lines was a second copy.
    const bytes = readFileSync(file);
    let start = bytes.indexOf(LF) + 1;
    if (start === 0 || bytes.toString('utf8', 0, start - 1) !== header) return null;
    const out: [string, unknown][] = [];
    while (start < bytes.length) {
      const end = bytes.indexOf(LF, start);
      const tab = bytes.indexOf(TAB, start);
      // A torn last line (no line break: end -1) or a line without its key.
      if (tab < 0 || tab > end) return null;
      const key = bytes.toString('utf8', start, tab);
      const value = JSON.parse(bytes.toString('utf8', tab + 1, end)) as unknown;
      if (!accept(key, value)) return null;
      out.push([key, value]);
      start = end + 1;
    }
    return out;
  } catch {
    return null;
  }
}
const LF = 0x0a;
const TAB = 0x09;

/** Writes records in readPrivateRecords' format (savePrivateFile: 0600, atomically). Best effort. */
export function savePrivateRecords(
  dir: string,
  file: string,
  header: string,
  records: Iterable<[string, unknown]>,
): void {
  // Line by line: a dashboard's memo is ~17 MB at 10,000 hosts, saved while its heap is at its largest.
  function* lines(): Generator<string> {
    yield `${header}\n`;
    for (const [key, value] of records) yield `${key}\t${JSON.stringify(value)}\n`;
  }
  savePrivateFile(dir, file, lines());
}

/**
 * A memo entry: the envelope intake built, or null for a 'bound-by-index' manifest whose bytes passed
 * strict intake (VerifiedDocumentMemo.setTakenIn: the walk decodes the bytes it reads, ~12 of a
 * 10,000-host dashboard's 17 MB memo were those manifests' envelopes again).
 */
type MemoEntry = SignedDocument<unknown> | null;

/** The key type of entries that may be null: a memo key ends with its type after a space. */
const TAKEN_IN_TYPE = ` ${BOUND_MANIFEST}`;

/** The walk's memo: what an earlier run verified, and what this run used (all that is saved). */
export class DocumentMemo implements VerifiedDocumentMemo {
  private earlier: Map<string, MemoEntry>;
  private usedNow = new Map<string, MemoEntry>();
  private added = false;
  /** Lookups answered from the memo this run (observability: a warm run's count of spared checks). */
  hits = 0;
  /** Entries verified by this run's walk (set, setTakenIn: observability, tests). */
  verified = 0;

  constructor(entries: [string, MemoEntry][] = []) {
    this.earlier = new Map(entries);
  }

  /**
   * What saveDocumentMemo writes: kept(), or null when that is exactly what was read (the file stays).
   * A store kept across looks passes it to renew().
   */
  saved(): [string, MemoEntry][] | null {
    const kept = this.kept();
    // kept() holds what was used and, when nothing was added, only entries read: the same size means
    // the same entries.
    return this.added || kept.length !== this.earlier.size ? kept : null;
  }

  /**
   * Serves a next run as the memo made from what a save wrote (`saved`: saved() at that save), without
   * the file's parse (read-side/verified-cache.ts renew): the very envelopes verified or used.
   */
  renew(saved: [string, MemoEntry][] | null): void {
    if (saved !== null) this.earlier = new Map(saved);
    this.usedNow = new Map();
    this.added = false;
    this.hits = this.verified = 0;
  }

  get(key: string): SignedDocument<unknown> | undefined {
    const env = this.find(key);
    if (env === undefined || env === null) return undefined;
    this.use(key, env);
    return env;
  }

  set(key: string, env: SignedDocument<unknown>): void {
    this.usedNow.set(key, env);
    this.added = true;
    this.verified++;
  }

  takenIn(key: string): boolean {
    if (this.find(key) !== null) return false;
    this.use(key, null);
    return true;
  }

  setTakenIn(key: string): void {
    if (!key.endsWith(TAKEN_IN_TYPE)) throw new Error(`not a bound manifest's key: ${key}`);
    this.usedNow.set(key, null);
    this.added = true;
    this.verified++;
  }

  private find(key: string): MemoEntry | undefined {
    return this.usedNow.has(key) ? this.usedNow.get(key) : this.earlier.get(key);
  }

  private use(key: string, env: MemoEntry): void {
    this.usedNow.set(key, env);
    this.hits++;
  }

  /** Whether saving would write something other than what was read. */
  get changed(): boolean {
    return this.saved() !== null;
  }

  used(): [string, MemoEntry][] {
    return [...this.usedNow];
  }

  /**
   * What is saved: what this run used, then what an earlier run verified of the same release (same root
   * and release version as a document used now) that this run did not need. One-host views of hosts in
   * different channels use different manifests and plans; keeping both spares each view rewriting the
   * file (~3.5 MB at 10,000 hosts) for the other. Bounded by one release's documents: entries of any
   * other release are dropped, as before (and a null entry, whose release is not known, when unused).
   */
  kept(): [string, MemoEntry][] {
    const releases = new Set<string>();
    for (const [key, env] of this.usedNow) {
      const release = releaseOf(key, env);
      if (release !== null) releases.add(release);
    }
    const out = [...this.usedNow];
    for (const [key, env] of this.earlier) {
      const release = this.usedNow.has(key) ? null : releaseOf(key, env);
      if (release !== null && releases.has(release)) out.push([key, env]);
    }
    return out;
  }
}

/**
 * An entry's root digest (its key's first part) and the release its document belongs to (a manifest's,
 * plan's or budgets' `releaseVersion`, the index's `version`); null for anything else (never kept
 * beyond its use).
 */
function releaseOf(key: string, env: MemoEntry): string | null {
  if (env === null) return null;
  const signed = env.signed as { type?: unknown; releaseVersion?: unknown; version?: unknown };
  const version = signed.type === 'release' ? signed.version : signed.releaseVersion;
  return typeof version === 'number' ? `${key.slice(0, key.indexOf(' '))} ${version}` : null;
}

/** The memo kept in `file` (in `dir`); an unusable file gives an empty memo. */
export function readDocumentMemo(dir: string, file: string): DocumentMemo {
  return new DocumentMemo(readEntries(dir, file));
}

/**
 * Writes what the memo keeps (kept()), unless that is exactly what was read. Best effort. What it
 * meant to write (DocumentMemo.saved()), null when nothing.
 */
export function saveDocumentMemo(
  dir: string,
  file: string,
  memo: DocumentMemo,
): ReturnType<DocumentMemo['saved']> {
  const kept = memo.saved();
  if (kept !== null) savePrivateRecords(dir, file, DOCS_HEADER, kept);
  return kept;
}

function readEntries(dir: string, file: string): [string, MemoEntry][] {
  const records = readPrivateRecords(dir, file, DOCS_HEADER, (key, env) => {
    const e = env as SignedDocument<unknown> | null;
    if (!DOC_KEY.test(key)) return false;
    // Null only where the walk decodes the bytes itself (a bound manifest's key).
    if (e === null) return key.endsWith(TAKEN_IN_TYPE);
    return (
      typeof e === 'object' &&
      typeof e.signed === 'object' &&
      e.signed !== null &&
      Array.isArray(e.signatures)
    );
  });
  return (records ?? []) as [string, MemoEntry][];
}
