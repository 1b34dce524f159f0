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
// what is on disk), written atomically.
//
// Beside the acks, the same store keeps the release documents (index, plans, budgets) the last run's walk
// verified (protocol/verify/release.ts VerifiedDocumentMemo): keyed by the digests of the root and of the
// bytes, holding the envelope intake built from them. A warm view then hashes the documents' bytes instead
// of parsing and verifying megabytes of them; their bindings to the timestamp are checked every run.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import {
  DocumentMemo,
  ownedPrivately,
  readDocumentMemo,
  saveDocumentMemo,
  savePrivateFile,
} from '../protocol/index.ts';
import { AckCache } from './acks.ts';

/** First line of a cache file: the format, so a future layout is never misread. */
const HEADER = 'nixfleet verified-acks v1';
/** One entry: the digest of the ack's bytes and the base64 Ed25519 host key they verified under. */
const ENTRY = /^sha256:[0-9a-f]{64} [A-Za-z0-9+/]{43}=$/;

/** The default cache directory, or null when there is no home to put it in. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string | null {
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'nixfleet');
  const home = env.HOME ?? homedir();
  return home ? join(home, '.cache', 'nixfleet') : null;
}

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
  /** Writes what this run verified, unless nothing changed. Best effort: a cache that cannot be written is skipped. */
  save(): void;
}

/** The store `name` (one per view) in `dir`; dir null: no persistence (a fresh cache, save does nothing). */
export function openVerifiedAckStore(dir: string | null, name: string): VerifiedAckStore {
  if (dir === null) {
    const cache = new AckCache();
    return { cache, scopeAcks: () => cache, documents: new DocumentMemo([]), save: () => {} };
  }
  const docsFile = join(dir, `${name}.verified-docs`);
  const documents = readDocumentMemo(dir, docsFile);
  let acks: { file: string; cache: AckCache } | null = null;
  const open = (file: string) => (acks ??= { file, cache: new AckCache(readEntries(dir, file)) });
  return {
    get cache() {
      return open(join(dir, `${name}.verified-acks`)).cache;
    },
    scopeAcks: (part) => open(join(dir, `${name}.${part}.verified-acks`)).cache,
    documents,
    save: () => {
      if (acks?.cache.changed) {
        const pairs = acks.cache.verifiedPairs();
        savePrivateFile(
          dir,
          acks.file,
          `${HEADER}\n${pairs.map(([d, k]) => `${d} ${k}\n`).join('')}`,
        );
      }
      saveDocumentMemo(dir, docsFile, documents);
    },
  };
}

function readEntries(dir: string, file: string): [string, string][] {
  if (!ownedPrivately(dir, 'dir') || !ownedPrivately(file, 'file')) return [];
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const lines = text.split('\n');
  if (lines[0] !== HEADER || lines.at(-1) !== '') return [];
  const out: [string, string][] = [];
  for (let i = 1; i < lines.length - 1; i++) {
    const line = lines[i]!;
    // One malformed line and nothing of the file is believed (a torn or foreign file).
    if (!ENTRY.test(line)) return [];
    out.push([line.slice(0, 71), line.slice(72)]);
  }
  return out;
}
