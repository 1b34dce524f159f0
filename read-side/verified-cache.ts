// A persisted cache of verified acks for the one-shot operator views (`nixfleet status`, `trace`): which
// ack bytes (by SHA-256) an earlier run verified under which host key. Verifying 10,000 acks is seconds
// of Ed25519 and strict intake; the acks change little between two looks, so a warm run checks digests.
//
// What it can and cannot do: an entry is only ever looked up by the digest of the bytes just read, so a
// changed or new ack is a miss and is verified in full; the claims against the release (fleet, host in a
// signed plan, the key the plan names) are checked on every run; a host key is part of the entry, so a
// re-keyed host is verified again. The cache is as trusted as the operator's own files: it lives in the
// operator's cache directory (XDG_CACHE_HOME or ~/.cache, `nixfleet/`), and a directory or file that is
// not the user's own or that others may write is not read (nor written). Unusable or malformed: ignored,
// everything is verified. Each view keeps its own file with exactly what its last run used (bounded by
// what is on disk), written atomically. Each file is sealed with an HMAC under the directory's own
// key (below), so one edited by hand is not believed. The latest-ack memo is kept as a base file and a
// journal of the changes since it, bound to it by its MAC (saveAckFileMemo), so a look whose fleet
// changed a little writes about what changed.
//
// Beside a view's acks, the verified prefixes of the ack logs it read (read-side/acks.ts LogPrefixMemo):
// a warm trace hashes the remembered prefix once and checks only the records after it.
//
// Beside the acks, the same store keeps the release documents (index, plans, budgets) the last run's walk
// verified (protocol/verify/release.ts VerifiedDocumentMemo): keyed by the digests of the root and of the
// bytes, holding the envelope intake built from them. A warm view then hashes the documents' bytes instead
// of parsing and verifying megabytes of them; their bindings to the timestamp are checked every run.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import {
  DocumentMemo,
  ownedPrivately,
  readDocumentMemo,
  saveDocumentMemo,
  savePrivateFile,
} from '../protocol/index.ts';
import { AckCache, LogPrefixMemo, type VerifiedLogPrefix } from './acks.ts';
import type { ArrivedAcks } from './arrived-acks.ts';
import {
  AckFileMemo,
  formatAckFileMemo,
  formatAckFileMemoChanges,
  parseAckFileMemo,
  parseAckFileMemoChanges,
  type AckFileMemoChanges,
  type AckFileMemoEntries,
} from './ack-file-memo.ts';
import { parseLogPrefixIndexLine, type LogPrefixIndex } from './log-index.ts';

/** First line of a cache file: the format, so a future layout is never misread. */
const HEADER = 'nixfleet verified-acks v2';
/** The verified log prefixes file (read-side/acks.ts LogPrefixMemo). */
const PREFIX_HEADER = 'nixfleet verified-log-prefixes v1';
/** One prefix: bytes, their digest, the trust fingerprint, then the segment file's path as JSON. */
const PREFIX_ENTRY = /^([0-9]{1,15}) (sha256:[0-9a-f]{64}) (sha256:[0-9a-f]{64}) (".*")$/;
/** The latest-ack files read with their verified acks (ack-file-memo.ts formatAckFileMemo): one line. */
const FILES_HEADER = 'nixfleet latest-ack-memo v1';
const FILES_SUFFIX = 'latest-acks';
/**
 * The latest-ack memo's journal (`<base>.latest-acks.journal`): what changed since the memo's base file
 * was written (ack-file-memo.ts AckFileMemoChanges), bound to that base by naming its MAC (`base
 * <hex>`), so a journal is believed only over the very base it was written for.
 */
const JOURNAL_HEADER = 'nixfleet latest-ack-journal v1';
const JOURNAL_SUFFIX = `${FILES_SUFFIX}.journal`;
/**
 * Names of files earlier versions kept and this one no longer reads (the latest-ack memo's older forms:
 * its bytes, and a JSON array of whole acks): deleted whenever the store writes, so that an upgrade
 * leaves no megabytes behind.
 */
const RETIRED_SUFFIXES = ['.ack-files', '.verified-ack-files'];
/** The log-prefix indexes (read-side/log-index.ts): one JSON line per indexed segment. */
const INDEX_HEADER = 'nixfleet log-prefix-index v3';
const INDEX_SUFFIX = '.log-index';
/**
 * The newest segment's index, in a file of its own beside the others' (`.log-index`): it changes with
 * nearly every look (records appended to the segment extend it; a trace keeps its replay checkpoints
 * with it), the others only when the log rolls. In one file, each such look re-sealed and rewrote every
 * segment's index (~5 MB at 10,000 hosts: ~0.1 s of a view server's CPU after each trace).
 */
const CURRENT_INDEX_SUFFIX = `${INDEX_SUFFIX}.current`;
/**
 * The cache directory's key (32 random bytes, hex), made by the first save: every acks or prefixes file
 * ends with `mac <HMAC-SHA256 of the lines before it>` under it, so a file edited by hand (an entry
 * planted for a forged ack, a prefix digest changed to match a rewritten log) is not believed unless
 * the editor also used the key. It is as private as the files it seals (same directory checks).
 */
const KEY_FILE = 'cache-key';
const KEY = /^[0-9a-f]{64}\n$/;

export interface VerifiedAckStore {
  /** The view's ack cache (read on first use). */
  readonly cache: AckCache;
  /**
   * The ack cache kept for one scope of the view instead (`<name>.<part>.verified-acks`; a one-host
   * view's channel: read-side/scope.ts), so that views of different scopes do not evict each other's
   * entries. Call before `cache` is first used; `save` then writes this one.
   */
  scopeAcks(part: string): AckCache;
  /** Release documents verified by the last run (pass as the walk's `memo`). */
  documents: DocumentMemo;
  /**
   * Verified prefixes of the ack logs read (beside the ack cache: `<name>[.<part>].log-prefixes`; pass
   * as AckLogOptions.prefixes). Use after `cache` or scopeAcks() chose the file.
   */
  readonly logPrefixes: LogPrefixMemo;
  /**
   * logPrefixes read through their indexes (`<name>[.<part>].log-index` and `.log-index.current`;
   * LogPrefixMemo.useIndexes): for a reader that replays signed acks only (a trace). Without a cache
   * directory, logPrefixes as it is.
   */
  readonly indexedLogPrefixes: LogPrefixMemo;
  /**
   * The latest-ack files the last run read, by their identity, with the acks it verified in them (and
   * the bundles found to repeat them): beside the ack cache, `<name>[.<part>].latest-acks`; pass as
   * TreeAckOptions.files. Use after `cache` or scopeAcks() chose the file.
   */
  readonly verifiedAckFiles: AckFileMemo;
  /** Writes what this run verified, unless nothing changed. Best effort: a cache that cannot be written is skipped. */
  save(): void;
  /**
   * Makes the store serve the next look, which starts at `startedAt` (ms), exactly as
   * `openVerifiedAckStore(dir, name, startedAt)` would from the files `save()` just wrote, without
   * reading them back (a long-running view server keeps one store per view between looks). Call after
   * save(), or after a look that did not save (it failed): the next look is then served what that one
   * was, as a re-open finds nothing new written. The store is then as if freshly opened (a scope is
   * chosen again, by `cache` or scopeAcks()).
   */
  renew(startedAt: number): void;
  /**
   * Between looks of a renewed store: drops what it keeps of every scope no look started at or after
   * `before` (ms) chose. Such a scope is read from its files at its next use, as a fresh store reads it
   * (a long-running server's memory is then what its recent views need). Returns how many were dropped.
   */
  forgetScopesUsedBefore(before: number): number;
  /** How many scopes the store keeps in memory. */
  readonly scopesKept: number;
  /** The counts of the ack cache this look chose (AckCache.counts); null: none chosen yet. */
  readonly ackCounts: AckCache['counts'] | null;
}

/**
 * The store `name` (one per view) in `dir`; dir null: no persistence (a fresh cache, save does nothing).
 * `startedAt` (ms): when the run started, before any file was looked at (AckFileMemo's racy rule).
 * `arrived`: acks a long-running view server verified as they arrived, which every ack cache of the
 * store consults beside its own entries, and every latest-ack memo beside its own for files that
 * changed since its run (read-side/arrived-acks.ts).
 *
 * Renewed (renew), the store keeps in memory what each scope's save wrote and serves it to the next
 * look in place of the files: the memos' entries as they stand (the very objects a re-read would
 * decode again), each memo restarted on its first use in a look with that look's start (its racy
 * rule). A scope no look of this store has used yet is read from its files, as a fresh store reads it.
 * If another process (a one-shot look of the same view, another server) rewrites the files meanwhile,
 * the kept store does not notice, and its next save overwrites theirs (a journal it writes names its
 * own base's MAC, so over another writer's base it is ignored: their base alone is believed). That is
 * sound: the files are an optimisation, sealed by the directory's key, and every writer's state is one
 * it verified itself from the bytes it read; neither state stands in for any check of the claims
 * against the release, made on every look. The kept store also does not depend on the writes
 * succeeding: it keeps what save meant to write (the state it verified), even where the files could
 * not be written (a read-only directory).
 */
export function openVerifiedAckStore(
  dir: string | null,
  name: string,
  startedAt: number = Date.now(),
  arrived?: ArrivedAcks,
): VerifiedAckStore {
  if (dir === null) return unpersistedStore(startedAt);
  const docsFile = join(dir, `${name}.verified-docs`);
  const documents = readDocumentMemo(dir, docsFile);
  let key = readKey(dir);
  let look: { startedAt: number; saved: SavedMemos | null } = { startedAt, saved: null };
  const scopes = new KeptScopes();
  /** The scope this look chose. */
  let current: ScopeFiles | null = null;
  const open = (base: string) =>
    (current ??= scopes.choose(base, look.startedAt, () => readScope(dir, base, key, arrived)));
  const chosen = () => open(join(dir, name));
  return {
    get cache() {
      return chosen().cache;
    },
    scopeAcks: (part) => open(join(dir, `${name}.${part}`)).cache,
    documents,
    get logPrefixes() {
      const a = chosen();
      return (a.prefixes ??=
        restarted(a.kept.prefixes, look.startedAt) ??
        new LogPrefixMemo(
          readSealedLines(dir, `${a.base}.log-prefixes`, PREFIX_HEADER, key, prefixEntry),
          look.startedAt,
        ));
    },
    get indexedLogPrefixes() {
      const memo = this.logPrefixes;
      if (!memo.readsIndexes) {
        const scope = chosen();
        memo.useIndexes(scope.kept.indexes ?? readIndexes(dir, scope, key));
      }
      return memo;
    },
    get verifiedAckFiles() {
      const a = chosen();
      return (a.files ??=
        restarted(a.kept.files, look.startedAt) ??
        readAckFileMemo(dir, a, key, look.startedAt, arrived));
    },
    save: () => {
      const wrote = current !== null && saveScopeFiles(dir, current);
      const docs = saveDocumentMemo(dir, docsFile, documents);
      if (wrote) deleteRetiredFiles(dir);
      look.saved = { ...savedMemos(current), documents: docs };
    },
    renew: (next) => {
      if (current !== null) keepForNextLook(current, look.saved, next, arrived);
      current = null;
      documents.renew(look.saved?.documents ?? null);
      // The save may have made the directory's key: a scope first read from now on is read with it.
      key = readKey(dir);
      look = { startedAt: next, saved: null };
    },
    forgetScopesUsedBefore: (before) => scopes.forgetChosenBefore(before, current),
    get scopesKept() {
      return scopes.size;
    },
    get ackCounts() {
      return current?.cache.counts ?? null;
    },
  };
}

/** Every scope a look of a store chose, by base: what each last saved, kept between looks. */
class KeptScopes {
  private readonly kept = new Map<string, { files: ScopeFiles; chosenAt: number }>();

  get size(): number {
    return this.kept.size;
  }

  /** The scope `base` for a look started at `startedAt` (ms): kept, or read now. */
  choose(base: string, startedAt: number, read: () => ScopeFiles): ScopeFiles {
    const k = this.kept.get(base);
    if (k !== undefined) {
      k.chosenAt = startedAt;
      return k.files;
    }
    const files = read();
    this.kept.set(base, { files, chosenAt: startedAt });
    return files;
  }

  /** Drops every scope last chosen by a look started before `before` (ms), but the current one. */
  forgetChosenBefore(before: number, current: ScopeFiles | null): number {
    let dropped = 0;
    for (const [base, k] of this.kept)
      if (k.chosenAt < before && k.files !== current) {
        this.kept.delete(base);
        dropped++;
      }
    return dropped;
  }
}

/** No persistence (`--no-cache`): fresh caches, save does nothing, renew starts afresh. */
function unpersistedStore(startedAt: number): VerifiedAckStore {
  const fresh = (at: number) => ({
    cache: new AckCache(),
    documents: new DocumentMemo([]),
    logPrefixes: new LogPrefixMemo([], at),
    verifiedAckFiles: new AckFileMemo(undefined, at),
  });
  let look = fresh(startedAt);
  return {
    get cache() {
      return look.cache;
    },
    scopeAcks: () => look.cache,
    get documents() {
      return look.documents;
    },
    get logPrefixes() {
      return look.logPrefixes;
    },
    get indexedLogPrefixes() {
      return look.logPrefixes;
    },
    get verifiedAckFiles() {
      return look.verifiedAckFiles;
    },
    save: () => {},
    renew: (next) => {
      look = fresh(next);
    },
    forgetScopesUsedBefore: () => 0,
    scopesKept: 0,
    get ackCounts() {
      return look.cache.counts;
    },
  };
}

/** The sealed files of a scope a view chose (`<base>.*`), each opened on first use in a look. */
interface ScopeFiles {
  base: string;
  /** The look's ack cache, made from earlierAcks. */
  cache: AckCache;
  /** The ack cache's entries as read, or as the last save meant to write them. */
  earlierAcks: [digest: string, hostKey: string][];
  /** The look's memos (null: not used by it yet). */
  prefixes: LogPrefixMemo | null;
  files: AckFileMemo | null;
  /** The latest-ack memo's base file as read (or last written), which its journal changes. */
  filesBase: MemoBase | null;
  /** The indexes `.log-index` holds as read (or last written): every segment's but the newest's. */
  sealedIndexes: LogPrefixIndex[] | null;
  /**
   * What the last look of a renewed store that used them saved, served to a later look in place of
   * the files (null: read them): the memos, renewed (restarted on their first use in a look, with that
   * look's start), and the log-prefix indexes.
   */
  kept: {
    prefixes: LogPrefixMemo | null;
    files: AckFileMemo | null;
    indexes: LogPrefixIndex[] | null;
  };
}

/** The scope `base` as its files hold it (the ack cache's entries; its memos are read on first use). */
function readScope(
  dir: string,
  base: string,
  key: Buffer | null,
  arrived: ArrivedAcks | undefined,
): ScopeFiles {
  const earlierAcks = readSealedLines(dir, `${base}.verified-acks`, HEADER, key, ackEntry);
  return {
    base,
    cache: new AckCache(earlierAcks, arrived),
    earlierAcks,
    prefixes: null,
    files: null,
    filesBase: null,
    sealedIndexes: null,
    kept: { prefixes: null, files: null, indexes: null },
  };
}

/**
 * What a save wrote, taken at the save: the memos the look had used by then (one a look first uses
 * after its save is not saved, so not kept), the log-prefix indexes it wrote or, unchanged, had read,
 * and the document memo's entries (null: unchanged).
 */
interface SavedMemos {
  prefixes: LogPrefixMemo | null;
  files: AckFileMemo | null;
  indexes: LogPrefixIndex[] | null;
  /** What saveDocumentMemo meant to write (DocumentMemo.saved()). */
  documents: ReturnType<DocumentMemo['saved']>;
}

function savedMemos(s: ScopeFiles | null): Omit<SavedMemos, 'documents'> {
  const prefixes = s?.prefixes ?? null;
  return {
    prefixes,
    files: s?.files ?? null,
    indexes: prefixes?.readsIndexes ? prefixes.usedIndexes() : null,
  };
}

/**
 * After a look: what the scope's memos held at its save becomes what the next look of the scope is
 * served (openVerifiedAckStore renew), and an ack cache is made from the entries saved, as a re-read
 * makes it. A memo the save did not write, and every memo of a look that did not save (`saved` null),
 * keeps what it was served: the files hold that.
 */
function keepForNextLook(
  s: ScopeFiles,
  saved: SavedMemos | null,
  startedAt: number,
  arrived: ArrivedAcks | undefined,
): void {
  if (saved?.prefixes) {
    saved.prefixes.renew(startedAt);
    s.kept.prefixes = saved.prefixes;
    if (saved.indexes !== null) s.kept.indexes = saved.indexes;
  }
  if (saved?.files) {
    saved.files.renew(startedAt);
    s.kept.files = saved.files;
  }
  s.prefixes = s.files = null;
  s.cache = new AckCache(s.earlierAcks, arrived);
}

/**
 * A kept memo restarted for a look started at `startedAt` (what a look that used it and did not save
 * did to it dropped); null when none is kept.
 */
function restarted<M extends { restart(startedAt: number): void }>(
  memo: M | null,
  startedAt: number,
): M | null {
  memo?.restart(startedAt);
  return memo;
}

/** The scope's latest-ack memo from its files (base and journal), noting the base read. */
function readAckFileMemo(
  dir: string,
  s: ScopeFiles,
  key: Buffer | null,
  startedAt: number,
  arrived: ArrivedAcks | undefined,
): AckFileMemo {
  s.filesBase = readMemoBase(dir, `${s.base}.${FILES_SUFFIX}`, key);
  const changes = s.filesBase && readJournal(dir, s.base, key, s.filesBase.mac);
  return new AckFileMemo(s.filesBase?.entries, startedAt, changes ?? undefined, arrived);
}

/** A latest-ack memo's base file: its entries, its MAC (hex: what a journal over it names), its size. */
interface MemoBase {
  entries: AckFileMemoEntries;
  mac: string;
  bytes: number;
}

/**
 * Writes each of the scope's files that changed, sealed with the directory's key (made if needed).
 * Whether it wrote any.
 */
function saveScopeFiles(dir: string, s: ScopeFiles): boolean {
  const indexes = s.prefixes?.indexesChanged ? s.prefixes.usedIndexes() : null;
  const changed = [s.cache, s.prefixes, s.files].some((x) => x?.changed);
  if (!changed && !indexes) return false;
  // The memo changed: it may now keep acks the cache holds.
  const acks = s.cache.changed || s.files?.changed ? ackCachePairs(s) : null;
  // What the cache holds from now on (a renewed store's next look: even when it cannot be written).
  if (acks !== null) s.earlierAcks = acks;
  const k = makeKey(dir);
  if (k === null) return false;
  if (acks !== null) {
    const lines = acks.map(([d, hk]) => `${d} ${hk}`);
    saveSealed(dir, `${s.base}.verified-acks`, HEADER, k, lines);
  }
  if (s.prefixes?.changed)
    saveSealed(
      dir,
      `${s.base}.log-prefixes`,
      PREFIX_HEADER,
      k,
      s.prefixes
        .used()
        .map((p) => `${p.bytes} ${p.digest} ${p.fingerprint} ${JSON.stringify(p.file)}`),
    );
  if (s.files?.changed) s.filesBase = saveAckFileMemo(dir, s.base, k, s.files, s.filesBase);
  if (indexes) saveIndexes(dir, s, k, indexes);
  return true;
}

/**
 * The scope's log-prefix indexes, the newest segment's last (`.log-index.current` read after
 * `.log-index`: where both hold a segment's, the current file's is the later one written, and
 * LogPrefixMemo.useIndexes keeps the last of a file's).
 */
function readIndexes(dir: string, s: ScopeFiles, key: Buffer | null): LogPrefixIndex[] {
  const read = (file: string) =>
    readSealedLines(dir, file, INDEX_HEADER, key, parseLogPrefixIndexLine);
  s.sealedIndexes = read(`${s.base}${INDEX_SUFFIX}`);
  return [...s.sealedIndexes, ...read(`${s.base}${CURRENT_INDEX_SUFFIX}`)];
}

/**
 * Writes the newest segment's index to its own file, and the others' only when they are not the ones
 * `.log-index` holds (the same objects: an index a look did not change is the one it was served).
 */
function saveIndexes(dir: string, s: ScopeFiles, k: Buffer, indexes: LogPrefixIndex[]): void {
  const line = (i: LogPrefixIndex) => JSON.stringify(i);
  const sealed = indexes.slice(0, -1);
  saveSealed(dir, `${s.base}${CURRENT_INDEX_SUFFIX}`, INDEX_HEADER, k, indexes.slice(-1).map(line));
  const same =
    s.sealedIndexes?.length === sealed.length && sealed.every((x, i) => x === s.sealedIndexes![i]);
  if (same) return;
  saveSealed(dir, `${s.base}${INDEX_SUFFIX}`, INDEX_HEADER, k, sealed.map(line));
  s.sealedIndexes = sealed;
}

/**
 * The ack cache's pairs to save: the pairs this run verified or reused, but for the acks of files the
 * latest-ack memo remembered this run with their ack under the same host key (AckFileMemo.keepsAck: a
 * later run recalls those without the cache, so a minute's new acks would otherwise be written to it
 * by one look and dropped by the next); null when they are the pairs the file holds.
 */
function ackCachePairs(s: ScopeFiles): [digest: string, hostKey: string][] | null {
  const pairs: [string, string][] = [];
  for (const [d, hk] of s.cache.verifiedPairs())
    if (s.files === null || !s.files.keepsAck(d, hk)) pairs.push([d, hk]);
  const earlier = new Set(s.earlierAcks.map(([d, hk]) => `${d} ${hk}`));
  return pairs.length === earlier.size && pairs.every(([d, hk]) => earlier.has(`${d} ${hk}`))
    ? null
    : pairs;
}

/** The latest-ack memo's base file (`file`), or null when there is none to believe. */
function readMemoBase(dir: string, file: string, key: Buffer | null): MemoBase | null {
  const sealed = readSealed(dir, file, FILES_HEADER, key, parseAckFileMemo);
  return sealed === null || sealed.lines.length !== 1
    ? null
    : { entries: sealed.lines[0]!, mac: sealed.mac, bytes: sealed.bytes };
}

/**
 * The changes the journal of the scope `base` holds since the memo base whose MAC is `baseMac`; null
 * when there is none, or it is not sealed, or it names another base (one written before the base was
 * rewritten: what a run killed between writing a new base and deleting the journal leaves).
 */
function readJournal(
  dir: string,
  base: string,
  key: Buffer | null,
  baseMac: string,
): AckFileMemoChanges | null {
  const file = `${base}.${JOURNAL_SUFFIX}`;
  const sealed = readSealed(dir, file, JOURNAL_HEADER, key, (line) => line);
  if (sealed === null || sealed.lines.length !== 2 || sealed.lines[0] !== `base ${baseMac}`)
    return null;
  return parseAckFileMemoChanges(sealed.lines[1]!);
}

/**
 * Saves a changed latest-ack memo: as a journal of what changed since its base (the base file is not
 * rewritten) while that journal is less than half the base's size, else as a new base (and the journal
 * deleted). The base as it stands after.
 */
function saveAckFileMemo(
  dir: string,
  base: string,
  key: Buffer,
  memo: AckFileMemo,
  stored: MemoBase | null,
): MemoBase | null {
  const journalFile = `${base}.${JOURNAL_SUFFIX}`;
  if (stored !== null) {
    const changes = formatAckFileMemoChanges(memo.changesSince(stored.entries));
    if (changes.length < stored.bytes / 2) {
      saveSealed(dir, journalFile, JOURNAL_HEADER, key, [`base ${stored.mac}`, changes]);
      return stored;
    }
  }
  const entries = memo.used();
  const line = formatAckFileMemo(entries);
  const mac = saveSealed(dir, `${base}.${FILES_SUFFIX}`, FILES_HEADER, key, [line]);
  // A journal left behind names the earlier base's MAC: ignored over this one. Deleted all the same.
  removeFile(journalFile);
  return { entries, mac, bytes: line.length };
}

/** Deletes `file` if it can: none there (the usual case) or a read-only directory is no error. */
function removeFile(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // Nothing to delete, or not deletable: a file left is ignored or retried by the caller's rule.
  }
}

/** Deletes the files of earlier versions' forms (RETIRED_SUFFIXES) in the directory. Best effort. */
function deleteRetiredFiles(dir: string): void {
  if (!ownedPrivately(dir, 'dir')) return;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  // Best effort: one deleted by another run first, or a read-only directory, is tried at the next save.
  for (const f of names) if (RETIRED_SUFFIXES.some((x) => f.endsWith(x))) removeFile(join(dir, f));
}

/**
 * The entry's shape is checked by length and separators only: the file's MAC (readSealedLines) already
 * proves this directory's key wrote it, and a regular expression over 10,000 lines was a measurable
 * part of a warm `status --host` (docs/benchmarks.md "operator"). A wrong entry can only miss.
 */
function ackEntry(line: string): [string, string] | null {
  return line.length === ENTRY_LENGTH &&
    line.startsWith('sha256:') &&
    line.charCodeAt(71) === SPACE &&
    line.endsWith('=')
    ? [line.slice(0, 71), line.slice(72)]
    : null;
}
const ENTRY_LENGTH = 71 + 1 + 44;
const SPACE = 0x20;

function prefixEntry(line: string): VerifiedLogPrefix | null {
  const m = PREFIX_ENTRY.exec(line);
  if (m === null) return null;
  const file = JSON.parse(m[4]!) as unknown;
  return typeof file === 'string'
    ? { bytes: Number(m[1]), digest: m[2]!, fingerprint: m[3]!, file }
    : null;
}

const LF = 0x0a;
const macOf = (key: Buffer, text: string) => createHmac('sha256', key).update(text).digest('hex');

/** The directory's key, or null (none yet, or not private). */
function readKey(dir: string): Buffer | null {
  const file = join(dir, KEY_FILE);
  if (!ownedPrivately(dir, 'dir') || !ownedPrivately(file, 'file')) return null;
  try {
    const text = readFileSync(file, 'latin1');
    return KEY.test(text) ? Buffer.from(text.slice(0, 64), 'hex') : null;
  } catch {
    return null;
  }
}

/** The directory's key, made now if there is none (best effort: null when it cannot be kept). */
function makeKey(dir: string): Buffer | null {
  const k = readKey(dir);
  if (k !== null) return k;
  savePrivateFile(dir, join(dir, KEY_FILE), `${randomBytes(32).toString('hex')}\n`);
  return readKey(dir);
}

/**
 * A sealed file's entries: the header, one entry per line, then the `mac` line over everything before
 * it. Believed whole or not at all: no key, a wrong MAC, an unusable file or one malformed line gives none.
 */
function readSealedLines<T>(
  dir: string,
  file: string,
  header: string,
  key: Buffer | null,
  entry: (line: string) => T | null,
): T[] {
  return readSealed(dir, file, header, key, entry)?.lines ?? [];
}

/** A sealed file as readSealedLines reads it, with its MAC (hex) and size; null where it gives none. */
function readSealed<T>(
  dir: string,
  file: string,
  header: string,
  key: Buffer | null,
  entry: (line: string) => T | null,
): { lines: T[]; mac: string; bytes: number } | null {
  if (key === null || !ownedPrivately(dir, 'dir') || !ownedPrivately(file, 'file')) return null;
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch {
    return null;
  }
  // The MAC over the bytes as read (an ack-files memo is megabytes: no second UTF-8 encoding of it).
  const macAt = bytes.lastIndexOf('\nmac ') + 1;
  if (macAt === 0 || bytes.at(-1) !== LF) return null;
  const mac = Buffer.from(bytes.toString('latin1', macAt + 4, bytes.length - 1), 'hex');
  const expected = createHmac('sha256', key).update(bytes.subarray(0, macAt)).digest();
  if (mac.length !== expected.length || !timingSafeEqual(mac, expected)) return null;
  // Each line decoded on its own (no copy of the whole file as one string first: a
  // latest-acks memo is one line of megabytes).
  let start = bytes.indexOf(LF) + 1;
  if (bytes.toString('utf8', 0, start - 1) !== header) return null;
  const lines: T[] = [];
  while (start < macAt) {
    const end = bytes.indexOf(LF, start);
    // One malformed line and nothing of the file is believed (a torn or foreign file).
    const e = entry(bytes.toString('utf8', start, end));
    if (e === null) return null;
    lines.push(e);
    start = end + 1;
  }
  return { lines, mac: expected.toString('hex'), bytes: bytes.length };
}

/** Writes a sealed file (readSealed's form); its MAC (hex). */
function saveSealed(
  dir: string,
  file: string,
  header: string,
  key: Buffer,
  lines: string[],
): string {
  const body = `${header}\n${lines.map((l) => `${l}\n`).join('')}`;
  const mac = macOf(key, body);
  savePrivateFile(dir, file, `${body}mac ${mac}\n`);
  return mac;
}
